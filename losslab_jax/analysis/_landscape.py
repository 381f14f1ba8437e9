"""Loss landscape: 1-D and 2-D slices along random, filter-normalised directions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks
from losslab_jax.analysis import _common
from losslab_jax.analysis._results import LandscapeResult

Normalize = Literal["filter", "layer"] | None
_NORMALIZE = ("filter", "layer", None)


def loss_landscape(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    key: jax.Array,
    num_points: int = 51,
    span: float = 1.0,
    dims: int = 1,
    normalize: Normalize = "filter",
    filter_axis: int = -1,
    ignore_biasbn: bool = False,
    batch_size: int | None = None,
) -> LandscapeResult:
  r"""The loss on a 1-D or 2-D slice through ``params`` along random directions.

  Draws ``dims`` Gaussian directions shaped like ``params``, rescales them (filter
  normalisation by default, so the slice is comparable across networks and scale-invariant
  layers), and evaluates the loss on a ``num_points`` (or ``num_points x num_points``) grid in
  one jitted call that ``vmap``\ s ``loss_fn`` over the grid. Use it to see whether a minimum is
  sharp or flat, whether the loss is locally convex, and how far a step can go before the loss
  climbs.

  .. math::
     f(\alpha) = L(\theta + \alpha d_1), \qquad
     f(\alpha, \beta) = L(\theta + \alpha d_1 + \beta d_2), \qquad
     \alpha, \beta \in [-\mathrm{span}, \mathrm{span}],

  where :math:`\theta` is ``params`` and, for filter normalisation, every filter :math:`j` of
  every leaf of :math:`d` is rescaled to the norm of the same filter of :math:`\theta`,
  :math:`d_{j} \leftarrow d_{j} \, \|\theta_{j}\| / \|d_{j}\|`.

  Args:
    loss_fn: ``loss_fn(params, *args) -> scalar``.
    params: a pytree of arrays; non-floating leaves are never perturbed. Or a ``flax.nnx``
      module (then ``loss_fn(model, *args)``): only its ``nnx.Param`` variables are perturbed;
      BatchNorm running statistics and other variables are held as they are, and
      ``directions`` are ``nnx.State``\ s of the parameters.
    *args: passed to ``loss_fn`` unchanged (data, targets); traced, not baked in as constants.
    key: a ``jax.random`` key; the only source of randomness.
    num_points: grid points per direction, odd and ``>= 3`` so that ``alpha = 0`` is on the
      grid (``losses[num_points // 2]`` is the loss at ``params``).
    span: the grid covers ``[-span, span]`` in units of the normalised direction.
    dims: ``1`` (a curve) or ``2`` (a surface).
    normalize: ``"filter"`` (Li et al.: per filter; a filter is one index of ``filter_axis``,
      all other axes together), ``"layer"`` (per leaf: ``d <- d ||theta|| / ||d||``) or
      ``None`` (raw standard-normal directions).
    filter_axis: the output axis of weight leaves. ``-1`` for flax/haiku/JAX layouts (Dense
      ``[in, out]``, Conv ``[h, w, in, out]``); pass ``0`` for torch-layout weights.
    ignore_biasbn: zero the direction on 0-D and 1-D leaves (biases, norm scales), as Li et al.'s
      ``--xignore biasbn``. By default they are normalised as a whole leaf (one filter), so a
      model whose parameters are all vectors still gets a non-flat slice.
    batch_size: evaluate the grid in chunks of this many points (``jax.lax.map``) to bound
      memory; ``None`` evaluates every point in one ``vmap``.

  Returns:
    A :class:`LandscapeResult`: ``alphas``, ``betas``, ``losses``, ``directions``,
    ``current_loss``, ``loss_std``, ``loss_variance``, ``loss_min``, ``loss_max``,
    ``loss_range``, ``curvature`` (second difference at the centre per direction) and
    ``sharpness`` (Keskar et al.). Non-finite losses on the grid propagate into the statistics.

  Raises:
    ValueError: ``num_points`` is even or below 3, ``dims`` is not 1 or 2, ``normalize`` is
      unknown, ``span <= 0``, ``batch_size < 1``, or ``loss_fn`` does not return a scalar.
    TypeError: ``params`` has no floating leaf, or holds nnx variables that are not
      ``nnx.Param`` (pass the module itself, or ``nnx.state(model, nnx.Param)``).

  Notes:
    Torch twin: none in torch; this is Li et al.'s ``loss-landscape`` procedure (their
    ``normalize_directions_for_weights(norm="filter")``), and the statistics are those of the
    ``analyze_loss_landscape`` helpers PyTorch users write. Directions are not orthogonalised;
    two high-dimensional Gaussian directions are nearly orthogonal already. Filter norms are
    computed in at least float32.
    Parity: no torch twin; tests check the centre against ``loss_fn(params)``, a quadratic's
    slice against its parabola, and the filter norms against numpy.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> res = loss_landscape(lambda w: jnp.sum(w ** 2), jnp.array([3.0]),
    ...                      key=jax.random.key(0), num_points=5)
    >>> float(res.current_loss), float(res.curvature[0])  # d = +-3, so d^T H d = 2 * 9
    (9.0, 18.0)

  References:
    Li, Xu, Taylor, Studer, Goldstein, `Visualizing the Loss Landscape of Neural Nets
    <https://arxiv.org/abs/1712.09913>`_, 2018.
    Keskar et al., `On Large-Batch Training for Deep Learning: Generalization Gap and Sharp
    Minima <https://arxiv.org/abs/1609.04836>`_, 2017.
  """
  fn = "loss_landscape"
  loss_fn, params, extra = _common.module_params(fn, loss_fn, params)
  _check_options(fn, num_points, dims, normalize, batch_size)
  if _checks.is_concrete(span) and not float(span) > 0:
    raise ValueError(f"{fn}: expected `span` > 0, got {span!r}")
  if not any(_is_floating(x) for x in jax.tree.leaves(params)):
    raise TypeError(f"{fn}: expected `params` with at least one floating leaf, got none")
  static = dict(loss_fn=loss_fn, num_points=num_points, dims=dims, normalize=normalize,
                filter_axis=filter_axis, ignore_biasbn=ignore_biasbn, batch_size=batch_size)
  return _common.run(_landscape, _landscape_jit, static, params, key, span, (*args, *extra))


def filter_normalize(
    direction: Any,
    params: Any,
    *,
    normalize: Normalize = "filter",
    filter_axis: int = -1,
    ignore_biasbn: bool = False,
) -> Any:
  r"""Rescale ``direction`` leaf by leaf to the scale of ``params`` (Li et al.'s normalisation).

  ``"filter"``: every filter :math:`j` (one index along ``filter_axis``) gets
  :math:`d_j \leftarrow d_j \|\theta_j\| / \|d_j\|`; 0-D and 1-D leaves count as one filter.
  ``"layer"``: the same with one whole leaf as the unit. ``None``: unchanged. With
  ``ignore_biasbn`` the 0-D and 1-D leaves become zero. Non-floating leaves come back unchanged.
  A zero direction filter stays zero. The arithmetic runs in at least float32 and the result
  has the dtype of ``direction``.

  Args:
    direction: a pytree shaped like ``params``.
    params: the reference point ``theta``.
    normalize: ``"filter"`` | ``"layer"`` | ``None``.
    filter_axis: the output axis of weight leaves (``-1`` flax layout, ``0`` torch layout).
    ignore_biasbn: zero the direction on 0-D and 1-D leaves.

  Returns:
    The normalised direction, a pytree like ``direction``.
  """
  if normalize not in _NORMALIZE:
    raise ValueError(f"filter_normalize: expected normalize 'filter' | 'layer' | None, got {normalize!r}")
  leaf = functools.partial(_normalize_leaf, normalize=normalize, filter_axis=filter_axis,
                           ignore_biasbn=ignore_biasbn)
  return jax.tree.map(leaf, direction, params)


def _landscape(params, key, span, args, *, loss_fn, num_points, dims, normalize, filter_axis,
               ignore_biasbn, batch_size):
  fn = "loss_landscape"
  current_loss = loss_fn(params, *args)
  if jnp.shape(current_loss) != ():
    raise ValueError(f"{fn}: expected `loss_fn` to return a scalar, got shape {jnp.shape(current_loss)}")
  dtype = _common.tree_float_dtype(params)
  directions = tuple(
      filter_normalize(d, params, normalize=normalize, filter_axis=filter_axis, ignore_biasbn=ignore_biasbn)
      for d in _gaussian_directions(key, params, dims, dtype))
  steps = np.arange(num_points) * 2 - (num_points - 1)  # integers; the centre is exactly 0
  alphas = jnp.asarray(steps, dtype) / (num_points - 1) * jnp.asarray(span, dtype)
  if dims == 1:
    coords = alphas[:, None]
  else:
    a, b = jnp.meshgrid(alphas, alphas, indexing="ij")
    coords = jnp.stack([a.ravel(), b.ravel()], axis=-1)

  def at(coord):
    return loss_fn(_perturb(params, directions, coord), *args)

  if batch_size is None:
    flat = jax.vmap(at)(coords)
  else:
    flat = jax.lax.map(at, coords, batch_size=batch_size)
  losses = flat.reshape((num_points,) * dims)
  return _summarise(losses, current_loss, alphas, directions, span, dims, normalize)


_landscape_jit = jax.jit(
    _landscape,
    static_argnames=("loss_fn", "num_points", "dims", "normalize", "filter_axis", "ignore_biasbn",
                     "batch_size"))


def _summarise(losses, current_loss, alphas, directions, span, dims, normalize) -> LandscapeResult:
  n = alphas.shape[0]
  c = n // 2
  step = jnp.asarray(span, losses.dtype) * 2 / (n - 1)
  if dims == 1:
    curvature = ((losses[c + 1] - 2 * losses[c] + losses[c - 1]) / step**2)[None]
  else:
    along_a = losses[c + 1, c] - 2 * losses[c, c] + losses[c - 1, c]
    along_b = losses[c, c + 1] - 2 * losses[c, c] + losses[c, c - 1]
    curvature = jnp.stack([along_a, along_b]) / step**2
  loss_min, loss_max = jnp.min(losses), jnp.max(losses)
  current_loss = jnp.asarray(current_loss)
  return LandscapeResult(
      alphas=alphas,
      betas=alphas if dims == 2 else None,
      losses=losses,
      directions=directions,
      current_loss=current_loss,
      loss_std=jnp.std(losses),
      loss_variance=jnp.var(losses),
      loss_min=loss_min,
      loss_max=loss_max,
      loss_range=loss_max - loss_min,
      curvature=curvature,
      sharpness=(loss_max - current_loss) / (1 + jnp.abs(current_loss)),
      dims=dims,
      normalize=normalize,
  )


def _check_options(fn, num_points, dims, normalize, batch_size) -> None:
  if not isinstance(num_points, (int, np.integer)) or num_points < 3 or num_points % 2 == 0:
    raise ValueError(
        f"{fn}: expected `num_points` odd and >= 3 (so alpha = 0 is on the grid), got {num_points!r}")
  if dims not in (1, 2):
    raise ValueError(f"{fn}: expected `dims` 1 or 2, got {dims!r}")
  if normalize not in _NORMALIZE:
    raise ValueError(f"{fn}: expected `normalize` 'filter' | 'layer' | None, got {normalize!r}")
  if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
    raise ValueError(f"{fn}: expected `batch_size` None or an int >= 1, got {batch_size!r}")


def _is_floating(x: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _gaussian_directions(key: jax.Array, params: Any, dims: int, dtype: jnp.dtype) -> list[Any]:
  """``dims`` standard-normal pytrees like ``params`` (zeros on non-floating leaves), one draw."""
  leaves, treedef = jax.tree.flatten(params)
  leaves = [jnp.asarray(p) for p in leaves]
  sizes = [p.size if _is_floating(p) else 0 for p in leaves]
  z = jax.random.normal(key, (dims, sum(sizes)), dtype)
  offsets = np.cumsum([0, *sizes])
  out = []
  for row in z:
    ds = [row[o:o + n].reshape(p.shape).astype(p.dtype) if n else jnp.zeros_like(p)
          for p, o, n in zip(leaves, offsets, sizes)]
    out.append(jax.tree.unflatten(treedef, ds))
  return out


def _safe_scale(target_norm: jax.Array, norm: jax.Array) -> jax.Array:
  positive = norm > 0
  return jnp.where(positive, target_norm / jnp.where(positive, norm, 1), 0)


def _normalize_leaf(d: ArrayLike, p: ArrayLike, *, normalize, filter_axis, ignore_biasbn) -> jax.Array:
  d, p = jnp.asarray(d), jnp.asarray(p)
  if not _is_floating(p):
    return d
  if d.ndim <= 1 and ignore_biasbn:
    return jnp.zeros_like(d)
  if normalize is None:
    return d
  ct = _common.stat_dtype(d.dtype)
  d32, p32 = d.astype(ct), p.astype(ct)
  if normalize == "layer" or d.ndim <= 1:
    axes = None
  else:
    axis = filter_axis % d.ndim
    axes = tuple(i for i in range(d.ndim) if i != axis)
  d_norm = jnp.sqrt(jnp.sum(d32 * d32, axis=axes, keepdims=True))
  p_norm = jnp.sqrt(jnp.sum(p32 * p32, axis=axes, keepdims=True))
  return (d32 * _safe_scale(p_norm, d_norm)).astype(d.dtype)


def _perturb(params: Any, directions: tuple[Any, ...], coord: jax.Array) -> Any:
  def leaf(p, *ds):
    p = jnp.asarray(p)
    if not _is_floating(p):
      return p
    shift = sum(coord[i].astype(p.dtype) * d.astype(p.dtype) for i, d in enumerate(ds))
    return p + shift

  return jax.tree.map(leaf, params, *directions)

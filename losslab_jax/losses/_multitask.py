"""Multi-task loss weighting: a fixed weighted sum, and learned homoscedastic-uncertainty weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from losslab_jax._internal import _checks, _dtypes

_TASK_TYPES = ("regression", "classification")


def _stack(fn: str, name: str, values: Any, keys: tuple[str, ...] | None) -> tuple[jax.Array, tuple[str, ...] | None]:
  """A mapping (by sorted keys, or by ``keys``), a sequence or a 1-D array of scalars, as ``(K,)``."""
  if isinstance(values, Mapping):
    order = tuple(sorted(values)) if keys is None else keys
    if set(order) != set(values):
      raise ValueError(f"{fn}: expected `{name}` with the keys {sorted(order)}, got {sorted(values)}")
    parts = [jnp.asarray(values[k]) for k in order]
  elif keys is not None:
    raise TypeError(f"{fn}: expected `{name}` to be a mapping like the losses (keys {list(keys)}),"
                    f" got {type(values).__name__}")
  else:
    order = None
    if isinstance(values, (list, tuple)):
      parts = [jnp.asarray(v) for v in values]
    else:
      arr = jnp.asarray(values)
      if arr.ndim != 1:
        raise ValueError(f"{fn}: expected `{name}` as a sequence or 1-D array of scalars, got shape {arr.shape}")
      parts = [arr[i] for i in range(arr.shape[0])]
  if not parts:
    raise ValueError(f"{fn}: expected at least one entry in `{name}`")
  for i, p in enumerate(parts):
    label = order[i] if order else i
    if p.ndim != 0:
      raise ValueError(f"{fn}: expected scalar entries in `{name}`, entry {label!r} has shape {p.shape}"
                       f" (reduce each task loss to a scalar first)")
    if name == "losses":
      _checks.check_floating(fn, f"{name}[{label!r}]", p)
  dtype = _dtypes.result_float_dtype(*parts)
  return jnp.stack([p.astype(dtype) for p in parts]), order


def _pair(fn: str, losses: Any, other: Any, other_name: str) -> tuple[jax.Array, jax.Array]:
  l, keys = _stack(fn, "losses", losses, None)
  o, _ = _stack(fn, other_name, other, keys)
  if o.shape != l.shape:
    raise ValueError(f"{fn}: expected as many `{other_name}` as losses ({l.shape[0]}), got {o.shape[0]}")
  return l, o


def weighted_sum(losses: Any, weights: Any) -> jax.Array:
  r"""A fixed weighted sum of task losses, :math:`\sum_i w_i L_i`.

  The plain multi-task objective (``task1_weight * task1_loss + task2_weight * task2_loss``). The
  weights are hyperparameters: do not make them trainable (see
  :func:`uncertainty_weighting` for why a learned scale collapses).

  Args:
    losses: scalar task losses :math:`L_i`: a sequence, a 1-D array, or a mapping ``name -> loss``.
    weights: :math:`w_i`, in the same form (a mapping must have the same keys).

  Returns:
    A scalar in the promoted floating dtype of the losses and floating weights.

  Raises:
    TypeError: a loss is not floating, or the two arguments are not both mappings.
    ValueError: different numbers of entries or keys, or an entry that is not a scalar.

  Notes:
    Torch twin: none (the two-line sum in a torch training script). Not in API.md; an addition.

  Examples:
    >>> round(float(weighted_sum({"cls": 2.0, "box": 0.5}, {"cls": 1.0, "box": 4.0})), 6)
    4.0
  """
  l, w = _pair("weighted_sum", losses, weights, "weights")
  dtype = _dtypes.result_float_dtype(l, w)
  return jnp.sum(l.astype(dtype) * w.astype(dtype))


def uncertainty_weighting(
    losses: Any,
    log_vars: Any,
    *,
    task_types: Sequence[str] | None = None,
) -> jax.Array:
  r"""Multi-task loss weighted by learned homoscedastic uncertainty (Kendall, Gal & Cipolla, 2018).

  Each task :math:`i` has a learnable log-variance :math:`s_i = \log \sigma_i^2`, trained with the
  model by the same optimizer. The default objective is the common form

  .. math::
     \mathcal{L}(s) = \sum_i e^{-s_i} L_i + s_i,

  whose minimum over :math:`s_i` is at :math:`s_i = \log L_i` (weight :math:`1/L_i`): a noisy task
  gets a small weight, while the :math:`+ s_i` term stops the weights from collapsing. With
  ``task_types`` the paper's exact terms are used per task: a Gaussian likelihood (regression)
  :math:`\tfrac12 e^{-s_i} L_i + \tfrac12 s_i` (paper eq. 5 with :math:`L_i = \lVert y - f \rVert^2`,
  :math:`s_i = \log\sigma_i^2`), a softmax likelihood (classification)
  :math:`e^{-s_i} L_i + \tfrac12 s_i` (eq. 10's approximation). The default is twice the
  regression form: the same optimum :math:`s_i = \log L_i`, gradients twice as large.

  Why not "a learnable scale times the loss": minimising :math:`w \cdot L` over a trainable
  :math:`w` has gradient :math:`\partial/\partial w = L > 0`, which never vanishes, so gradient
  descent drives :math:`w` to 0 and then negative without bound (the loss is unbounded below); the
  model stops learning, then learns to *increase* its loss. The :math:`+ s_i` (log-variance) term
  is what makes the weight learnable (tested in ``tests/losses/test_multitask.py``).

  Args:
    losses: scalar task losses :math:`L_i \ge 0`: a sequence, a 1-D array, or a mapping.
    log_vars: the learnable :math:`s_i` in the same form (a ``(K,)`` array, an ``nnx.Param``'s
      value, or a mapping with the losses' keys); initialise at 0 (weight 1).
    task_types: ``None`` for the default form, or one of ``"regression"`` / ``"classification"``
      per task (the losses' order, or sorted keys for mappings).

  Returns:
    A scalar, in the promoted floating dtype of ``losses`` and ``log_vars``.

  Raises:
    TypeError: a loss is not floating; one argument is a mapping and the other is not.
    ValueError: different numbers of entries, a non-scalar entry, or an unknown task type.

  Notes:
    Torch twin: none in torch (the usual ``torch.exp(-log_var) * loss + log_var`` module). Not in
    API.md; an addition. Train ``log_vars`` with the model (``nnx.Param`` or a params pytree
    entry): ``uncertainty_weighting(losses, params["log_vars"])``.

  Examples:
    >>> import jax.numpy as jnp
    >>> round(float(uncertainty_weighting(jnp.array([2.0, 0.5]), jnp.zeros(2))), 6)  # s = 0: L1 + L2
    2.5
    >>> s = jnp.log(jnp.array([2.0, 0.5]))  # the optimum: 1 + log 2 + 1 + log 0.5
    >>> round(float(uncertainty_weighting(jnp.array([2.0, 0.5]), s)), 6)
    2.0

  References:
    Kendall, Gal, Cipolla, `Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics <https://arxiv.org/abs/1705.07115>`_, CVPR 2018.
  """
  fn = "uncertainty_weighting"
  l, s = _pair(fn, losses, log_vars, "log_vars")
  dtype = _dtypes.result_float_dtype(l, s)
  l, s = l.astype(dtype), s.astype(dtype)
  if task_types is None:
    return jnp.sum(jnp.exp(-s) * l + s)
  types = tuple(task_types)
  if len(types) != l.shape[0] or any(t not in _TASK_TYPES for t in types):
    raise ValueError(f"{fn}: expected `task_types` with one of {_TASK_TYPES} per task ({l.shape[0]}),"
                     f" got {types!r}")
  c = jnp.asarray([0.5 if t == "regression" else 1.0 for t in types], dtype)
  return jnp.sum(c * jnp.exp(-s) * l + 0.5 * s)

"""Muon (``torch.optim.Muon``): Nesterov momentum orthogonalised by Newton-Schulz iterations."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.tree_utils import tree_cast_like

from losslab_jax._internal import _checks
from losslab_jax.optim import _common

ScalarOrSchedule = optax.ScalarOrSchedule

_ADJUST_LR_FNS = ("original", "match_rms_adamw", "spectral_unclamped")


class MuonState(NamedTuple):
  """State of :func:`scale_by_muon`, named as torch's per-parameter state key.

  Attributes:
    momentum_buffer: torch's ``momentum_buffer`` per (2-D) leaf, in the param dtype. torch keeps
      no step count for Muon (a ``lr`` schedule counts in the alias's ``ScaleByLrState``).
  """

  momentum_buffer: optax.Updates


def _checkable(value: Any) -> bool:
  """A value fixed now (schedules and traced values are not checked)."""
  return not callable(value) and _checks.is_concrete(value)


def _check_muon(lr: Any, weight_decay: Any, momentum: Any, ns_coefficients: Any, ns_steps: Any,
                adjust_lr_fn: Any) -> None:
  """torch's checks and wording (constructor and ``_zeropower_via_newtonschulz``); NaN is rejected."""
  if _checkable(lr) and not 0.0 <= lr:
    raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
  if _checkable(momentum) and not 0.0 <= momentum:
    raise ValueError(f"momentum should be >= 0 but is: {momentum}")
  if not 0.0 <= weight_decay:
    raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
  if adjust_lr_fn is not None and adjust_lr_fn not in _ADJUST_LR_FNS:
    raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
  if not isinstance(ns_steps, int) or isinstance(ns_steps, bool) or ns_steps < 0:
    raise ValueError(f"ns_steps: expected a non-negative int, got {ns_steps!r}")
  if ns_steps >= 100:
    raise ValueError("Number of steps must be less than 100 for computational efficiency")
  if len(ns_coefficients) != 3:
    raise ValueError("Coefficients must be a tuple of exactly 3 values")


def _check_2d(params: Any) -> None:
  for p in jax.tree.leaves(params):
    if jnp.ndim(p) != 2:
      raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: "
                       f"{tuple(jnp.shape(p))}; route the other leaves to another optimizer with "
                       "ll.optim.param_groups (see the muon docstring)")


def adjust_lr_ratio(adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
  """torch's ``_adjust_lr`` ratio for a ``(A, B)`` = (fan-out, fan-in) parameter (Python double)."""
  a, b = shape[:2]
  if adjust_lr_fn is None or adjust_lr_fn == "original":
    return math.sqrt(max(1, a / b))
  if adjust_lr_fn == "match_rms_adamw":
    return 0.2 * math.sqrt(max(a, b))
  if adjust_lr_fn == "spectral_unclamped":
    return math.sqrt(a / b)
  return 1.0


def zeropower_via_newtonschulz(g: jax.Array, ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
                               ns_steps: int = 5, eps: float = 1e-7, ns_dtype: Any = jnp.bfloat16) -> jax.Array:
  r"""torch's ``_zeropower_via_newtonschulz``: ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``.

  ``X`` starts as ``G / max(||G||_F, eps)`` (transposed when ``G`` has more rows than columns)
  and is rounded to ``ns_dtype`` where torch rounds (torch: always bfloat16, with float32
  products); ``ns_dtype=None`` keeps ``G``'s dtype throughout. Returns ``X`` (values of
  ``ns_dtype``) in float32, or in ``G``'s dtype for ``ns_dtype=None``.
  """
  a, b, c = ns_coefficients
  if ns_dtype is None:
    acc, rnd = g.dtype, (lambda v: v)
  else:
    # Computed in (at least) float32 with an explicit rounding to ns_dtype wherever torch rounds:
    # torch's CPU bf16 matmul/addmm accumulate and scale in float32 and round once. A bf16 array
    # would not do: under jit XLA may keep bf16 intermediates in float32 (excess precision).
    fi = jnp.finfo(ns_dtype)
    acc = jnp.promote_types(ns_dtype, jnp.float32)
    rnd = lambda v: jax.lax.reduce_precision(v, exponent_bits=fi.nexp, mantissa_bits=fi.nmant)  # noqa: E731
  x = rnd(g.astype(acc))                                                    # grad.bfloat16()
  tall = g.shape[0] > g.shape[1]
  if tall:
    x = x.T
  norm = rnd(jnp.sqrt(jnp.sum(jnp.square(x))))
  x = rnd(x / jnp.maximum(norm, rnd(jnp.asarray(eps, acc))))             # div_(norm().clamp(min=eps))
  mm = lambda u, v: jnp.matmul(u, v, precision=jax.lax.Precision.HIGHEST)  # noqa: E731
  for _ in range(ns_steps):
    gram = rnd(mm(x, x.T))                                                  # X @ X.T
    gram_update = rnd(jnp.asarray(b, acc) * gram + jnp.asarray(c, acc) * mm(gram, gram))
    x = rnd(jnp.asarray(a, acc) * x + mm(gram_update, x))                  # addmm(X, G, X, beta=a)
  return x.T if tall else x


def _muon_leaf(g, buf, *, momentum, nesterov, ns_coefficients, ns_steps, eps, ns_dtype, adjust_lr_fn):
  """One leaf of torch's ``_single_tensor_muon`` before the lr: ``ratio * NS(nesterov(buf))``."""
  cd = _common.leaf_compute_dtype(g.dtype)
  gc = g.astype(cd)
  buf = _common.lerp(buf.astype(cd), gc, _common.one_minus(momentum))   # buf.lerp_(grad, 1 - momentum)
  update = _common.lerp(gc, buf, momentum) if nesterov else buf         # grad.lerp(buf, momentum)
  ortho = zeropower_via_newtonschulz(update, ns_coefficients, ns_steps, eps, ns_dtype)
  ratio = adjust_lr_ratio(adjust_lr_fn, g.shape)
  return ortho.astype(cd) * jnp.asarray(ratio, cd), buf


def scale_by_muon(momentum: float = 0.95, nesterov: bool = True,
                  ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315), eps: float = 1e-7,
                  ns_steps: int = 5, adjust_lr_fn: str | None = None,
                  ns_dtype: Any = jnp.bfloat16) -> optax.GradientTransformation:
  r"""Muon's direction (no learning rate, no sign, no weight decay), torch's arithmetic.

  .. math::
     B_t = B_{t-1} + (1-\mu)(g_t - B_{t-1}),\quad
     \tilde B_t = g_t + \mu (B_t - g_t)\ (\text{nesterov}),\ B_t\ \text{otherwise},\quad
     d_t = r(A, B)\ \mathrm{NS}^{(a,b,c)}_k(\tilde B_t; \varepsilon)

  with torch's learning-rate adjustment ratio ``r`` of the ``(A, B)`` parameter shape. Leaves
  must be 2-D (checked at ``init``). Arguments as in :func:`muon`.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`MuonState`.
  """
  _check_muon(0.0, 0.0, momentum, ns_coefficients, ns_steps, adjust_lr_fn)
  if callable(momentum):
    raise TypeError("muon: expected `momentum` to be a float (torch's Muon has no momentum scheduling)")
  if ns_dtype is not None:
    ns_dtype = jnp.dtype(ns_dtype)

  def init_fn(params):
    _check_2d(params)
    return MuonState(momentum_buffer=_common.tree_zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    _check_2d(updates)
    leaf = lambda g, b: _muon_leaf(g, b, momentum=momentum, nesterov=nesterov,  # noqa: E731
                                   ns_coefficients=ns_coefficients, ns_steps=ns_steps, eps=eps,
                                   ns_dtype=ns_dtype, adjust_lr_fn=adjust_lr_fn)
    d, buf = _common.map_leaves(leaf, 2, updates, state.momentum_buffer)
    cast = tree_cast_like
    return cast(d, updates), MuonState(momentum_buffer=cast(buf, state.momentum_buffer))

  return optax.GradientTransformation(init_fn, update_fn)


def muon(lr: ScalarOrSchedule = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
         ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315), eps: float = 1e-7,
         ns_steps: int = 5, adjust_lr_fn: str | None = None, *,
         ns_dtype: Any = jnp.bfloat16) -> optax.GradientTransformationExtraArgs:
  r"""``torch.optim.Muon`` as an optax transformation (2-D parameters only).

  torch's algorithm box (``torch.optim.Muon``, as its code runs it)::

      input: lr γ, weight decay λ, momentum μ, nesterov, NS coefficients (a, b, c), ε, NS steps k
      init:  B0 <- 0
      for t = 1, 2, ...:
        g_t <- ∇f(θ_{t-1})
        B_t <- B_{t-1} + (1 - μ)(g_t - B_{t-1})                 # buf.lerp_(grad, 1 - μ)
        B̃_t <- g_t + μ (B_t - g_t) if nesterov else B_t         # grad.lerp(buf, μ)
        X <- bf16(B̃_t) (transposed if tall);  X <- X / max(||X||_F, ε)
        repeat k times:  A <- X Xᵀ;  X <- a X + (b A + c A²) X
        θ_t <- θ_{t-1} (1 - γλ) - γ r(A, B) O_t                  # O_t = X (transposed back)

  ``r`` is torch's ``adjust_lr_fn``: ``None``/``"original"`` ``sqrt(max(1, A/B))``,
  ``"match_rms_adamw"`` ``0.2 sqrt(max(A, B))``, ``"spectral_unclamped"`` ``sqrt(A/B)``, for a
  parameter of shape ``(A, B)``. The chain is ``scale_by_muon -> -lr (u + λ θ)``.

  **Only 2-D leaves.** torch refuses other parameters; so does ``init`` here. Route biases,
  norms and embeddings to AdamW with :func:`~losslab_jax.optim.param_groups`, as torch's docs
  advise::

      labels = lambda params: jax.tree.map(lambda p: "muon" if p.ndim == 2 else "adamw", params)
      tx = ll.optim.param_groups({"muon": ll.optim.muon(lr=0.02),
                                  "adamw": ll.optim.adamw(lr=3e-4, weight_decay=0.01)}, labels)

  Args:
    lr: γ, a float or a schedule ``count -> lr``.
    weight_decay: λ, decoupled (``θ <- θ(1 - γλ)``, with the unadjusted γ as in torch).
    momentum: μ.
    nesterov: use ``g + μ(B - g)`` instead of ``B``.
    ns_coefficients: ``(a, b, c)`` of the quintic Newton-Schulz iteration.
    eps: floor of the Frobenius norm the iteration starts by dividing by.
    ns_steps: ``k`` (< 100, torch's limit).
    adjust_lr_fn: ``None``, ``"original"``, ``"match_rms_adamw"`` or ``"spectral_unclamped"``.
    ns_dtype: (keyword only, not in torch) the dtype of the Newton-Schulz iterations.
      ``jnp.bfloat16`` (default) is what torch does for every parameter dtype; ``None`` runs
      them in the parameter's compute dtype (float32/float64), a full-precision Muon.

  Returns:
    ``optax.GradientTransformationExtraArgs``; state ``(MuonState, ScaleByLrState)``.

  Raises:
    ValueError: torch's ``Learning rate should be >= 0 but is: ...``, ``momentum should be >= 0
      ...``, ``weight decay should be >= 0 ...``, ``Adjust learning rate function ... is not
      supported``, ``Number of steps must be less than 100 ...``, ``Coefficients must be a tuple
      of exactly 3 values``; at ``init``: ``Muon only supports 2D parameters ...``.

  Notes:
    Torch twin: ``torch.optim.Muon``. The default (``ns_dtype=bfloat16``) reproduces torch's
    bfloat16 iterations, but XLA and torch round bfloat16 matrix products differently (each
    rounds to bfloat16 at different points), so the orthogonalised update agrees with torch's
    only to bfloat16 noise: the parity case ``muon`` measures and bounds it. With
    ``ns_dtype=None`` the result is exact against torch's algorithm with its bfloat16 cast
    removed (``parity.reference.muon``): float64 <= 1e-10, float32 <= 1e-5 (case
    ``muon_full_precision``). bf16/f16 leaves keep their dtype (computed in float32 around the
    iteration).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> p = jnp.zeros((2, 2))
    >>> tx = ll.optim.muon(lr=0.1, weight_decay=0.0, ns_dtype=None)
    >>> u, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 2.0]]), tx.init(p), p)
    >>> print(jnp.round(jnp.diag(u), 4))  # -lr * the NS polynomial of 1/sqrt(2), 5 times
    [-0.1108 -0.1108]
  """
  _check_muon(lr, weight_decay, momentum, ns_coefficients, ns_steps, adjust_lr_fn)
  return _common.chain(
      scale_by_muon(momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, ns_dtype),
      _common.scale_by_lr(lr, decoupled_weight_decay=weight_decay, fn="muon"))


# --- torch twin (read by ll.interop.torch, parity and the docs; see _registry.TorchTwin) ---
from losslab_jax.optim import _registry  # noqa: E402

_registry.register_torch_twin(_registry.TorchTwin(
    torch_class="torch.optim.Muon", factory=muon, state_type=MuonState, torch_keeps_step=False,
    kwarg_map={k: k for k in ("weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps",
                              "adjust_lr_fn")},
    notes="2-D parameters only; Newton-Schulz in bfloat16 as torch (ns_dtype=None: full precision);"
          " torch keeps no step count"))

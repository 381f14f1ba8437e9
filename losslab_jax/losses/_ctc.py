"""Connectionist temporal classification: ctc_loss (torch's ``(T, N, C)`` layout)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losslab_jax._internal import _checks, _dtypes
from losslab_jax._internal._reduction import reduce
from losslab_jax._internal._typing import Reduction

_NEG_INF = -jnp.inf


def _logaddexp3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
  """``log(e^a + e^b + e^c)`` with -inf (unreachable) handled and NaN kept.

  All three -inf gives -inf with gradient 0 (``jnp.logaddexp`` gives a NaN gradient there, which
  would leak from unreachable lattice states into reachable ones). The double ``where`` tests
  ``s == 0`` rather than ``s > 0``, so a NaN input stays NaN.
  """
  m = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(a, b), c))
  m = jnp.where(m == _NEG_INF, jnp.zeros_like(m), m)
  s = jnp.exp(a - m) + jnp.exp(b - m) + jnp.exp(c - m)
  empty = s == 0
  return jnp.where(empty, jnp.full_like(s, _NEG_INF), m + jnp.log(jnp.where(empty, jnp.ones_like(s), s)))


@jax.custom_vjp
def _nan_grad_where(x: jax.Array, bad: jax.Array) -> jax.Array:
  """0 in value, shape ``bad.shape`` ``(N,)``; its gradient with respect to ``x`` ``(T, N, C)`` is
  NaN in the columns of samples where ``bad``, and 0 elsewhere."""
  return jnp.zeros(bad.shape, x.dtype)


def _nan_grad_fwd(x, bad):
  return _nan_grad_where(x, bad), (bad, jnp.zeros_like(x))


def _nan_grad_bwd(res, g):
  bad, zeros = res
  per_sample = g * jnp.where(bad, jnp.full_like(g, jnp.nan), jnp.zeros_like(g))
  return zeros + per_sample[None, :, None], None


_nan_grad_where.defvjp(_nan_grad_fwd, _nan_grad_bwd)


def _as_int_array(fn: str, name: str, x: ArrayLike | Sequence[int]) -> jax.Array:
  a = jnp.asarray(x)
  if not _dtypes.is_integer(a) or a.dtype == jnp.bool_:
    raise TypeError(f"{fn}: expected `{name}` to hold integers, got dtype {a.dtype} with shape {a.shape}")
  return a


def _padded_targets(
    fn: str, targets: jax.Array, target_lengths: jax.Array, batch: int, max_target_length: int | None
) -> tuple[jax.Array, jax.Array]:
  """Targets as ``(N, S)`` padded, plus the per-sample ``ok`` flag of the length checks."""
  if targets.ndim == 2:
    if targets.shape[0] != batch:
      raise ValueError(f"{fn}: expected padded `targets` of shape (N, S) with N = {batch}, got {targets.shape}")
    ok = (target_lengths >= 0) & (target_lengths <= targets.shape[1])
    _checks.value_check(fn, ok, f"expected target_lengths in [0, S = {targets.shape[1]}] (padded"
                                f" targets of shape {targets.shape})")
    return targets, ok
  if targets.ndim != 1:
    raise ValueError(f"{fn}: expected `targets` padded (N, S) or concatenated 1-D, got shape {targets.shape}")
  total = jnp.sum(target_lengths)
  _checks.value_check(fn, total == targets.shape[0],
                      f"expected concatenated `targets` of length sum(target_lengths), got length"
                      f" {targets.shape[0]} (sum {total if _checks.is_concrete(total) else '?'})")
  if max_target_length is None:
    if _checks.is_concrete(target_lengths):
      max_target_length = int(np.max(np.asarray(target_lengths), initial=0))
    else:
      max_target_length = targets.shape[0]
  s = int(max_target_length)
  ok = (target_lengths >= 0) & (target_lengths <= s) & (total == targets.shape[0])
  offsets = jnp.cumsum(target_lengths) - target_lengths
  idx = offsets[:, None] + jnp.arange(s)[None, :]
  padded = targets[jnp.clip(idx, 0, max(targets.shape[0] - 1, 0))] if targets.shape[0] else jnp.zeros(
      (batch, s), targets.dtype)
  return padded, ok


@jax.jit
def _ctc_nll(lp: jax.Array, ext: jax.Array, skip: jax.Array, in_len: jax.Array, tgt_len: jax.Array) -> jax.Array:
  """``-log p(target | lp)`` per sample by the alpha recursion in log space.

  ``lp``: ``(T, N, C)``; ``ext``: ``(N, L)`` blank-interleaved labels (``L = 2S + 1``);
  ``skip``: ``(N, L)`` where the transition ``s - 2 -> s`` is allowed.
  """
  num_t, batch, _ = lp.shape
  length = ext.shape[1]
  emit = jnp.take_along_axis(lp, jnp.broadcast_to(ext[None], (num_t, batch, length)), axis=2)  # (T, N, L)
  s_idx = jnp.arange(length)[None, :]
  alpha0 = jnp.where(s_idx < 2, emit[0], jnp.full_like(emit[0], _NEG_INF))
  # no frames at all: only the empty alignment, log 1 at s = 0 (torch: loss 0 for an empty target)
  alpha0 = jnp.where((in_len > 0)[:, None], alpha0, jnp.where(s_idx == 0, 0.0, _NEG_INF).astype(lp.dtype))
  neg = jnp.full((batch, 1), _NEG_INF, lp.dtype)

  def step(alpha, inputs):
    t, e_t = inputs
    prev1 = jnp.concatenate([neg, alpha[:, :-1]], axis=1)
    prev2 = jnp.concatenate([neg, neg, alpha[:, :-2]], axis=1)[:, :length]
    prev2 = jnp.where(skip, prev2, jnp.full_like(prev2, _NEG_INF))
    new = e_t + _logaddexp3(alpha, prev1, prev2)
    return jnp.where((t < in_len)[:, None], new, alpha), None

  alpha, _ = jax.lax.scan(step, alpha0, (jnp.arange(1, num_t), emit[1:]))
  last = jnp.take_along_axis(alpha, (2 * tgt_len)[:, None], axis=1)[:, 0]
  before = jnp.take_along_axis(alpha, jnp.maximum(2 * tgt_len - 1, 0)[:, None], axis=1)[:, 0]
  before = jnp.where(tgt_len > 0, before, jnp.full_like(before, _NEG_INF))
  return -_logaddexp3(last, before, jnp.full_like(last, _NEG_INF))


def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike | Sequence[int],
    target_lengths: ArrayLike | Sequence[int],
    *,
    blank: int = 0,
    reduction: Reduction = "mean",
    zero_infinity: bool = False,
    max_target_length: int | None = None,
) -> jax.Array:
  r"""Connectionist temporal classification loss: ``-log`` of the total probability of all alignments.

  For speech and handwriting recognition: per-frame class log-probabilities of an unsegmented input
  against a shorter label sequence. With the label sequence :math:`y` of length :math:`S` extended by
  blanks to :math:`y' = (b, y_1, b, y_2, \dots, y_S, b)` and log-probabilities :math:`l_{t,c}`, the
  forward variables (in log space) are

  .. math::
     \alpha_0(0) = l_{0,b},\quad \alpha_0(1) = l_{0,y_1},\qquad
     \alpha_t(s) = l_{t,y'_s} + \log\!\sum_{k \in K(s)} e^{\alpha_{t-1}(s - k)},

  with :math:`K(s) = \{0, 1, 2\}` when :math:`y'_s \ne b` and :math:`y'_s \ne y'_{s-2}`, else
  :math:`\{0, 1\}`; the loss of a sample with :math:`T_i` frames is
  :math:`\ell_i = -\log(e^{\alpha_{T_i-1}(2S)} + e^{\alpha_{T_i-1}(2S-1)})`. ``"mean"`` divides each
  :math:`\ell_i` by :math:`\max(S_i, 1)` and then averages over the batch (torch's rule).

  Args:
    log_probs: log-probabilities, shape ``[T, N, C]`` (or ``[T, C]`` unbatched), floating; frames
      past a sample's ``input_lengths`` are not read.
    targets: label indices, integer: padded ``[N, S]`` (entries past ``target_lengths`` are not
      read) or the ``N`` sequences concatenated, 1-D of length ``sum(target_lengths)``; ``[S]``
      for unbatched input.
    input_lengths: frames per sample, ``[N]`` (``[]`` unbatched), array or sequence of ints.
    target_lengths: labels per sample, ``[N]`` (``[]`` unbatched), array or sequence of ints.
    blank: the blank class, in ``[0, C)``.
    reduction: ``"none"`` | ``"mean"`` | ``"sum"``.
    zero_infinity: replace infinite losses (an input too short for its target) and their gradients
      by 0.
    max_target_length: for concatenated targets under ``jit``, a static bound on
      ``target_lengths`` (the lattice width); by default the largest length when the lengths are
      concrete, else ``len(targets)``. Not in torch.

  Returns:
    ``"none"``: shape ``[N]`` (``[]`` unbatched); otherwise a scalar; in the dtype of ``log_probs``.

  Raises:
    TypeError: ``log_probs`` not floating; targets or lengths not integer.
    ValueError: wrong ranks or shapes, ``blank`` outside ``[0, C)``, unknown ``reduction``. Eagerly
      also: lengths negative or too long (``input_lengths > T``, ``target_lengths > S``), concatenated
      targets whose length is not ``sum(target_lengths)``, a label outside ``[0, C)``; under ``jit``
      such a sample's loss is NaN (and :func:`losslab_jax.losses.checked` reports it).

  Notes:
    Torch twin: ``torch.nn.functional.ctc_loss``; same layout, same ``"mean"``. Differences: a
    label outside ``[0, C)`` raises (torch reads out of bounds). The gradient is the true gradient
    of the loss with respect to ``log_probs``; torch's CTC backward instead returns a gradient that
    is correct only when ``log_probs`` comes out of a ``log_softmax`` (pytorch#52241), so parity
    compares gradients with respect to the logits fed to ``log_softmax``, as torch's own tests do.
    An infinite loss (``zero_infinity=False``) has a NaN gradient over the sample's frames, as in
    torch.
    Parity: float64 <= 1e-10, float32 <= 3e-3 through a log-softmax (case ``ctc_loss``; the reason,
    measured, is on the case).

  Examples:
    >>> import jax.numpy as jnp
    >>> lp = jnp.log(jnp.full((2, 1, 2), 0.5))  # T=2 frames, 1 sample, classes {blank, a}
    >>> # alignments of "a": (a, a), (a, blank), (blank, a): 3 * 0.25
    >>> round(float(ctc_loss(lp, jnp.array([[1]]), [2], [1], reduction="sum")), 6)  # -log 0.75
    0.287682

  References:
    Graves, Fernandez, Gomez, Schmidhuber, `Connectionist Temporal Classification
    <https://www.cs.toronto.edu/~graves/icml_2006.pdf>`_, 2006.
  """
  fn = "ctc_loss"
  _checks.check_reduction(fn, reduction)
  lp = jnp.asarray(log_probs)
  _checks.check_floating(fn, "log_probs", lp)
  _checks.check_ndim(fn, "log_probs", lp, (2, 3), "(T, N, C) or unbatched (T, C)")
  tg = _as_int_array(fn, "targets", targets)
  il = _as_int_array(fn, "input_lengths", input_lengths)
  tl = _as_int_array(fn, "target_lengths", target_lengths)
  unbatched = lp.ndim == 2
  if unbatched:
    if tg.ndim != 1 or il.ndim != 0 or tl.ndim != 0:
      raise ValueError(f"{fn}: expected targets (S,) and 0-D lengths for unbatched log_probs {lp.shape},"
                       f" got {tg.shape}, {il.shape}, {tl.shape}")
    lp, tg, il, tl = lp[:, None], tg[None], il[None], tl[None]
  num_t, batch, num_c = lp.shape
  for name, a in (("input_lengths", il), ("target_lengths", tl)):
    if a.shape != (batch,):
      raise ValueError(f"{fn}: expected `{name}` of shape ({batch},), got {a.shape}")
  if not isinstance(blank, int) or not 0 <= blank < num_c:
    raise ValueError(f"{fn}: expected `blank` in [0, C = {num_c}), got {blank!r}")
  tg, ok = _padded_targets(fn, tg, tl, batch, max_target_length)
  in_ok = (il >= 0) & (il <= num_t)
  _checks.value_check(fn, in_ok, f"expected input_lengths in [0, T = {num_t}]")
  s_idx = jnp.arange(tg.shape[1])[None, :]
  used = s_idx < tl[:, None]
  lab_ok = ~used | ((tg >= 0) & (tg < num_c))
  _checks.value_check(fn, lab_ok, f"expected target labels in [0, C = {num_c})")
  ok = ok & in_ok & jnp.all(lab_ok, axis=1)
  dtype = _dtypes.result_float_dtype(lp)
  lpc = lp.astype(_dtypes.compute_dtype(dtype))

  labels = jnp.where(used & lab_ok, tg, blank)
  ext = jnp.full((batch, 2 * tg.shape[1] + 1), blank, labels.dtype).at[:, 1::2].set(labels)
  ext_prev2 = jnp.concatenate([jnp.full((batch, 2), blank, ext.dtype), ext[:, :-2]], axis=1)
  pos = jnp.arange(ext.shape[1])[None, :]
  skip = (pos % 2 == 1) & (pos >= 3) & (ext != ext_prev2)  # a label may follow a different label directly
  nll = _ctc_nll(lpc, ext, skip, jnp.clip(il, 0, num_t), jnp.clip(tl, 0, tg.shape[1]))

  inf = jnp.isinf(nll)
  if zero_infinity:
    nll = jnp.where(inf, jnp.zeros_like(nll), nll)
  else:  # torch's gradient of an infinite loss is NaN over the sample's frames
    frames = jnp.arange(num_t)[:, None, None] < il[None, :, None]
    nll = nll + _nan_grad_where(jnp.where(frames, lpc, jnp.zeros_like(lpc)), inf)
  nll = jnp.where(ok, nll, jnp.full_like(nll, jnp.nan))
  if reduction == "mean":
    nll = nll / jnp.maximum(tl, 1).astype(nll.dtype)
  out = reduce(nll, reduction)
  if unbatched and reduction == "none":
    out = out[0]
  return out.astype(dtype)

"""ctc_loss: values and gradients against a brute-force sum over all alignments, formats, edge cases.

The reference enumerates every path of length T over C classes, collapses it (merge repeats, drop
blanks) and adds the probabilities of the paths that give the target: independent of the recursion.
Torch facts used (torch 2.14): an infeasible sample has loss inf and a NaN gradient over its frames;
"mean" divides by the target length clamped to 1; an empty input with an empty target costs 0.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

L = ll.losses


def _collapse(path, blank):
  out, prev = [], None
  for c in path:
    if c != prev and c != blank:
      out.append(c)
    prev = c
  return tuple(out)


def _brute_force_nll(lp, target, blank=0):
  """``-log sum_{paths -> target} prod_t p_t(path_t)`` for one sample, ``lp`` ``(T, C)``, in jnp."""
  num_t, num_c = lp.shape
  paths = np.array(list(itertools.product(range(num_c), repeat=num_t)))  # (C**T, T)
  keep = np.array([_collapse(p, blank) == tuple(target) for p in paths])
  if not keep.any():
    return jnp.inf
  chosen = paths[keep]
  terms = jnp.sum(lp[jnp.arange(num_t)[None, :], chosen], axis=1)
  return -jax.nn.logsumexp(terms)


def _log_probs(rng, shape):
  x = rng.standard_normal(shape)
  return jnp.asarray(x - np.log(np.exp(x).sum(-1, keepdims=True)))


@pytest.mark.parametrize("target,blank", [((1, 2), 0), ((1, 1), 0), ((2,), 0), ((), 0), ((0, 0), 2),
                                          ((1, 2, 1), 0)])
def test_value_and_gradient_match_brute_force(target, blank):
  lp = _log_probs(np.random.default_rng(len(target) + blank), (5, 3))
  tg = jnp.asarray([list(target) or [0]], jnp.int32)
  want, want_g = jax.value_and_grad(lambda a: _brute_force_nll(a, target, blank))(lp)

  def ours(a):
    return L.ctc_loss(a[:, None], tg, [5], [len(target)], blank=blank, reduction="sum")

  got, got_g = jax.value_and_grad(ours)(lp)
  assert_close(got, want, rtol=1e-12)
  assert_close(got_g, want_g, rtol=1e-10, atol=1e-13)


def test_doc_example_by_hand():
  lp = jnp.log(jnp.full((2, 1, 2), 0.5))
  assert_close(L.ctc_loss(lp, jnp.array([[1]]), [2], [1], reduction="none"), [-np.log(0.75)], rtol=1e-14)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  lp = _log_probs(rng, (9, 3, 5))
  tg = jnp.asarray([[1, 1, 2], [3, 4, 0], [2, 0, 0]], jnp.int32)
  return lp, tg, jnp.asarray([9, 6, 4]), jnp.asarray([3, 2, 1])


def test_reductions_follow_torch_mean_rule():
  lp, tg, il, tl = _batch()
  none = np.asarray(L.ctc_loss(lp, tg, il, tl, reduction="none"))
  for i in range(3):  # per-sample values against the brute force on the sample's own frames
    t = tuple(np.asarray(tg[i, :tl[i]]).tolist())
    if int(il[i]) <= 6:
      assert_close(none[i], _brute_force_nll(lp[: int(il[i]), i], t), rtol=1e-12)
  assert_close(L.ctc_loss(lp, tg, il, tl, reduction="sum"), none.sum(), rtol=1e-14)
  assert_close(L.ctc_loss(lp, tg, il, tl), np.mean(none / np.array([3, 2, 1])), rtol=1e-14)
  # an empty target is divided by 1, not 0
  tl0 = jnp.asarray([3, 2, 0])
  none0 = np.asarray(L.ctc_loss(lp, tg, il, tl0, reduction="none"))
  assert_close(none0[2], -np.sum(np.asarray(lp)[:4, 2, 0]), rtol=1e-13)
  assert_close(L.ctc_loss(lp, tg, il, tl0), np.mean(none0 / np.array([3, 2, 1])), rtol=1e-14)


def test_concatenated_unbatched_and_sequence_lengths_agree_with_padded():
  lp, tg, il, tl = _batch()
  padded = L.ctc_loss(lp, tg, il, tl, reduction="none")
  flat = jnp.asarray([1, 1, 2, 3, 4, 2], jnp.int32)
  assert_close(L.ctc_loss(lp, flat, il, tl, reduction="none"), padded, rtol=1e-14)
  assert_close(L.ctc_loss(lp, tg, [9, 6, 4], (3, 2, 1), reduction="none"), padded, rtol=1e-14)
  # jit with traced lengths: the lattice width is a static bound
  f = jax.jit(lambda a, t, i, n: L.ctc_loss(a, t, i, n, reduction="none", max_target_length=3))
  assert_close(f(lp, flat, il, tl), padded, rtol=1e-14)
  g = jax.jit(lambda a, t, i, n: L.ctc_loss(a, t, i, n, reduction="none"))  # bound: len(targets)
  assert_close(g(lp, flat, il, tl), padded, rtol=1e-14)
  one = L.ctc_loss(lp[:, 1], tg[1, :2], 6, 2, reduction="none")
  assert one.shape == ()
  assert_close(one, padded[1], rtol=1e-14)


def test_vmap_over_problems_and_grad_under_jit():
  parts = [_batch(s) for s in range(3)]
  lp = jnp.stack([p[0] for p in parts])
  v = jax.vmap(lambda a: L.ctc_loss(a, parts[0][1], parts[0][2], parts[0][3]))(lp)
  assert_close(v, [L.ctc_loss(p[0], *parts[0][1:]) for p in parts], rtol=1e-14)
  lp0, tg, il, tl = parts[0]
  g = jax.jit(jax.grad(lambda a: L.ctc_loss(a, tg, il, tl)))(lp0)
  assert np.isfinite(g).all()
  # frames past input_lengths get no gradient
  assert np.all(np.asarray(g)[4:, 2] == 0) and np.all(np.asarray(g)[6:, 1] == 0)


def test_infeasible_sample_inf_with_nan_gradient_or_zeroed():
  lp, tg, il, _ = _batch()
  tl = jnp.asarray([3, 2, 1])
  il = jnp.asarray([9, 2, 4])  # sample 1 needs 2 labels in 2 frames: feasible; make it 3 repeated labels
  tg = tg.at[1].set(jnp.asarray([3, 3, 0], jnp.int32))
  il = il.at[1].set(2)  # "3 3" needs a blank between: 3 frames minimum
  none = L.ctc_loss(lp, tg, il, tl, reduction="none")
  assert np.isinf(none[1]) and np.isfinite(none[0])
  g = jax.grad(lambda a: L.ctc_loss(a, tg, il, tl, reduction="sum"))(lp)
  g = np.asarray(g)
  assert np.isnan(g[:2, 1]).all() and (g[2:, 1] == 0).all()  # torch: NaN over the sample's frames
  assert np.isfinite(g[:, 0]).all()
  z = L.ctc_loss(lp, tg, il, tl, reduction="none", zero_infinity=True)
  assert_close(z, np.where(np.isinf(none), 0.0, none))
  gz = np.asarray(jax.grad(lambda a: L.ctc_loss(a, tg, il, tl, zero_infinity=True))(lp))
  assert np.isfinite(gz).all() and (gz[:, 1] == 0).all()


def test_zero_input_length_and_confident_inputs():
  lp, tg, _, tl = _batch()
  out = L.ctc_loss(lp, tg, jnp.asarray([9, 6, 0]), jnp.asarray([3, 2, 0]), reduction="none")
  assert float(out[2]) == 0.0  # no frames, empty target: the empty alignment, as torch
  assert np.isinf(L.ctc_loss(lp, tg, jnp.asarray([9, 6, 0]), tl, reduction="none")[2])
  big = jax.nn.log_softmax(30.0 * jnp.asarray(np.random.default_rng(1).standard_normal((9, 3, 5))), axis=-1)
  val, g = jax.value_and_grad(lambda a: L.ctc_loss(a, tg, [9, 6, 4], tl))(big)
  assert np.isfinite(val) and np.isfinite(g).all()


def test_nan_in_nan_out_value_and_gradient():
  lp, tg, il, tl = _batch()
  bad = lp.at[1, 0, 2].set(jnp.nan)
  out = L.ctc_loss(bad, tg, il, tl, reduction="none")
  assert np.isnan(out[0]) and np.isfinite(out[1:]).all()
  g = jax.grad(lambda a: L.ctc_loss(a, tg, il, tl, reduction="sum"))(bad)
  assert np.isnan(np.asarray(g)[:, 0]).any()


def test_dtypes():
  lp, tg, il, tl = _batch()
  for dt in (jnp.bfloat16, jnp.float32, jnp.float64):
    out = L.ctc_loss(lp.astype(dt), tg, il, tl)
    assert out.dtype == dt
    # measured: bf16 1.4e-3 (unit roundoff 3.9e-3), float32 2.4e-8, float64 0
    assert_close(out, L.ctc_loss(lp, tg, il, tl), rtol={jnp.bfloat16: 2e-2, jnp.float32: 1e-6, jnp.float64: 1e-12}[dt])


def test_errors():
  lp, tg, il, tl = _batch()
  with pytest.raises(ValueError, match="blank"):
    L.ctc_loss(lp, tg, il, tl, blank=5)
  with pytest.raises(ValueError, match="input_lengths"):
    L.ctc_loss(lp, tg, jnp.asarray([10, 6, 4]), tl)
  with pytest.raises(ValueError, match="input_lengths"):
    L.ctc_loss(lp, tg, jnp.asarray([9, -1, 4]), tl)
  with pytest.raises(ValueError, match="target_lengths"):
    L.ctc_loss(lp, tg, il, jnp.asarray([4, 2, 1]))
  with pytest.raises(ValueError, match="labels"):
    L.ctc_loss(lp, tg.at[0, 0].set(5), il, tl)
  with pytest.raises(ValueError, match="sum"):
    L.ctc_loss(lp, jnp.asarray([1, 2, 3], jnp.int32), il, tl)
  with pytest.raises(TypeError, match="integers"):
    L.ctc_loss(lp, tg.astype(jnp.float64), il, tl)
  with pytest.raises(TypeError, match="floating"):
    L.ctc_loss(jnp.zeros((9, 3, 5), jnp.int32), tg, il, tl)
  with pytest.raises(ValueError, match="reduction"):
    L.ctc_loss(lp, tg, il, tl, reduction="avg")
  # under jit a label out of range cannot raise: the sample is NaN, and `checked` reports it
  out = jax.jit(lambda t: L.ctc_loss(lp, t, il, tl, reduction="none"))(tg.at[0, 0].set(7))
  assert np.isnan(out[0]) and np.isfinite(out[1:]).all()
  err, _ = jax.jit(L.checked(lambda t: L.ctc_loss(lp, t, il, tl)))(tg.at[0, 0].set(7))
  assert err.get() is not None

"""cross_entropy, nll_loss, focal_loss: hand math, a numpy reference, edge cases and bad input.

torch parity lives in ``parity/cases/losses_classification.py``; these tests pin the semantics
with numbers worked out by hand or by an independent numpy reference written from torch's
documented formulas (semantics.md §3.1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close, rng

CE, NLL, FOCAL = ll.losses.cross_entropy, ll.losses.nll_loss, ll.losses.focal_loss


# --- an independent numpy reference (loops, float64) ---------------------------------------------


def _np_log_softmax(x):
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _np_cross_entropy(x, y, w=None, ignore_index=-100, reduction="mean", eps=0.0):
  """torch's formula, one position at a time; x ``(P, C)``, y ``(P,)``."""
  lp = _np_log_softmax(np.asarray(x, np.float64))
  c = lp.shape[-1]
  w = np.ones(c) if w is None else np.asarray(w, np.float64)
  losses, denom = [], 0.0
  for lpi, yi in zip(lp, y):
    if yi == ignore_index:
      losses.append(0.0)
      continue
    nll = -w[yi] * lpi[yi]
    smooth = -sum(w[k] * lpi[k] for k in range(c))
    losses.append((1 - eps) * nll + eps / c * smooth)
    denom += w[yi]
  losses = np.array(losses)
  return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / denom if denom else np.nan}[reduction]


def _np_focal(x, y, gamma, alpha=None, ignore_index=-100, reduction="mean"):
  lp = _np_log_softmax(np.asarray(x, np.float64))
  losses, kept = [], 0
  for lpi, yi in zip(lp, y):
    if yi == ignore_index:
      losses.append(0.0)
      continue
    a = 1.0 if alpha is None else (alpha if np.ndim(alpha) == 0 else alpha[yi])
    losses.append(-a * (1 - math.exp(lpi[yi])) ** gamma * lpi[yi])
    kept += 1
  losses = np.array(losses)
  return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / kept if kept else np.nan}[reduction]


def _data(seed=0, n=7, c=4, ignore=True, dtype=np.float64):
  r = rng(seed)
  x = r.standard_normal((n, c)).astype(dtype)
  y = r.integers(0, c, n).astype(np.int32)
  if ignore:
    y[[1, 4]] = -100
  return x, y, r.uniform(0.2, 2.0, c).astype(dtype)


# --- cross_entropy: values ------------------------------------------------------------------------


def test_uniform_logits_give_log_c():
  x = jnp.zeros((3, 5), jnp.float64)
  assert_close(CE(x, jnp.array([0, 2, 4])), math.log(5))


def test_hand_value_two_classes():
  # logits (0, ln 3): p = (1/4, 3/4); targets 1 and 0 -> (ln(4/3) + ln 4) / 2
  x = jnp.array([[0.0, math.log(3.0)]] * 2, jnp.float64)
  assert_close(CE(x, jnp.array([1, 0])), (math.log(4 / 3) + math.log(4)) / 2)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.7, 1.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_index_targets_match_numpy_reference(reduction, eps, weighted):
  x, y, w = _data()
  got = CE(x, y, w if weighted else None, reduction=reduction, label_smoothing=eps)
  assert_close(got, _np_cross_entropy(x, y, w if weighted else None, reduction=reduction, eps=eps))


def test_weighted_mean_divides_by_weight_sum_of_kept_targets():
  # nll per kept target: ln 2 (uniform logits); weights 2 (class 0) and 3 (class 1), third ignored
  x = jnp.zeros((3, 2), jnp.float64)
  got = CE(x, jnp.array([0, 1, -100]), jnp.array([2.0, 3.0], jnp.float64))
  assert_close(got, (2 * math.log(2) + 3 * math.log(2)) / (2 + 3))


def test_weighted_label_smoothing_is_torchs_formula_not_weighted_smoothed_ce():
  # x = (0, ln 3), y = 1, w = (2, 1), eps = 0.5, C = 2; lp = (ln 1/4, ln 3/4)
  x = jnp.array([[0.0, math.log(3.0)]], jnp.float64)
  w = jnp.array([2.0, 1.0], jnp.float64)
  lp0, lp1 = math.log(0.25), math.log(0.75)
  torch_formula = (0.5 * 1.0 * -lp1 + 0.25 * -(2.0 * lp0 + 1.0 * lp1)) / 1.0  # / w_y
  naive = 1.0 * -(0.25 * lp0 + 0.75 * lp1)  # w_y * CE(smoothed one-hot)
  got = CE(x, jnp.array([1]), w, label_smoothing=0.5)
  assert_close(got, torch_formula)
  assert abs(float(got) - naive) > 0.1


def test_negative_label_smoothing_is_zero():
  x, y, w = _data()
  assert_close(CE(x, y, w, label_smoothing=-0.3), CE(x, y, w))


def test_ignore_index_that_is_a_valid_class_stays_in_the_softmax():
  # class 1 ignored as a target but still in the normaliser: logits (0, 0, 0) -> ln 3 for y = 0
  x = jnp.zeros((2, 3), jnp.float64)
  assert_close(CE(x, jnp.array([0, 1]), ignore_index=1), math.log(3))
  assert_close(CE(x, jnp.array([0, 1]), ignore_index=1, reduction="none"), [math.log(3), 0.0])


@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.2}, {"weight": True}],
                         ids=["plain", "smoothing", "weight"])
def test_all_targets_ignored(kwargs):
  x = jnp.asarray(rng(1).standard_normal((4, 3)))
  y = jnp.full((4,), -100, jnp.int32)
  w = jnp.array([1.0, 2.0, 3.0], jnp.float64) if kwargs.pop("weight", False) else None
  assert np.isnan(CE(x, y, w, **kwargs))
  assert float(CE(x, y, w, reduction="sum", **kwargs)) == 0.0
  np.testing.assert_array_equal(CE(x, y, w, reduction="none", **kwargs), np.zeros(4))
  g = jax.grad(lambda a: CE(a, y, w, **kwargs))(x)
  np.testing.assert_array_equal(g, np.zeros((4, 3)))


def test_ignored_positions_get_exactly_zero_gradient():
  x, y, w = _data()
  g = jax.grad(lambda a: CE(a, y, w, label_smoothing=0.1))(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(g)[[1, 4]], 0.0)
  assert np.all(np.asarray(g)[[0, 2, 3, 5, 6]] != 0.0)


def test_probability_targets_mean_divides_by_positions_not_weights():
  # uniform logits over 2 classes: lp = -ln 2 everywhere; l_i = ln 2 * sum_c w_c t_ic
  x = jnp.zeros((2, 2), jnp.float64)
  t = jnp.array([[1.0, 0.0], [0.25, 0.75]], jnp.float64)
  w = jnp.array([2.0, 4.0], jnp.float64)
  per = [math.log(2) * 2.0, math.log(2) * (0.5 + 3.0)]
  assert_close(CE(x, t, w, reduction="none"), per)
  assert_close(CE(x, t, w), sum(per) / 2)


def test_probability_targets_smoothing():
  x, _, w = _data(ignore=False)
  t = np.eye(4)[rng(3).integers(0, 4, 7)]
  y = t.argmax(-1).astype(np.int32)
  # one-hot probability targets + smoothing: ((1-e) t + e/C) with weights, mean over positions
  lp = _np_log_softmax(x)
  ts = 0.9 * t + 0.1 / 4
  assert_close(CE(x, t, w, label_smoothing=0.1), np.mean(-(ts * lp * w).sum(-1)))
  # without weights one-hot probabilities equal index targets
  assert_close(CE(x, t, label_smoothing=0.1), CE(x, y, label_smoothing=0.1))


def test_spatial_dims_equal_flattened_positions():
  r = rng(4)
  x = r.standard_normal((2, 3, 5, 4))
  y = r.integers(0, 4, (2, 3, 5)).astype(np.int32)
  y[0, 1, 2] = -100
  _, _, w = _data()
  for red in ["mean", "sum"]:
    assert_close(CE(x, y, w, reduction=red, label_smoothing=0.1),
                 _np_cross_entropy(x.reshape(-1, 4), y.ravel(), w, reduction=red, eps=0.1))
  assert CE(x, y, reduction="none").shape == (2, 3, 5)


def test_axis_moves_the_class_axis():
  r = rng(5)
  x = r.standard_normal((2, 4, 3))  # torch layout (N, C, d)
  y = r.integers(0, 4, (2, 3)).astype(np.int32)
  assert_close(CE(x, y, axis=1, reduction="none"), CE(np.moveaxis(x, 1, -1), y, reduction="none"))
  t = np.moveaxis(np.eye(4)[y], -1, 1)
  assert_close(CE(x, t, axis=1), CE(x, y, axis=1))


def test_unbatched_input():
  x = jnp.array([0.0, math.log(3.0)], jnp.float64)
  assert_close(CE(x, jnp.array(1)), math.log(4 / 3))
  assert_close(CE(x, jnp.array([0.0, 1.0], jnp.float64)), math.log(4 / 3))


def test_extreme_logits_are_finite_and_exact():
  x = jnp.array([[1e4, -1e4], [1e4, -1e4]], jnp.float64)
  y = jnp.array([0, 1])
  assert_close(CE(x, y, reduction="none"), [0.0, 2e4])
  g = jax.grad(lambda a: CE(a, y, label_smoothing=0.1))(x)
  assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_dtype_preserved(dtype):
  x, y, w = _data(dtype=np.float32)
  out = CE(jnp.asarray(x, dtype), y, jnp.asarray(w, dtype), label_smoothing=0.1)
  assert out.dtype == dtype


# --- nll_loss ------------------------------------------------------------------------------------


def test_nll_loss_hand_value():
  lp = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]], jnp.float64))
  assert_close(NLL(lp, jnp.array([0, 1])), (math.log(2) + math.log(4 / 3)) / 2)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss_of_log_softmax_is_cross_entropy(reduction):
  x, y, w = _data()
  lp = jax.nn.log_softmax(jnp.asarray(x), axis=-1)
  assert_close(NLL(lp, y, w, reduction=reduction), CE(x, y, w, reduction=reduction), rtol=1e-13)


def test_nll_loss_uses_values_as_given():
  # no normalisation: -w_y * x_y, weighted mean
  x = jnp.array([[3.0, -1.0], [2.0, 5.0]], jnp.float64)
  w = jnp.array([1.0, 3.0], jnp.float64)
  assert_close(NLL(x, jnp.array([1, 1]), w), (3.0 * 1.0 - 3.0 * 5.0) / 6.0)


def test_nll_loss_all_ignored():
  y = jnp.full((3,), 2, jnp.int32)
  x = jnp.ones((3, 4), jnp.float64)
  assert np.isnan(NLL(x, y, ignore_index=2))
  np.testing.assert_array_equal(jax.grad(lambda a: NLL(a, y, ignore_index=2))(x), 0.0)


# --- focal_loss ------------------------------------------------------------------------------------


def test_focal_hand_value():
  # p = 1/2: (1/2)^2 ln 2; alpha 0.25 scales it; mean over kept targets
  x = jnp.zeros((2, 2), jnp.float64)
  assert_close(FOCAL(x, jnp.array([1, 0])), 0.25 * math.log(2))
  assert_close(FOCAL(x, jnp.array([1, -100]), alpha=0.25), 0.25 * 0.25 * math.log(2))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_gamma0_equals_cross_entropy(reduction):
  x, y, w = _data()
  assert_close(FOCAL(x, y, gamma=0.0, reduction=reduction), CE(x, y, reduction=reduction), rtol=1e-13)
  if reduction != "mean":  # alpha = class weights: same elementwise loss; mean's denominator differs
    assert_close(FOCAL(x, y, gamma=0.0, alpha=w, reduction=reduction), CE(x, y, w, reduction=reduction),
                 rtol=1e-13)


def test_focal_alpha_mean_divides_by_count_not_alpha_sum():
  x, y, w = _data()
  kept = int(np.sum(y != -100))
  assert_close(FOCAL(x, y, alpha=w), float(FOCAL(x, y, alpha=w, reduction="sum")) / kept, rtol=1e-14)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, "per-class"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_matches_numpy_reference(gamma, alpha, reduction):
  x, y, w = _data(seed=2)
  a = w if alpha == "per-class" else alpha
  assert_close(FOCAL(x, y, gamma=gamma, alpha=a, reduction=reduction),
               _np_focal(x, y, gamma, a, reduction=reduction), rtol=1e-12)


def test_focal_accurate_as_p_goes_to_one():
  # logits (30, 0, 0): 1 - p = 2e^-30 / (1 + 2e^-30), -log p = log1p(2e^-30); direct 1 - p loses digits
  x = jnp.array([[30.0, 0.0, 0.0]], jnp.float64)
  q = 2 * math.exp(-30.0)
  for gamma in [0.5, 2.0]:
    assert_close(FOCAL(x, jnp.array([0]), gamma=gamma), (q / (1 + q)) ** gamma * math.log1p(q), rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
def test_focal_gradient_finite_at_p_one(gamma):
  x = jnp.array([[1e4, -1e4, -1e4], [50.0, 0.0, 0.0], [0.0, 1e4, 0.0]], jnp.float64)
  y = jnp.array([0, 0, 0])
  g = jax.grad(lambda a: FOCAL(a, y, gamma=gamma, reduction="sum"))(x)
  assert np.isfinite(np.asarray(g)).all()
  assert_close(np.asarray(g)[0], 0.0, atol=1e-300)  # certain and right: no gradient
  # certain and wrong (p_y -> 0): the cross-entropy gradient p - onehot
  assert_close(np.asarray(g)[2], [-1.0, 1.0, 0.0], atol=1e-12)


def test_focal_gradient_matches_finite_differences_gamma_below_one():
  x = jnp.array([[4.0, -1.0, 0.5], [0.2, 0.1, -0.3]], jnp.float64)
  y = jnp.array([0, 2])
  f = lambda a: FOCAL(a, y, gamma=0.5)  # noqa: E731
  g = np.asarray(jax.grad(f)(x))
  h = 1e-6
  for idx in np.ndindex(*x.shape):
    e = jnp.zeros_like(x).at[idx].set(h)
    # central differences, h = 1e-6: rounding ~ eps |f| / h ~ 1e-10; measured worst 4.3e-8 relative
    assert_close(g[idx], (float(f(x + e)) - float(f(x - e))) / (2 * h), rtol=1e-6, atol=1e-9)


def test_focal_all_ignored():
  x = jnp.ones((3, 4), jnp.float64)
  y = jnp.full((3,), -100, jnp.int32)
  assert np.isnan(FOCAL(x, y))
  assert float(FOCAL(x, y, reduction="sum")) == 0.0
  np.testing.assert_array_equal(jax.grad(lambda a: FOCAL(a, y))(x), 0.0)


def test_focal_spatial_and_axis():
  r = rng(6)
  x = r.standard_normal((2, 4, 3, 5))  # (N, C, d1, d2)
  y = r.integers(0, 4, (2, 3, 5)).astype(np.int32)
  flat = np.moveaxis(x, 1, -1).reshape(-1, 4)
  assert_close(FOCAL(x, y, axis=1, gamma=1.5), _np_focal(flat, y.ravel(), 1.5), rtol=1e-12)


# --- bad input ------------------------------------------------------------------------------------

X = np.zeros((4, 3), np.float32)
Y = np.array([0, 1, 2, 1], np.int32)


@pytest.mark.parametrize("fn", [CE, NLL, FOCAL], ids=["cross_entropy", "nll_loss", "focal_loss"])
def test_integer_one_hot_target_raises_with_fix(fn):
  with pytest.raises(TypeError, match=r"one-hot.*pass class indices of shape \(4,\)") as e:
    fn(X, np.eye(3, dtype=np.int32)[Y])
  assert "int32 with shape (4, 3)" in str(e.value)


@pytest.mark.parametrize("fn", [CE, NLL, FOCAL], ids=["cross_entropy", "nll_loss", "focal_loss"])
def test_float_class_indices_raise_with_fix(fn):
  with pytest.raises(TypeError, match=r"class indices stored as floats.*astype\(jnp.int32\)"):
    fn(X, Y.astype(np.float32))


def test_cross_entropy_error_names_both_accepted_forms():
  with pytest.raises(TypeError, match=r"float probabilities of shape \(4, 3\) with the class axis last"):
    CE(X, np.eye(3, dtype=np.int32)[Y])


@pytest.mark.parametrize("fn", [NLL, FOCAL], ids=["nll_loss", "focal_loss"])
def test_probability_target_where_indices_expected_raises(fn):
  with pytest.raises(TypeError, match=r"one-hot or probability targets.*argmax"):
    fn(X, np.eye(3, dtype=np.float32)[Y])


@pytest.mark.parametrize("target", [np.zeros((4, 2), np.float32), np.zeros((5,), np.int32),
                                    np.zeros((4, 3, 1), np.int32)], ids=["probs-C", "indices-N", "rank"])
def test_wrong_target_shape_raises(target):
  with pytest.raises((ValueError, TypeError), match="cross_entropy: expected"):
    CE(X, target)


@pytest.mark.parametrize("fn", [CE, NLL], ids=["cross_entropy", "nll_loss"])
def test_wrong_weight_shape_raises(fn):
  with pytest.raises(ValueError, match=r"expected `weight` of shape \(C,\) = \(3,\).*got shape \(4,\)"):
    fn(X, Y, np.ones(4, np.float32))


def test_focal_wrong_alpha_shape_and_negative_gamma_raise():
  with pytest.raises(ValueError, match=r"`alpha` of shape \(C,\) = \(3,\)"):
    FOCAL(X, Y, alpha=(0.5, 0.5))
  with pytest.raises(ValueError, match="gamma"):
    FOCAL(X, Y, gamma=-1.0)


@pytest.mark.parametrize("fn", [CE, NLL, FOCAL], ids=["cross_entropy", "nll_loss", "focal_loss"])
def test_unknown_reduction_and_axis_raise(fn):
  with pytest.raises(ValueError, match="reduction"):
    fn(X, Y, reduction="avg")
  with pytest.raises(ValueError, match="axis"):
    fn(X, Y, axis=2)


def test_label_smoothing_above_one_raises():
  with pytest.raises(ValueError, match="label_smoothing"):
    CE(X, Y, label_smoothing=1.5)


def test_nonnegative_ignore_index_with_probabilities_raises():
  with pytest.raises(ValueError, match="ignore_index"):
    CE(X, np.eye(3, dtype=np.float32)[Y], ignore_index=0)
  CE(X, np.eye(3, dtype=np.float32)[Y], ignore_index=-1)  # negative: accepted, no effect


def test_integer_input_raises():
  with pytest.raises(TypeError, match="floating"):
    CE(X.astype(np.int32), Y)


BAD = np.array([0, 3, 1, -1], np.int32)  # 3 and -1 are out of range for C = 3


@pytest.mark.parametrize("fn", [CE, NLL, FOCAL], ids=["cross_entropy", "nll_loss", "focal_loss"])
def test_out_of_range_class_eager_raises(fn):
  msg = r"expected class indices in \[0, 3\) or ignore_index=-100, got \[3, -1\]"
  with pytest.raises(ValueError, match=msg):
    fn(X, BAD)


@pytest.mark.parametrize("fn", [CE, NLL, FOCAL], ids=["cross_entropy", "nll_loss", "focal_loss"])
def test_out_of_range_class_under_jit_is_nan(fn):
  f = jax.jit(lambda x, y: fn(x, y, reduction="none"))
  out = np.asarray(f(X, BAD))
  assert np.isnan(out[[1, 3]]).all() and np.isfinite(out[[0, 2]]).all()
  assert np.isnan(jax.jit(fn)(X, BAD))


@pytest.mark.parametrize("fn", [CE, NLL, FOCAL], ids=["cross_entropy", "nll_loss", "focal_loss"])
def test_out_of_range_class_under_checked_reports(fn):
  f = jax.jit(ll.losses.checked(fn))
  err, _ = f(X, BAD)
  with pytest.raises(ValueError, match=r"expected class indices in \[0, 3\)"):
    err.throw()
  err, out = f(X, Y)
  assert err.get() is None and np.isfinite(out)

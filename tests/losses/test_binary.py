"""BCE (probabilities and logits), sigmoid focal, soft margin, multi-label soft margin.

Facts from semantics.md §3.2, by hand or against torch: the -100 clamp and torch's ±1e12 gradient
at probabilities 0 and 1, pos_weight broadcasting from the trailing dim, no logit clamp,
torchvision's focal formula, and the value checks in all three modes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests._optional import optional_import
from tests.helpers import assert_close, rng

# imported on first use inside a test: a missing torch skips the tests that compare with it, not the file
torch = optional_import("torch")
F = optional_import("torch.nn.functional")
torchvision = optional_import("torchvision")

L = ll.losses
BCE, BCEL = L.binary_cross_entropy, L.binary_cross_entropy_with_logits
F32_EPS_1E12 = 1.0 / float(np.float32(1e-12))  # torch's clamp constant is a float32 1e-12


def _t(a, grad=False):
  return torch.tensor(np.asarray(a), requires_grad=grad)


# --- binary_cross_entropy -------------------------------------------------------------------------


def test_bce_at_zero_and_one_is_100():
  x = jnp.array([0.0, 1.0, 0.0, 1.0], jnp.float64)
  t = jnp.array([1.0, 0.0, 0.0, 1.0], jnp.float64)
  assert_close(BCE(x, t, reduction="none"), [100.0, 100.0, 0.0, 0.0])
  assert_close(BCE(jnp.array([1e-50]), jnp.array([1.0]), reduction="sum"), 100.0)


def test_bce_gradient_is_torchs_at_the_edges():
  x = np.array([0.0, 1.0, 0.0, 1.0, 0.3])
  t = np.array([1.0, 0.0, 0.0, 1.0, 0.4])
  gx, gt = jax.grad(lambda a, b: BCE(a, b, reduction="sum"), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(t))
  xt, tt = _t(x, True), _t(t, True)
  F.binary_cross_entropy(xt, tt, reduction="sum").backward()
  assert_close(gx, xt.grad.numpy())
  assert_close(gx[:2], [-F32_EPS_1E12, F32_EPS_1E12])  # not 0, the clamped function's derivative
  assert_close(gx[4], (0.3 - 0.4) / (0.3 * 0.7))
  assert_close(gt, tt.grad.numpy())  # -logit(x): +inf, -inf, +inf, -inf, finite
  assert np.isinf(np.asarray(gt[:4])).all()


def test_bce_forward_mode_and_hessian():
  x = jnp.array([0.2, 0.6], jnp.float64)
  t = jnp.array([1.0, 0.0], jnp.float64)
  _, dy = jax.jvp(lambda a: BCE(a, t, reduction="sum"), (x,), (jnp.ones(2, jnp.float64),))
  assert_close(dy, -1 / 0.2 + 1 / 0.4)
  # only x differentiated in forward mode: the target's infinite coefficient at x=0 stays out
  _, dy0 = jax.jvp(lambda a: BCE(a, jnp.array([0.0]), reduction="sum"), (jnp.array([0.0]),), (jnp.ones(1),))
  assert float(dy0) == 0.0
  h = jax.hessian(lambda a: BCE(a, t, reduction="sum"))(x)
  assert_close(jnp.diag(h), [1 / 0.2**2, 1 / 0.4**2])


def test_bce_weight_broadcasts_and_mean_is_not_divided_by_weight_sum():
  r = rng(0)
  x, t = r.uniform(0.05, 0.95, (2, 4, 3))
  for w in [r.uniform(0.5, 2, (3,)), r.uniform(0.5, 2, (4, 1)), r.uniform(0.5, 2, (4, 3))]:
    ref = F.binary_cross_entropy(_t(x), _t(t), weight=_t(w)).numpy()
    assert_close(BCE(x, t, w), ref)
    plain = -(t * np.log(x) + (1 - t) * np.log(1 - x))
    assert_close(BCE(x, t, w), (np.broadcast_to(w, x.shape) * plain).mean())


def test_bce_weight_that_does_not_broadcast_to_input_raises():
  x = jnp.full((4, 3), 0.5)
  with pytest.raises(ValueError, match=r"binary_cross_entropy: expected `weight` broadcastable to the input"):
    BCE(x, x, jnp.ones(4))
  with pytest.raises(ValueError, match=r"binary_cross_entropy: expected `weight` broadcastable"):
    BCE(x, x, jnp.ones((2, 4, 3)))


def test_bce_out_of_range_raises_eagerly():
  with pytest.raises(ValueError, match=r"binary_cross_entropy: expected every entry of `input` in \[0, 1\]"):
    BCE(jnp.array([0.5, 1.5]), jnp.array([0.0, 1.0]))
  with pytest.raises(ValueError, match=r"binary_cross_entropy: expected every entry of `target` in \[0, 1\]"):
    BCE(jnp.array([0.5, 0.5]), jnp.array([0.0, 1.2]))
  with pytest.raises(RuntimeError, match="between 0 and 1"):  # torch agrees
    F.binary_cross_entropy(torch.tensor([0.5, 1.5]), torch.tensor([0.0, 1.0]))


def test_bce_out_of_range_is_nan_under_jit_value_and_gradient():
  x = jnp.array([0.5, 1.5, 0.3, -0.1], jnp.float64)
  t = jnp.array([0.0, 1.0, 1.3, 0.0], jnp.float64)  # entries 1, 2 (target) and 3 are bad
  out = np.asarray(jax.jit(lambda a, b: BCE(a, b, reduction="none"))(x, t))
  assert np.isfinite(out[0]) and np.isnan(out[1:]).all()
  g = np.asarray(jax.jit(jax.grad(lambda a: BCE(a, t, reduction="sum")))(x))
  assert np.isfinite(g[0]) and np.isnan(g[1:]).all()


def test_bce_checked_reports_under_jit():
  f = jax.jit(L.checked(BCE))
  err, _ = f(jnp.array([0.5, 1.5]), jnp.array([0.0, 1.0]))
  with pytest.raises(Exception, match=r"binary_cross_entropy: expected every entry of `input` in \[0, 1\]"):
    err.throw()
  err, val = f(jnp.array([0.5, 1.0]), jnp.array([0.0, 1.0]))
  assert err.get() is None
  assert_close(val, math.log(2) / 2, rtol=1e-14)


def test_bce_bad_dtype_and_shape():
  with pytest.raises(TypeError, match=r"binary_cross_entropy: expected `target` to be a floating array"):
    BCE(jnp.full(3, 0.5), jnp.array([0, 1, 1]))
  with pytest.raises(ValueError, match=r"expected `input` and `target` to have the same shape"):
    BCE(jnp.full((3, 1), 0.5), jnp.full(3, 0.5))


# --- binary_cross_entropy_with_logits -------------------------------------------------------------


def test_bcel_hand_value_with_pos_weight():
  out = BCEL(jnp.zeros(2, jnp.float64), jnp.array([1.0, 0.0], jnp.float64), pos_weight=jnp.array([3.0]),
             reduction="none")
  assert_close(out, [3 * math.log(2), math.log(2)])


def test_bcel_no_logit_clamp():
  x = jnp.array([800.0, -800.0, 800.0, -800.0], jnp.float64)
  t = jnp.array([0.0, 1.0, 1.0, 0.0], jnp.float64)
  assert_close(BCEL(x, t, reduction="none"), [800.0, 800.0, 0.0, 0.0], atol=1e-300)
  assert_close(BCEL(jnp.array([1e4], jnp.float32), jnp.array([0.0], jnp.float32)), 1e4)


@pytest.mark.parametrize("pw_shape", [(3,), (4, 1), (1, 3), (4, 3), (2, 1, 1)], ids=str)
def test_bcel_pos_weight_broadcast_matches_torch(pw_shape):
  r = rng(1)
  x, t = r.standard_normal((2, 2, 4, 3))[0], r.uniform(0, 1, (2, 4, 3))
  pw = r.uniform(0.5, 3, pw_shape)
  w = r.uniform(0.5, 2, (3,))
  out = BCEL(x, t, w, pos_weight=pw, reduction="none")
  ref = F.binary_cross_entropy_with_logits(_t(x), _t(t), _t(w), pos_weight=_t(pw), reduction="none").numpy()
  assert_close(out, ref)
  gx, gt = jax.grad(lambda a, b: BCEL(a, b, w, pos_weight=pw, reduction="sum"), argnums=(0, 1))(x, t)
  xt, tt = _t(x, True), _t(t, True)
  F.binary_cross_entropy_with_logits(xt, tt, _t(w), pos_weight=_t(pw), reduction="sum").backward()
  assert_close(gx, xt.grad.numpy())
  assert_close(gt, tt.grad.numpy())


@pytest.mark.parametrize("pw_shape", [(2,), (3, 1), (2, 4, 3)], ids=str)
def test_bcel_pos_weight_length_mismatch_raises(pw_shape):
  x = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: expected `pos_weight` broadcastable"):
    BCEL(x, x, pos_weight=jnp.ones(pw_shape))


def test_bcel_equals_optax_without_weights():
  import optax

  r = rng(2)
  x, t = r.standard_normal((5, 3)) * 3, r.uniform(0, 1, (5, 3))
  assert_close(BCEL(x, t, reduction="none"), optax.losses.sigmoid_binary_cross_entropy(x, t), rtol=1e-12)


def test_bcel_gradient_formula():
  x = jnp.array([-2.0, 0.5, 3.0], jnp.float64)
  t = jnp.array([1.0, 0.3, 0.0], jnp.float64)
  pw = jnp.array([2.0, 2.0, 2.0], jnp.float64)
  g = jax.grad(lambda a: BCEL(a, t, pos_weight=pw, reduction="sum"))(x)
  s = jax.nn.sigmoid(x)
  assert_close(g, s * (1 + (pw - 1) * t) - pw * t, rtol=1e-14)


def test_bcel_integer_target_raises():
  with pytest.raises(TypeError, match=r"binary_cross_entropy_with_logits: expected `target` to be a floating"):
    BCEL(jnp.zeros(3), jnp.array([0, 1, 1]))


# --- sigmoid_focal_loss ---------------------------------------------------------------------------


def test_focal_hand_value_and_defaults():
  out = L.sigmoid_focal_loss(jnp.zeros(1, jnp.float64), jnp.ones(1, jnp.float64))
  assert out.shape == (1,)  # reduction="none" by default, as torchvision
  assert_close(out, [math.log(2) / 16])  # log 2 * (1/2)^2 * 0.25


def test_focal_confident_right_logit_is_exactly_zero_like_torchvision():
  x = np.array([60.0, -60.0])
  t = np.array([1.0, 0.0])
  assert np.asarray(L.sigmoid_focal_loss(x, t)).tolist() == [0.0, 0.0]
  assert torchvision.ops.sigmoid_focal_loss(_t(x), _t(t)).numpy().tolist() == [0.0, 0.0]


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.7, 0.0), (0.0, 1.5), (1.0, 3.0)])
def test_focal_matches_torchvision(alpha, gamma):
  r = rng(3)
  x, t = r.standard_normal((6, 4)) * 3, r.integers(0, 2, (6, 4)).astype(np.float64)
  out = L.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="sum")
  xt, tt = _t(x, True), _t(t, True)
  ref = torchvision.ops.sigmoid_focal_loss(xt, tt, alpha=alpha, gamma=gamma, reduction="sum")
  ref.backward()
  assert_close(out, ref.item())
  gx, gt = jax.grad(lambda a, b: L.sigmoid_focal_loss(a, b, alpha=alpha, gamma=gamma, reduction="sum"),
                    argnums=(0, 1))(x, t)
  assert_close(gx, xt.grad.numpy())
  assert_close(gt, tt.grad.numpy())


def test_focal_negative_alpha_disables_the_term():
  x, t = rng(4).standard_normal((2, 5, 3))
  t = (t > 0).astype(np.float64)
  no_alpha = L.sigmoid_focal_loss(x, t, alpha=-1.0, reduction="none")
  assert_close(L.sigmoid_focal_loss(x, t, alpha=-0.3, reduction="none"), no_alpha)
  p = 1 / (1 + np.exp(-x))
  p_t = p * t + (1 - p) * (1 - t)
  assert_close(no_alpha, np.asarray(BCEL(x, t, reduction="none")) * (1 - p_t) ** 2, rtol=1e-12)


def test_focal_gamma0_gradient_finite_at_saturation():
  x = jnp.array([1e4, -1e4], jnp.float32)
  t = jnp.array([1.0, 0.0], jnp.float32)
  g = jax.grad(lambda a: L.sigmoid_focal_loss(a, t, gamma=0.0, reduction="sum"))(x)
  assert np.isfinite(np.asarray(g)).all()


def test_focal_bad_hyperparameters():
  x = jnp.zeros(2)
  with pytest.raises(ValueError, match=r"sigmoid_focal_loss: expected `alpha` in \[0, 1\]"):
    L.sigmoid_focal_loss(x, x, alpha=1.5)
  with pytest.raises(ValueError, match=r"sigmoid_focal_loss: expected `gamma` >= 0"):
    L.sigmoid_focal_loss(x, x, gamma=-1.0)
  with pytest.raises(TypeError):
    L.sigmoid_focal_loss(x, x, 0.5)  # alpha is keyword-only


# --- soft margin ----------------------------------------------------------------------------------


def test_soft_margin_hand_value_and_integer_targets():
  out = L.soft_margin_loss(jnp.array([0.0, 2.0], jnp.float64), jnp.array([1, -1]), reduction="none")
  assert_close(out, [math.log(2), math.log1p(math.exp(2.0))])
  assert out.dtype == jnp.float64


def test_soft_margin_matches_torch_and_stays_finite_where_torch_overflows():
  r = rng(5)
  x, y = r.standard_normal((4, 5)) * 3, np.where(r.random((4, 5)) < 0.5, -1.0, 1.0)
  xt = _t(x, True)
  ref = F.soft_margin_loss(xt, _t(y), reduction="sum")
  ref.backward()
  assert_close(L.soft_margin_loss(x, y, reduction="sum"), ref.item())
  assert_close(jax.grad(lambda a: L.soft_margin_loss(a, y, reduction="sum"))(x), xt.grad.numpy())
  big = L.soft_margin_loss(jnp.array([-1000.0], jnp.float32), jnp.array([1.0], jnp.float32))
  assert float(big) == 1000.0
  assert math.isinf(F.soft_margin_loss(torch.tensor([-1000.0]), torch.tensor([1.0])).item())


# --- multilabel soft margin -----------------------------------------------------------------------


def test_multilabel_soft_margin_hand_value():
  out = L.multilabel_soft_margin_loss(jnp.zeros((2, 3), jnp.float64), jnp.array([[1, 0, 1], [0, 0, 0]]),
                                      reduction="none")
  assert out.shape == (2,)
  assert_close(out, [math.log(2), math.log(2)])


@pytest.mark.parametrize("shape,w_shape", [((5, 3), None), ((5, 3), (3,)), ((5, 3), (5, 3)), ((2, 4, 3), (3,)),
                                           ((3,), None)], ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multilabel_soft_margin_matches_torch(shape, w_shape, reduction):
  r = rng(6)
  x, t = r.standard_normal(shape) * 2, r.integers(0, 2, shape).astype(np.float64)
  args = () if w_shape is None else (r.uniform(0.5, 2, w_shape),)
  out = L.multilabel_soft_margin_loss(x, t, *args, reduction=reduction)
  ref = F.multilabel_soft_margin_loss(_t(x), _t(t), *[_t(a) for a in args], reduction=reduction).numpy()
  assert out.shape == ref.shape
  assert_close(out, ref)


def test_multilabel_soft_margin_bad_input():
  with pytest.raises(ValueError, match=r"multilabel_soft_margin_loss: expected `input` with at least 1 dimension"):
    L.multilabel_soft_margin_loss(jnp.zeros(()), jnp.zeros(()))
  with pytest.raises(ValueError, match=r"multilabel_soft_margin_loss: expected `weight` broadcastable"):
    L.multilabel_soft_margin_loss(jnp.zeros((4, 3)), jnp.zeros((4, 3)), jnp.ones(4))
  with pytest.raises(TypeError, match=r"multilabel_soft_margin_loss: expected `input` to be a floating"):
    L.multilabel_soft_margin_loss(jnp.zeros((4, 3), jnp.int32), jnp.zeros((4, 3)))

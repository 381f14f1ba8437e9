"""l1, mse, huber, smooth l1, asymmetric mse: hand math, torch facts (semantics.md §3.4), bad input.

torch parity on random inputs lives in ``parity/cases/losses_regression.py``; these tests pin the
branch points (residuals of 0 and exactly +-threshold), the ``beta=0`` dispatch and the errors.
"""

from __future__ import annotations

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

L = ll.losses


def _grad(fn, x, t, **kw):
  return jax.grad(lambda a, b: jnp.sum(fn(a, b, reduction="none", **kw)), argnums=(0, 1))(x, t)


def _torch_grad(fn, x, t, **kw):
  xt = torch.tensor(np.asarray(x), requires_grad=True)
  tt = torch.tensor(np.asarray(t), requires_grad=True)
  fn(xt, tt, reduction="sum", **kw).backward()
  return xt.grad.numpy(), tt.grad.numpy()


# --- l1 / mse -----------------------------------------------------------------------------------


def test_l1_gradient_at_zero_residual_is_zero_like_torch():
  # jnp.abs has gradient 1 at 0; torch's l1 uses sign(d), which is 0 there.
  x = jnp.array([1.0, 2.0, -1.0], jnp.float64)
  t = jnp.array([1.0, 0.0, 0.0], jnp.float64)
  gx, gt = _grad(L.l1_loss, x, t)
  assert_close(gx, [0.0, 1.0, -1.0])
  assert_close(gt, [0.0, -1.0, 1.0])


def test_mse_has_no_half_factor():
  assert_close(L.mse_loss(jnp.array([3.0], jnp.float64), jnp.array([1.0], jnp.float64)), 4.0)


# --- huber ----------------------------------------------------------------------------------------


def test_huber_hand_values():
  d = jnp.array([0.5, -3.0, 2.0], jnp.float64)
  # delta=1: 0.5*0.25, 1*(3 - 0.5), 1*(2 - 0.5)
  assert_close(L.huber_loss(d, jnp.zeros(3, jnp.float64), reduction="none"), [0.125, 2.5, 1.5])
  # delta=2: 0.5*0.25, 2*(3 - 1), |d| == delta is the linear branch: 2*(2 - 1) == 0.5*4
  assert_close(L.huber_loss(d, jnp.zeros(3, jnp.float64), reduction="none", delta=2.0), [0.125, 4.0, 2.0])


def test_huber_gradients_at_branch_points_match_torch():
  x = np.array([0.0, 1.5, -1.5, 0.3, 4.0, -4.0])
  t = np.zeros(6)
  gx, gt = _grad(L.huber_loss, jnp.asarray(x), jnp.asarray(t), delta=1.5)
  tx, tt = _torch_grad(F.huber_loss, x, t, delta=1.5)
  assert_close(gx, tx)
  assert_close(gt, tt)
  assert_close(gx, [0.0, 1.5, -1.5, 0.3, 1.5, -1.5])  # d inside, delta*sign(d) outside


def test_huber_equals_optax_elementwise():
  import optax

  x, t = rng(0).standard_normal((2, 5, 3)) * 2
  assert_close(L.huber_loss(x, t, reduction="none", delta=0.7), optax.losses.huber_loss(x, t, delta=0.7))


@pytest.mark.parametrize("delta", [0.0, -1.0])
def test_huber_nonpositive_delta_raises(delta):
  with pytest.raises(ValueError, match=r"huber_loss: expected `delta` > 0"):
    L.huber_loss(jnp.zeros(2), jnp.zeros(2), delta=delta)


# --- smooth l1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.3, 1.0, 2.5])
def test_smooth_l1_is_huber_over_beta(beta):
  x, t = rng(1).standard_normal((2, 4, 5)) * 2
  d = np.abs(x - t)
  ref = np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)  # numpy, from the formula
  assert_close(L.smooth_l1_loss(x, t, reduction="none", beta=beta), ref)
  assert_close(L.smooth_l1_loss(x, t, reduction="none", beta=beta),
               np.asarray(L.huber_loss(x, t, reduction="none", delta=beta)) / beta, rtol=1e-14)


def test_smooth_l1_beta0_is_l1_with_sign_gradient():
  x = np.array([1.0, 2.0, -3.0, 0.5])
  t = np.array([1.0, 0.0, 0.0, 0.5])
  assert_close(L.smooth_l1_loss(x, t, beta=0.0, reduction="none"), [0.0, 2.0, 3.0, 0.0])
  gx, gt = _grad(L.smooth_l1_loss, jnp.asarray(x), jnp.asarray(t), beta=0.0)
  tx, tt = _torch_grad(F.smooth_l1_loss, x, t, beta=0.0)
  assert_close(gx, tx)
  assert_close(gt, tt)
  assert_close(gx, [0.0, 1.0, -1.0, 0.0])


def test_smooth_l1_gradient_at_threshold_matches_torch():
  x = np.array([1.5, -1.5, 0.0, 0.4])
  gx, _ = _grad(L.smooth_l1_loss, jnp.asarray(x), jnp.zeros(4), beta=1.5)
  tx, _ = _torch_grad(F.smooth_l1_loss, x, np.zeros(4), beta=1.5)
  assert_close(gx, tx)
  assert_close(gx, [1.0, -1.0, 0.0, 0.4 / 1.5])


def test_smooth_l1_negative_beta_raises():
  with pytest.raises(ValueError, match=r"smooth_l1_loss: expected `beta` >= 0, got -1.0"):
    L.smooth_l1_loss(jnp.zeros(2), jnp.zeros(2), beta=-1.0)


# --- asymmetric mse -------------------------------------------------------------------------------


def test_asymmetric_mse_hand_values():
  x = jnp.array([1.0, 3.0, 2.0], jnp.float64)
  t = jnp.array([2.0, 2.0, 2.0], jnp.float64)
  # e = -1 (under: 2 * 1), e = 1 (over: 1 * 1), e = 0
  assert_close(L.asymmetric_mse_loss(x, t, reduction="none"), [2.0, 1.0, 0.0])
  assert_close(L.asymmetric_mse_loss(x, t, under_penalty=0.5, over_penalty=3.0, reduction="sum"), 3.5)


def test_asymmetric_mse_with_equal_penalties_is_mse():
  x, t = rng(2).standard_normal((2, 6, 3))
  assert_close(L.asymmetric_mse_loss(x, t, under_penalty=1.0, over_penalty=1.0), L.mse_loss(x, t))


def test_asymmetric_mse_gradient():
  x = jnp.array([1.0, 3.0, 2.0], jnp.float64)
  t = jnp.full(3, 2.0, jnp.float64)
  gx, gt = _grad(L.asymmetric_mse_loss, x, t)
  assert_close(gx, [2 * 2 * -1.0, 2 * 1 * 1.0, 0.0])
  assert_close(gt, -np.asarray(gx))


def test_asymmetric_mse_matches_reference_module():
  pytest.importorskip("torch")   # the reference is a torch module: skip before importing it
  from parity.reference.asymmetric_mse import AsymmetricMSELoss

  x, t = rng(3).standard_normal((2, 4, 5))
  ref = AsymmetricMSELoss(3.0, 0.5, "none")(torch.tensor(x), torch.tensor(t)).numpy()
  assert_close(L.asymmetric_mse_loss(x, t, under_penalty=3.0, over_penalty=0.5, reduction="none"), ref)


@pytest.mark.parametrize("kw", [{"under_penalty": -1.0}, {"over_penalty": -0.5}])
def test_asymmetric_mse_negative_penalty_raises(kw):
  with pytest.raises(ValueError, match=r"asymmetric_mse_loss: expected `(under|over)_penalty` >= 0"):
    L.asymmetric_mse_loss(jnp.zeros(2), jnp.zeros(2), **kw)


# --- shared: bad input, keyword-only ------------------------------------------------------------

FNS = [L.l1_loss, L.mse_loss, L.huber_loss, L.smooth_l1_loss, L.asymmetric_mse_loss]


@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_shape_mismatch_raises(fn):
  with pytest.raises(ValueError, match=rf"{fn.__name__}: expected `input` and `target` to have the same shape"):
    fn(jnp.zeros((4, 1)), jnp.zeros(4))


@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_integer_input_raises(fn):
  with pytest.raises(TypeError, match=rf"{fn.__name__}: expected `input` to be a floating array"):
    fn(jnp.arange(3), jnp.zeros(3))


@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_reduction_is_keyword_only(fn):
  with pytest.raises(TypeError):
    fn(jnp.zeros(3), jnp.zeros(3), "sum")


def test_float32_stays_float32_and_mean_of_empty_is_nan():
  x = jnp.ones((2, 3), jnp.float32)
  assert L.huber_loss(x, x * 0).dtype == jnp.float32
  assert np.isnan(float(L.smooth_l1_loss(jnp.zeros(0), jnp.zeros(0))))
  assert float(L.huber_loss(jnp.zeros(0), jnp.zeros(0), reduction="sum")) == 0.0

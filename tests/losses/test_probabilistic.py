"""kl_div, poisson_nll_loss, gaussian_nll_loss: torch's semantics (semantics.md §3.3) by hand and by torch.

Random-input parity lives in ``parity/cases/losses_probabilistic.py``; here: reduction
denominators, masked terms, var shape rules, the clamp's gradient, and the value checks in all
three modes (eager raise, NaN under jit, ``checked`` under jit).
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

torch = optional_import("torch")   # imported by the tests that compare with torch, not at collection
F = optional_import("torch.nn.functional")

L = ll.losses


# --- kl_div -----------------------------------------------------------------------------------


def _kl_pair():
  x = jnp.log(jnp.array([0.25, 0.75], jnp.float64))
  t = jnp.array([0.5, 0.5], jnp.float64)
  return x, t


def test_kl_div_hand_value_and_reductions():
  x, t = _kl_pair()
  total = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)  # t (log t - x), summed
  assert_close(L.kl_div(x, t, reduction="sum"), total)
  assert_close(L.kl_div(x, t, reduction="mean"), total / 2)
  # batchmean on a 1-D input divides by its length, as torch's input.size(0)
  assert_close(L.kl_div(x, t, reduction="batchmean"), total / 2)


def test_kl_div_mean_divides_by_numel_batchmean_by_batch():
  x = jnp.log(jnp.full((3, 4), 0.25, jnp.float64))
  t = jnp.tile(jnp.array([0.7, 0.1, 0.1, 0.1], jnp.float64), (3, 1))
  per_row = sum(p * math.log(p / 0.25) for p in (0.7, 0.1, 0.1, 0.1))
  assert_close(L.kl_div(x, t, reduction="batchmean"), per_row)
  assert_close(L.kl_div(x, t, reduction="mean"), 3 * per_row / 12)
  assert_close(L.kl_div(x, t, reduction="none").sum(-1), [per_row] * 3)


def test_kl_div_batchmean_equals_optax_on_2d():
  import optax

  r = rng(0)
  x = jax.nn.log_softmax(jnp.asarray(r.standard_normal((5, 4))))
  t = jax.nn.softmax(jnp.asarray(r.standard_normal((5, 4))))
  assert_close(L.kl_div(x, t, reduction="batchmean"), optax.losses.kl_divergence(x, t).mean(), rtol=1e-12)


def test_kl_div_log_target_is_the_same_divergence():
  r = rng(1)
  x = jax.nn.log_softmax(jnp.asarray(r.standard_normal((5, 4))))
  lt = jax.nn.log_softmax(jnp.asarray(r.standard_normal((5, 4))))
  assert_close(L.kl_div(x, lt, reduction="none", log_target=True), L.kl_div(x, jnp.exp(lt), reduction="none"),
               rtol=1e-12)


def test_kl_div_zero_target_contributes_zero_negative_target_is_nan_like_torch():
  x = np.log(np.array([0.2, 0.3, 0.5]))
  t = np.array([0.0, -0.1, 1.1])
  ours = np.asarray(L.kl_div(x, t, reduction="none"))
  ref = F.kl_div(torch.tensor(x), torch.tensor(t), reduction="none").numpy()
  assert ours[0] == 0.0 and np.isnan(ours[1]) and np.isnan(ref[1])
  assert_close(ours[[0, 2]], ref[[0, 2]])


def test_kl_div_target_gradient_matches_torch_nan_at_zero():
  x = np.log(np.array([0.2, 0.3, 0.5]))
  t = np.array([0.0, 0.4, 0.6])
  gx, gt = jax.grad(lambda a, b: L.kl_div(a, b, reduction="sum"), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(t))
  xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
  F.kl_div(xt, tt, reduction="sum").backward()
  assert_close(gx, xt.grad.numpy())
  assert np.isnan(np.asarray(gt)[0]) and np.isnan(tt.grad.numpy()[0])
  assert_close(np.asarray(gt)[1:], tt.grad.numpy()[1:])
  assert_close(np.asarray(gt)[1:], np.log(t[1:]) + 1 - x[1:])  # d/dt t (log t - x)


def test_kl_div_rejects_unknown_reduction_and_positional_reduction():
  x, t = _kl_pair()
  with pytest.raises(ValueError, match=r"kl_div: expected reduction to be one of .*'batchmean'"):
    L.kl_div(x, t, reduction="avg")
  with pytest.raises(TypeError):
    L.kl_div(x, t, "sum")


# --- poisson_nll_loss ---------------------------------------------------------------------------


def test_poisson_log_input_hand_value():
  # exp(0) - 2*0 = 1 and exp(1) - 0 = e
  assert_close(L.poisson_nll_loss(jnp.array([0.0, 1.0], jnp.float64), jnp.array([2.0, 0.0], jnp.float64),
                                  reduction="none"), [1.0, math.e])


def test_poisson_rate_input_uses_eps():
  x = jnp.array([0.0, 2.0], jnp.float64)
  t = jnp.array([3.0, 1.0], jnp.float64)
  out = L.poisson_nll_loss(x, t, log_input=False, eps=1e-3, reduction="none")
  assert_close(out, [0.0 - 3.0 * math.log(1e-3), 2.0 - math.log(2.0 + 1e-3)])


def test_poisson_full_adds_stirling_only_where_target_above_one():
  x = jnp.zeros(4, jnp.float64)
  t = jnp.array([0.0, 0.5, 1.0, 2.0], jnp.float64)
  base = L.poisson_nll_loss(x, t, reduction="none")
  full = L.poisson_nll_loss(x, t, full=True, reduction="none")
  stirling2 = 2 * math.log(2) - 2 + 0.5 * math.log(4 * math.pi)
  assert_close(np.asarray(full) - np.asarray(base), [0.0, 0.0, 0.0, stirling2], atol=1e-15)
  ref = F.poisson_nll_loss(torch.zeros(4, dtype=torch.float64), torch.tensor(np.asarray(t)), full=True,
                           reduction="none").numpy()
  assert_close(full, ref)


def test_poisson_full_target_gradient_is_zero_where_masked_not_nan():
  # torch gives NaN at t = 0 (0 * log 0 in the masked branch); the masked term is constant there
  t = jnp.array([0.0, 0.5, 1.0, 3.0], jnp.float64)
  x = jnp.full(4, 0.2, jnp.float64)
  gt = jax.grad(lambda b: L.poisson_nll_loss(x, b, full=True, reduction="sum"))(t)
  assert_close(gt, [-0.2, -0.2, -0.2, -0.2 + math.log(3.0) + 0.5 / 3.0])


# --- gaussian_nll_loss --------------------------------------------------------------------------


def _gauss_data(shape=(4, 3), seed=0):
  r = rng(seed)
  return r.standard_normal(shape), r.standard_normal(shape)


@pytest.mark.parametrize("var_shape", [(4, 3), (4,), (4, 1), (1, 3)], ids=str)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_accepted_var_shapes_match_torch(var_shape, full):
  x, t = _gauss_data()
  v = rng(5).uniform(0.2, 2.0, var_shape)
  ours = L.gaussian_nll_loss(x, t, v, full=full, reduction="none")
  ref = F.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), torch.tensor(v), full=full, reduction="none")
  assert ours.shape == (4, 3)
  assert_close(ours, ref.numpy())


def test_gaussian_float_var_and_hand_value():
  out = L.gaussian_nll_loss(jnp.array([2.0, 0.0], jnp.float64), jnp.zeros(2, jnp.float64), 1.0, reduction="none")
  assert_close(out, [2.0, 0.0])  # 0.5 (log 1 + 4 / 1)
  out = L.gaussian_nll_loss(jnp.array([2.0], jnp.float64), jnp.zeros(1, jnp.float64), 4.0, full=True)
  assert_close(out, 0.5 * (math.log(4.0) + 1.0) + 0.5 * math.log(2 * math.pi))


@pytest.mark.parametrize("var_shape", [(4, 2), (3,), (1, 1), (2, 4, 3), ()], ids=str)
def test_gaussian_rejected_var_shapes(var_shape):
  x, t = _gauss_data()
  with pytest.raises(ValueError, match=r"gaussian_nll_loss: expected `var` of shape \(4, 3\).*got"):
    L.gaussian_nll_loss(x, t, np.ones(var_shape))
  with pytest.raises(ValueError, match="var is of incorrect size"):  # torch agrees
    F.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), torch.ones(var_shape, dtype=torch.float64))


def test_gaussian_rank_one_var_per_example_on_1d_input():
  x, t = np.array([1.0, 2.0]), np.array([0.0, 0.0])
  assert_close(L.gaussian_nll_loss(x, t, np.array(2.0), reduction="none"),
               F.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), torch.tensor(2.0, dtype=torch.float64),
                                 reduction="none").numpy())


def test_gaussian_clamp_passes_gradient_through_like_torch():
  x, t = np.array([1.0, 2.0, 0.5]), np.array([1.0, 0.0, 0.0])
  v = np.array([1e-9, 1.0, 0.0])
  gv = jax.grad(lambda w: L.gaussian_nll_loss(jnp.asarray(x), jnp.asarray(t), w, reduction="sum"))(jnp.asarray(v))
  vt = torch.tensor(v, requires_grad=True)
  F.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), vt, reduction="sum").backward()
  assert_close(gv, vt.grad.numpy())
  eps = 1e-6  # d/dv 0.5 (log v + d^2 / v) at the clamped v = eps
  assert_close(np.asarray(gv)[[0, 2]], [0.5 / eps, 0.5 / eps - 0.5 * 0.25 / eps**2])


def test_gaussian_value_is_exactly_the_clamped_one():
  out = L.gaussian_nll_loss(jnp.zeros(1, jnp.float64), jnp.zeros(1, jnp.float64), jnp.array([0.0]), eps=0.25)
  assert float(out) == 0.5 * math.log(0.25)


def test_gaussian_negative_var_eager_raises():
  x, t = _gauss_data()
  with pytest.raises(ValueError, match=r"gaussian_nll_loss: expected `var` >= 0"):
    L.gaussian_nll_loss(x, t, np.full((4, 3), -1.0))
  with pytest.raises(ValueError, match=r"gaussian_nll_loss: expected `var` >= 0"):
    L.gaussian_nll_loss(x, t, -0.5)


def test_gaussian_negative_var_is_nan_under_jit_and_reported_by_checked():
  x, t = _gauss_data()
  v = np.ones((4, 3))
  v[1, 2] = -1.0
  out = np.asarray(jax.jit(lambda *a: L.gaussian_nll_loss(*a, reduction="none"))(x, t, v))
  assert np.isnan(out[1, 2]) and np.isfinite(np.delete(out.ravel(), 5)).all()
  assert np.isnan(float(jax.jit(L.gaussian_nll_loss)(x, t, v)))
  err, _ = jax.jit(L.checked(L.gaussian_nll_loss))(x, t, v)
  with pytest.raises(Exception, match=r"gaussian_nll_loss: expected `var` >= 0"):
    err.throw()
  err, val = jax.jit(L.checked(L.gaussian_nll_loss))(x, t, np.ones((4, 3)))
  assert err.get() is None and np.isfinite(float(val))


def test_gaussian_bad_dtypes_raise():
  x, t = _gauss_data()
  with pytest.raises(TypeError, match=r"gaussian_nll_loss: expected `var` to be a floating array"):
    L.gaussian_nll_loss(x, t, np.ones((4, 3), np.int32))
  with pytest.raises(ValueError, match=r"gaussian_nll_loss: expected `input` and `target` to have broadcastable shapes"):
    L.gaussian_nll_loss(x, t[:, :2], 1.0)


def test_gaussian_promotes_var_dtype():
  x = jnp.zeros(3, jnp.float32)
  assert L.gaussian_nll_loss(x, x, jnp.ones(3, jnp.float32)).dtype == jnp.float32
  assert L.gaussian_nll_loss(x, x, jnp.ones(3, jnp.float64)).dtype == jnp.float64
  assert L.gaussian_nll_loss(x, x, 1.0).dtype == jnp.float32


@pytest.mark.parametrize(("x_shape", "t_shape", "v_shape"), [
    ((5,), (1,), (5,)),  # torch's own test shapes
    ((5, 5, 5), (5, 5), (5, 5)),
    ((6, 4), (6, 1), (1, 4)),  # torch's documented "one dimension of size 1"
    ((5, 5), (3, 5, 5), (5, 5)),  # a target larger than input: the loss has the broadcast shape
], ids=str)
def test_gaussian_target_broadcasts_against_input_like_torch(x_shape, t_shape, v_shape):
  r = rng(3)
  x, t, v = r.standard_normal(x_shape), r.standard_normal(t_shape), r.uniform(0.5, 2.0, v_shape)
  out = L.gaussian_nll_loss(x, t, v, reduction="none")
  vb = v[..., None] if v_shape == x_shape[:-1] else v  # torch's "one dimension short" rule
  want = 0.5 * (np.log(vb) + (x - t) ** 2 / vb)  # numpy broadcasting, torch's formula
  np.testing.assert_allclose(np.asarray(out), want, rtol=1e-14)
  g = jax.grad(lambda tt: L.gaussian_nll_loss(x, tt, v, reduction="sum"))(jnp.asarray(t))
  g_want = np.sum((t - x) / vb * np.ones(want.shape), axis=tuple(range(want.ndim - len(t_shape))))
  g_want = g_want.sum(axis=tuple(i for i, n in enumerate(t_shape) if n == 1), keepdims=True)
  np.testing.assert_allclose(np.asarray(g), g_want, rtol=1e-12)

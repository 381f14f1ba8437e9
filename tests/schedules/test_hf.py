"""Hugging Face transformers' schedules: hand-computed values, the real transformers functions (eager
bitwise), jit/vector counts, dtypes, negative counts, NaN, errors and warnings."""

from __future__ import annotations

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll

from tests.schedules._torch_ref import eager, torch_lrs

S = ll.schedules

# (name, kwargs) pairs used by the generic tests below
MAKERS = {
    "linear": ("linear_schedule_with_warmup", {"num_warmup_steps": 3, "num_training_steps": 11}),
    "cosine": ("cosine_schedule_with_warmup", {"num_warmup_steps": 3, "num_training_steps": 11}),
    "hard_restarts": ("cosine_with_hard_restarts_schedule_with_warmup",
                      {"num_warmup_steps": 2, "num_training_steps": 14, "num_cycles": 3}),
    "polynomial": ("polynomial_decay_schedule_with_warmup",
                   {"num_warmup_steps": 2, "num_training_steps": 12, "lr_end": 1e-3, "power": 2.0}),
    "constant": ("constant_schedule_with_warmup", {"num_warmup_steps": 4}),
    "inverse_sqrt": ("inverse_sqrt_schedule", {"num_warmup_steps": 4, "timescale": 7}),
    "wsd": ("wsd_schedule", {"num_warmup_steps": 3, "num_decay_steps": 5, "num_stable_steps": 2,
                             "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.1}),
    "cosine_min_lr": ("cosine_with_min_lr_schedule_with_warmup",
                      {"num_warmup_steps": 2, "num_training_steps": 10, "min_lr": 0.01}),
}


def make(key, lr=0.1):
  name, kw = MAKERS[key]
  return getattr(S, name)(lr, **kw)


# --- hand-computed values ------------------------------------------------------------------------


def test_linear_values():
  s = S.linear_schedule_with_warmup(2.0, num_warmup_steps=4, num_training_steps=12)
  want = [2.0 * k / 4 for k in range(4)] + [2.0 * (12 - k) / 8 for k in range(4, 13)] + [0.0, 0.0]
  np.testing.assert_allclose(eager(s, 14), want, rtol=1e-15, atol=0)


def test_cosine_rises_again_past_the_end_where_warmup_cosine_holds_zero():
  s, held = S.cosine_schedule_with_warmup(1.0, 2, 6), S.warmup_cosine(1.0, 2, 6)
  want = [0.0, 0.5] + [0.5 * (1 + math.cos(math.pi * (k - 2) / 4)) for k in range(2, 15)]
  np.testing.assert_allclose(eager(s, 14), want, rtol=1e-14, atol=1e-16)
  np.testing.assert_allclose(eager(held, 6), want[:7], rtol=1e-14, atol=1e-16)
  assert float(s(10)) == pytest.approx(1.0) and float(held(10)) == 0.0


def test_hard_restarts_values():
  s = S.cosine_with_hard_restarts_schedule_with_warmup(1.0, 0, 8, num_cycles=2)
  cycle = [0.5 * (1 + math.cos(math.pi * j / 4)) for j in range(4)]
  np.testing.assert_allclose(eager(s, 10), cycle + cycle + [0.0, 0.0, 0.0], rtol=1e-14, atol=1e-16)


def test_polynomial_values_and_lr_end_past_the_end():
  lr, end, p, W, T = 0.5, 0.01, 3.0, 2, 10
  s = S.polynomial_decay_schedule_with_warmup(lr, W, T, lr_end=end, power=p)
  want = [lr * k / W for k in range(W)]
  want += [(lr - end) * (1 - (k - W) / (T - W)) ** p + end for k in range(W, T + 1)] + [end] * 3
  np.testing.assert_allclose(eager(s, T + 3), want, rtol=1e-14)


def test_inverse_sqrt_default_timescale():
  s = S.inverse_sqrt_schedule(1.0, num_warmup_steps=0)  # timescale 10_000
  np.testing.assert_allclose(eager(s, 3), [1.0 / math.sqrt((k + 10_000) / 10_000) for k in range(4)], rtol=1e-15)
  s = S.inverse_sqrt_schedule(1.0, num_warmup_steps=5)  # timescale 5: halves at k = 5 + 15
  assert float(s(20)) == pytest.approx(0.5, rel=1e-15)


def test_wsd_linear_phases_by_hand():
  s = S.wsd_schedule(1.0, 2, 4, num_training_steps=9, decay_type="linear", min_lr_ratio=0.2)
  # W=2, S=9-2-4=3, D=4; warmup and decay both map f -> 0.2 + 0.8 f
  want = [0.2, 0.6, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2]
  np.testing.assert_allclose(eager(s, 10), want, rtol=1e-14)


def test_cosine_min_lr_equals_min_lr_rate():
  a = S.cosine_with_min_lr_schedule_with_warmup(0.5, 3, 13, min_lr=0.05)
  b = S.cosine_with_min_lr_schedule_with_warmup(0.5, 3, 13, min_lr_rate=0.1)
  np.testing.assert_allclose(eager(a, 20), eager(b, 20), rtol=1e-15)
  assert float(a(13)) == pytest.approx(0.05, rel=1e-14)


# --- the real transformers -------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(MAKERS))
def test_eager_is_transformers_bitwise_and_jit_within_ulps(key):
  tf = pytest.importorskip("transformers")
  name, kw = MAKERS[key]
  want = torch_lrs(lambda opt, L: getattr(tf, f"get_{name}")(opt, **kw), 25, lr=0.3)
  s = make(key, lr=0.3)
  assert eager(s, 25) == want
  np.testing.assert_allclose(np.asarray(jax.jit(s)(jnp.arange(26))), want, rtol=1e-15, atol=1e-17)


def test_transformers_rejects_what_we_reject():
  tf = pytest.importorskip("transformers")
  torch = pytest.importorskip("torch")
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
  with pytest.raises(ValueError, match=re.escape("lr_end (0.2) must be smaller than initial lr (0.1)")):
    tf.get_polynomial_decay_schedule_with_warmup(opt, 1, 5, lr_end=0.2)
  with pytest.raises(ValueError, match=re.escape("lr_end (0.2) must be smaller than initial lr (0.1)")):
    S.polynomial_decay_schedule_with_warmup(0.1, 1, 5, lr_end=0.2)
  for kw in ({}, {"min_lr": 0.01, "min_lr_rate": 0.1}):
    with pytest.raises(ValueError):
      tf.get_cosine_with_min_lr_schedule_with_warmup(opt, 1, 5, **kw)
    with pytest.raises(ValueError, match="min_lr"):
      S.cosine_with_min_lr_schedule_with_warmup(0.1, 1, 5, **kw)
  sched = tf.get_polynomial_decay_schedule_with_warmup(opt, 3, 3)
  for _ in range(2):
    opt.step()
    sched.step()
  with pytest.raises(ZeroDivisionError):  # count 3 = num_warmup_steps = num_training_steps
    sched.step()


# --- counts, jit, dtypes --------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(MAKERS))
def test_vmap_over_counts(key):
  s = make(key)
  k = jnp.arange(24).reshape(2, 12)
  np.testing.assert_allclose(np.asarray(jax.vmap(jax.vmap(s))(k)), np.asarray(s(k)), rtol=1e-14, atol=1e-17)


@pytest.mark.parametrize("key", list(MAKERS))
def test_jit_no_retrace_and_array_counts(key):
  traces = []
  s = make(key)

  @jax.jit
  def f(k):
    traces.append(1)
    return s(k)

  vals = [float(f(jnp.asarray(k, jnp.int32))) for k in range(20)]
  assert len(traces) == 1
  np.testing.assert_allclose(vals, eager(s, 19), rtol=1e-15, atol=1e-17)
  grid = np.asarray(s(np.arange(20).reshape(4, 5)))
  assert grid.shape == (4, 5)
  np.testing.assert_allclose(grid.ravel(), vals, rtol=1e-15, atol=1e-17)


@pytest.mark.parametrize("key", list(MAKERS))
def test_dtypes(key):
  assert make(key)(3).dtype == jnp.float64
  assert make(key, lr=np.float32(0.1))(3).dtype == jnp.float32
  bf16 = make(key, lr=np.array(0.1, dtype=jnp.bfloat16)[()])(jnp.arange(20))  # a numpy bfloat16 scalar
  assert bf16.dtype == jnp.bfloat16
  # bfloat16 lr (unit roundoff 3.9e-3, 0.1 itself is 0.10009765625 in bf16) against the float64 schedule
  np.testing.assert_allclose(np.asarray(bf16, np.float64), eager(make(key), 19), rtol=2e-2, atol=1e-3)
  with jax.enable_x64(False):
    out = make(key)(jnp.asarray(5, jnp.int32))
    assert out.dtype == jnp.float32
  with jax.numpy_dtype_promotion("strict"):
    make(key)(jnp.arange(30))


@pytest.mark.parametrize("key", list(MAKERS))
def test_negative_counts_raise_eagerly_and_are_nan_under_jit_float_counts_refused(key):
  s = make(key)
  with pytest.raises(ValueError, match="expected a non-negative count"):
    s(-1)
  with pytest.raises(ValueError, match="expected a non-negative count"):
    s(jnp.asarray([3, -5, 0]))
  out = np.asarray(jax.jit(s)(jnp.asarray([-5, -1, 0, 3])))
  assert np.all(np.isnan(out[:2])) and out[2] == float(s(0)) and out[3] == float(s(3))
  with pytest.raises(TypeError, match="expected an integer count"):
    s(1.0)


@pytest.mark.parametrize("key", [k for k in MAKERS if k != "polynomial"])  # polynomial: refused, below
def test_nan_lr_gives_nan(key):
  assert np.all(np.isnan(np.asarray(make(key, lr=math.nan)(jnp.arange(15)))))


def test_nan_lr_refused_where_the_factor_needs_it():
  with pytest.raises(ValueError, match="must be smaller than initial lr"):
    S.polynomial_decay_schedule_with_warmup(math.nan, 1, 5)
  s = S.cosine_with_min_lr_schedule_with_warmup(math.nan, 1, 5, min_lr=0.01)
  assert np.all(np.isnan(np.asarray(s(jnp.arange(8)))))
  s = S.cosine_with_min_lr_schedule_with_warmup(0.1, 1, 5, min_lr_rate=math.nan)
  assert np.all(np.isnan(np.asarray(s(jnp.arange(1, 8)))))


def test_polynomial_zero_decay_steps_raises_eagerly_and_is_nan_under_jit():
  s = S.polynomial_decay_schedule_with_warmup(0.1, 3, 3)
  assert float(s(2)) == pytest.approx(0.1 * 2 / 3) and float(s(4)) == pytest.approx(1e-7)
  with pytest.raises(ValueError, match="divides by zero"):
    s(3)
  with pytest.raises(ValueError, match="divides by zero"):
    s(np.arange(5))
  out = np.asarray(jax.jit(s)(jnp.arange(5)))
  assert np.isnan(out[3]) and np.all(np.isfinite(np.delete(out, 3)))


# --- arguments ------------------------------------------------------------------------------------


def test_wsd_warns_like_transformers_when_both_lengths_are_given():
  with pytest.warns(UserWarning, match="num_stable_steps will be used"):
    s = S.wsd_schedule(1.0, 2, 2, num_training_steps=100, num_stable_steps=1)
  assert float(s(3)) == 1.0 and float(s(4)) < 1.0  # the stable phase is 1 step long (decay from 3), not 96
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    S.wsd_schedule(1.0, 2, 2, num_stable_steps=1)


@pytest.mark.parametrize("call,error,message", [
    (lambda: S.wsd_schedule(1.0, 2, 2), ValueError, "Either num_training_steps or num_stable_steps must be"),
    (lambda: S.wsd_schedule(1.0, 2, 2, 10, warmup_type="exp"), ValueError, "Unknown warmup type: exp"),
    (lambda: S.wsd_schedule(1.0, 2, 2, 10, decay_type="step"), ValueError, "Unknown decay type: step"),
    (lambda: S.linear_schedule_with_warmup(1.0, -1, 10), ValueError, "`num_warmup_steps` to be an integer >= 0"),
    (lambda: S.cosine_schedule_with_warmup(1.0, 1, 2.5), ValueError, "`num_training_steps` to be an integer >= 0"),
    (lambda: S.cosine_schedule_with_warmup(1.0, 1, 5, num_cycles="2"), TypeError, "`num_cycles` to be a real"),
    (lambda: S.inverse_sqrt_schedule(1.0, 2, timescale=0), ValueError, "`timescale` to be a positive number"),
    (lambda: S.constant_schedule_with_warmup("0.1", 2), TypeError, "`lr` to be a real number"),
], ids=["wsd-lengths", "wsd-warmup", "wsd-decay", "negative", "float-steps", "cycles", "timescale", "lr"])
def test_bad_arguments(call, error, message):
  with pytest.raises(error, match=re.escape(message)):
    call()


def test_linear_warmup_then_cosine_recipe_is_torchvisions():
  pytest.importorskip("torch")
  lr, W, T = 0.2, 3, 20
  ours = S.sequential_lr([S.linear_lr(lr, 0.01, 1.0, total_iters=W), S.cosine_annealing_lr(lr, T - W, 1e-4)], [W])
  want = torch_lrs(lambda opt, L: L.SequentialLR(opt, [L.LinearLR(opt, 0.01, 1.0, total_iters=W),
                                                       L.CosineAnnealingLR(opt, T - W, 1e-4)], [W]), T + 5, lr=lr)
  np.testing.assert_allclose(eager(ours, T + 5), want, rtol=1e-14)
  assert eager(ours, 0)[0] == pytest.approx(0.01 * lr)  # starts at start_factor * lr, not 0

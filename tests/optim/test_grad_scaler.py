"""grad_scaler / loss_scale: torch's wording, the scale rules by hand, skipped steps keep the
optimizer state while schedules advance (and the measured difference from optax.apply_if_finite),
nnx.Optimizer, jit (torch parity: case ``grad_scaler``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import losslab_jax as ll
from tests.helpers import assert_close


@pytest.mark.parametrize("kwargs,message", [
    ({"growth_factor": 1.0}, "The growth factor must be > 1.0."),
    ({"growth_factor": math.nan}, "The growth factor must be > 1.0."),
    ({"backoff_factor": 1.0}, "The backoff factor must be < 1.0."),
    ({"backoff_factor": math.nan}, "The backoff factor must be < 1.0."),
    ({"init_scale": math.nan}, "expected a finite init_scale > 0"),
    ({"growth_interval": 0}, "expected growth_interval to be an int >= 1"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    ll.optim.grad_scaler(ll.optim.sgd(), **kwargs)


def test_torch_uses_the_same_words():
  torch = pytest.importorskip("torch")
  with pytest.raises(AssertionError, match="The growth factor must be > 1.0."):
    torch.amp.GradScaler("cpu", growth_factor=1.0)
  with pytest.raises(AssertionError, match="The backoff factor must be < 1.0."):
    torch.amp.GradScaler("cpu", backoff_factor=1.0)


def _run(tx, grads, p=None):
  p = jnp.zeros(1, jnp.float64) if p is None else p
  s = tx.init(p)
  step = jax.jit(tx.update)
  out = []
  for g in grads:
    u, s = step(jnp.asarray(g, jnp.float64), s, p)
    out.append(float(u[0]))
  return out, s


def test_schedule_advances_on_a_skipped_step_unlike_apply_if_finite():
  # lr_k = 0.1 * 0.5**k; grads 1, inf, 1: torch (scheduler.step() every iteration) applies lr_2 at
  # the third iteration. optax.apply_if_finite keeps the whole inner state, schedule count included.
  sched = lambda k: 0.1 * 0.5 ** jnp.asarray(k, jnp.float64)  # noqa: E731
  # (the skip halves the scale to 0.5, so the third scaled gradient 0.5 is an unscaled 1.0)
  ours, _ = _run(ll.optim.grad_scaler(ll.optim.sgd(lr=sched), init_scale=1.0), [[1.0], [np.inf], [0.5]])
  theirs, _ = _run(optax.apply_if_finite(ll.optim.sgd(lr=sched), max_consecutive_errors=5), [[1.0], [np.inf], [1.0]])
  assert ours == [-0.1, 0.0, -0.025]
  assert theirs == [-0.1, 0.0, -0.05]            # one step behind: the measured difference


def test_skipped_step_keeps_the_optimizer_state():
  tx = ll.optim.grad_scaler(ll.optim.adam(lr=0.1), init_scale=4.0)
  p = jnp.ones(2, jnp.float64)
  s0 = tx.init(p)
  _, s1 = tx.update(jnp.array([4.0, 8.0]), s0, p)
  _, s2 = tx.update(jnp.array([jnp.nan, 8.0]), s1, p)
  adam1, adam2 = s1.inner_state[2], s2.inner_state[2]
  assert int(adam2.step) == 1                                    # Adam's step: not advanced
  assert_close(adam2.exp_avg, adam1.exp_avg, rtol=0)
  assert_close(adam1.exp_avg, [0.1, 0.2], rtol=1e-15)            # unscaled: g / 4
  assert int(s2.inner_state[3].step) == 2                        # the lr schedule count: advanced
  assert float(s2.scale) == 2.0 and float(s2.found_inf) == 1.0 and int(s2.growth_tracker) == 0


def test_scale_rules_by_hand():
  tx = ll.optim.grad_scaler(ll.optim.sgd(lr=1.0), init_scale=2.0, growth_factor=3.0, backoff_factor=0.25,
                            growth_interval=2)
  grads = [[1.0], [1.0], [1.0], [np.inf], [1.0], [-np.inf], [1.0], [1.0]]
  ups, _ = _run(tx, grads)
  # scale: 2 -> 2 -> 6 -> 6 -> 1.5 -> 1.5 -> 0.375 -> 0.375 -> 1.125
  f32 = lambda v: float(np.float32(v))  # noqa: E731  (1/scale is rounded to float32, as in torch)
  assert ups == [-0.5, -0.5, -f32(1 / 6), 0.0, -f32(1 / 1.5), 0.0, -f32(1 / 0.375), -f32(1 / 0.375)]
  scales = []
  s = tx.init(jnp.zeros(1))
  for g in grads:
    _, s = tx.update(jnp.asarray(g), s, jnp.zeros(1))
    scales.append(float(ll.optim.loss_scale(s)))
  assert scales == [2.0, 6.0, 6.0, 1.5, 1.5, 0.375, 0.375, 1.125]


def test_growth_stops_below_float32_overflow_and_backoff_rounds_to_float32():
  tx = ll.optim.grad_scaler(ll.optim.sgd(), init_scale=3e38, growth_interval=1)
  _, s = _run(tx, [[1.0], [1.0]])
  assert float(s.scale) == float(np.float32(3e38)) and int(s.growth_tracker) == 0
  _, s = _run(ll.optim.grad_scaler(ll.optim.sgd(), init_scale=1.0, backoff_factor=0.3), [[np.nan]])
  assert float(s.scale) == float(np.float32(0.3)) and s.scale.dtype == jnp.float32


def test_extra_args_reach_the_wrapped_transformation_and_no_retrace():
  tx = ll.optim.grad_scaler(optax.chain(ll.optim.sgd(lr=0.1), ll.optim.reduce_lr_on_plateau(patience=0)))
  traces = []

  @jax.jit
  def step(p, s, g, v):
    traces.append(1)
    return tx.update(g, s, p, value=v)

  p = jnp.zeros(2)
  s = tx.init(p)
  for v in (1.0, 2.0, 3.0):
    u, s = step(p, s, jnp.full(2, 65536.0), jnp.asarray(v))
  assert len(traces) == 1
  assert_close(u, [-0.001, -0.001], rtol=1e-12)   # two bad metrics with patience 0: lr * 0.1 * 0.1


def test_float16_forward_in_nnx_backs_off_until_finite():
  # float32 master weights, float16 forward: the default 2**16 overflows float16 at first.
  model = nnx.Linear(4, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float32)
  opt = nnx.Optimizer(model, ll.optim.grad_scaler(ll.optim.sgd(lr=0.01)), wrt=nnx.Param)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 4)) * 3, jnp.float16)

  def scaled_loss(m, scale):
    out = x @ m.kernel[...].astype(jnp.float16) + m.bias[...].astype(jnp.float16)[None, :]
    return (jnp.mean(out.astype(jnp.float32) ** 2) * scale).astype(jnp.float16).astype(jnp.float32)

  @nnx.jit
  def train(model, opt):
    grads = nnx.grad(scaled_loss)(model, ll.optim.loss_scale(opt.opt_state))
    opt.update(model, grads)

  kernel0 = np.asarray(model.kernel[...])
  scales = []
  for _ in range(8):
    train(model, opt)
    scales.append(float(ll.optim.loss_scale(opt.opt_state)))
  assert scales[0] < 65536.0                                   # skipped and backed off
  assert scales[-1] == scales[-2]                               # then finite steps, no growth yet
  assert np.all(np.isfinite(np.asarray(model.kernel[...]))) and not np.allclose(np.asarray(model.kernel[...]), kernel0)


def test_loss_scale_needs_exactly_one_scaler():
  with pytest.raises(ValueError, match="exactly one grad_scaler state"):
    ll.optim.loss_scale(ll.optim.sgd().init(jnp.zeros(1)))


def test_inject_hyperparams_count_advances_but_its_inner_state_is_kept():
  tx = ll.optim.grad_scaler(optax.inject_hyperparams(ll.optim.adam)(lr=lambda k: 0.1 * 0.5 ** k), init_scale=1.0)
  p = jnp.ones(2, jnp.float64)
  _, s1 = tx.update(jnp.array([1.0, 2.0]), tx.init(p), p)
  _, s2 = tx.update(jnp.array([jnp.inf, 2.0]), s1, p)
  assert int(s2.inner_state.count) == 2
  adam1, adam2 = s1.inner_state.inner_state[2], s2.inner_state.inner_state[2]
  assert int(adam2.step) == 1
  assert_close(adam2.exp_avg_sq, adam1.exp_avg_sq, rtol=0)

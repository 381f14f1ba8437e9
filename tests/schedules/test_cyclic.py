"""one_cycle_lr / one_cycle_momentum, cyclic_lr / cyclic_momentum: semantics.md's examples, torch's
numbers (lr and the momentum torch writes into the optimizer), the end of OneCycle, jit, errors."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll

S = ll.schedules


def torch_run(make, K, *, optimizer="sgd", lr=0.1):
  """(lrs, momenta) after k = 0..K scheduler steps; momentum is SGD's or Adam's betas[0]."""
  torch = pytest.importorskip("torch")
  p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
  opt = torch.optim.Adam([p], lr=lr) if optimizer == "adam" else torch.optim.SGD([p], lr=lr, momentum=0.0)
  sched = make(opt, torch.optim.lr_scheduler)

  def momentum():
    g = opt.param_groups[0]
    return g["betas"][0] if optimizer == "adam" else g["momentum"]

  lrs, moms = [sched.get_last_lr()[0]], [momentum()]
  for _ in range(K):
    opt.step()
    sched.step()
    lrs.append(sched.get_last_lr()[0])
    moms.append(momentum())
  return lrs, moms


def eager(schedule, K):
  return [float(schedule(k)) for k in range(K + 1)]


# --- OneCycleLR ---------------------------------------------------------------------------------


def test_one_cycle_semantics_example():
  """semantics.md: T=10, max_lr=1: .04 .52 1.0 .9505 .8117 .6113 .3887 .1883 .0495 4e-6 .0495"""
  got = eager(S.one_cycle_lr(1.0, 10), 10)
  want = [.04, .52, 1.0, .9505, .8117, .6113, .3887, .1883, .0495, 4e-6, .0495]
  np.testing.assert_allclose(got, want, atol=5e-5)   # the documented values have 4 decimals
  assert got[9] == pytest.approx(1.0 / 25 / 1e4, rel=1e-9)  # min_lr = initial / final_div_factor


def test_one_cycle_three_phase_linear_goes_negative_at_total_steps():
  got = eager(S.one_cycle_lr(1.0, 10, three_phase=True, anneal_strategy="linear"), 10)
  np.testing.assert_allclose(got[:5], [.04, .52, 1.0, .52, .04], rtol=1e-12)
  assert got[10] == pytest.approx(-0.0079952, rel=1e-9)  # torch: -0.007995200000000001


def test_one_cycle_momentum_semantics_examples():
  """semantics.md: SGD 0.95, 0.9, 0.85, 0.855, ..., 0.95; Adam three-phase .95 .9 .85 .9 .95 .95 ..."""
  two = eager(S.one_cycle_momentum(10), 9)
  np.testing.assert_allclose(two[:4], [.95, .9, .85, .85 + 0.1 * (1 - math.cos(math.pi / 7)) / 2], rtol=1e-12)
  assert two[9] == pytest.approx(0.95, rel=1e-15)
  three = eager(S.one_cycle_momentum(10, three_phase=True), 9)
  np.testing.assert_allclose(three, [.95, .9, .85, .9, .95, .95, .95, .95, .95, .95], rtol=1e-12)


ONE_CYCLE = [
    ("T10", {"max_lr": 1.0, "total_steps": 10}),
    ("T30-three", {"max_lr": 0.3, "total_steps": 30, "three_phase": True}),
    ("T25-linear", {"max_lr": 0.05, "total_steps": 25, "anneal_strategy": "linear", "pct_start": 0.4}),
    ("T17-three-linear", {"max_lr": 2.0, "total_steps": 17, "three_phase": True, "anneal_strategy": "linear",
                          "div_factor": 10.0, "final_div_factor": 100.0}),
    ("T50-pct0.01", {"max_lr": 0.1, "total_steps": 50, "pct_start": 0.01}),  # warm-up ends before k = 0
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name,kw", ONE_CYCLE, ids=[c[0] for c in ONE_CYCLE])
def test_one_cycle_lr_and_momentum_are_torch_bitwise(name, kw, optimizer):
  T = kw["total_steps"]
  lrs, moms = torch_run(lambda o, L: L.OneCycleLR(o, **kw), T, optimizer=optimizer)
  assert eager(S.one_cycle_lr(**kw), T) == lrs
  phase = {k: v for k, v in kw.items() if k in ("pct_start", "anneal_strategy", "three_phase")}
  assert eager(S.one_cycle_momentum(T, **phase), T) == moms
  # jit: XLA fuses multiply-adds, an ulp or two of the largest value (the linear anneal to
  # min_lr cancels, so near its end only the absolute error is small)
  np.testing.assert_allclose(np.asarray(jax.jit(S.one_cycle_lr(**kw))(jnp.arange(T + 1))), lrs, rtol=1e-14,
                             atol=1e-15 * kw["max_lr"])


@pytest.mark.parametrize("make,final", [
    (lambda: S.one_cycle_lr(1.0, 10), 1.0 / 25.0 / 1e4),   # max_lr / div_factor / final_div_factor
    (lambda: S.one_cycle_momentum(10), 0.95),             # max_momentum at the end of the anneal
], ids=["lr", "momentum"])
def test_one_cycle_past_total_steps_raises_eagerly_and_holds_the_final_value_under_jit(make, final):
  f = make()
  message = "Tried to step 11 times. The specified number of total steps is 10"
  with pytest.raises(ValueError, match=re.escape(message)):
    f(11)
  with pytest.raises(ValueError, match=re.escape(message)):
    f(np.arange(15))
  traced = np.asarray(jax.jit(f)(jnp.arange(15)))
  np.testing.assert_allclose(traced[:11], np.asarray(f(np.arange(11))), rtol=1e-15)  # jit: an FMA ulp
  # past the end: the final value (count 9), never NaN, which would poison every parameter
  np.testing.assert_allclose(traced[11:], final, rtol=1e-12)
  assert np.all(traced[11:] == traced[9])


def test_one_cycle_past_the_end_is_reported_under_checked():
  step = jax.jit(ll.losses.checked(S.one_cycle_lr(1.0, 10)))
  err, lr = step(jnp.asarray(12))
  assert float(lr) == pytest.approx(4e-6, rel=1e-12)
  with pytest.raises(Exception, match="one_cycle_lr: expected a count below 11"):
    err.throw()
  err, _ = step(jnp.asarray(10))
  assert err.get() is None


def test_one_cycle_past_the_end_keeps_a_jitted_training_run_finite():
  tx = ll.optim.sgd(lr=S.one_cycle_lr(0.1, 5), momentum=0.9)

  @jax.jit
  def step(p, s):
    u, s = tx.update(2.0 * p, s, p)  # grad of sum(p**2)
    return p + u, s

  p = jnp.ones(3, jnp.float64)
  s = tx.init(p)
  for _ in range(12):  # 12 updates: counts 0..11 of a 5-step cycle
    p, s = step(p, s)
  assert np.all(np.isfinite(np.asarray(p)))


def test_one_cycle_zero_length_phases_follow_torch():
  # (torch 2.x fails at construction with a ZeroDivisionError for a warm-up of length 0)
  with pytest.raises(ValueError, match="one_cycle_lr: expected the warm-up phase to span more than one step"):
    S.one_cycle_lr(1.0, 10, pct_start=0.1)
  # pct_start=1: the last phase has length 0, torch fails at step 10
  s = S.one_cycle_lr(1.0, 10, pct_start=1.0)
  assert float(s(9)) == 1.0
  with pytest.raises(ValueError, match="the last phase has zero length"):
    s(10)
  assert float(jax.jit(s)(jnp.asarray(10))) == 1.0  # holds the final value, count 9


# --- CyclicLR -----------------------------------------------------------------------------------


def test_cyclic_sets_lr_and_momentum_at_construction():
  """semantics.md: SGD(lr=.5, momentum=0) -> lr .01, momentum .9 (base_lr, max_momentum)."""
  lrs, moms = torch_run(lambda o, L: L.CyclicLR(o, 0.01, 0.1, step_size_up=3), 0, lr=0.5)
  assert (lrs[0], moms[0]) == (0.01, 0.9)
  assert float(S.cyclic_lr(0.01, 0.1, 3)(0)) == 0.01
  assert float(S.cyclic_momentum(0.8, 0.9, 3)(0)) == 0.9


CYCLIC = [
    ("triangular", {"step_size_up": 4}),
    ("triangular2", {"step_size_up": 2, "step_size_down": 3, "mode": "triangular2"}),
    ("exp_range", {"step_size_up": 3, "step_size_down": 5, "mode": "exp_range", "gamma": 0.97}),
    ("down0", {"step_size_up": 5, "step_size_down": 0}),
    ("float-steps", {"step_size_up": 2.5, "step_size_down": 1.5}),
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name,kw", CYCLIC, ids=[c[0] for c in CYCLIC])
def test_cyclic_lr_and_momentum_are_torch_bitwise(name, kw, optimizer):
  lrs, moms = torch_run(lambda o, L: L.CyclicLR(o, 0.001, 0.1, base_momentum=0.7, max_momentum=0.95, **kw), 60,
                        optimizer=optimizer)
  assert eager(S.cyclic_lr(0.001, 0.1, **kw), 60) == lrs
  assert eager(S.cyclic_momentum(0.7, 0.95, **kw), 60) == moms
  np.testing.assert_allclose(np.asarray(jax.jit(S.cyclic_lr(0.001, 0.1, **kw))(jnp.arange(61))), lrs, rtol=1e-14)


@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
def test_cyclic_custom_scale_fn(scale_mode):
  ours = S.cyclic_lr(0.01, 0.1, 3, scale_fn=lambda x: 1.0 / (1.0 + x.astype(jnp.float64)), scale_mode=scale_mode)
  lrs, _ = torch_run(lambda o, L: L.CyclicLR(o, 0.01, 0.1, 3, scale_fn=lambda x: 1.0 / (1.0 + x),
                                             scale_mode=scale_mode), 30)
  np.testing.assert_allclose(eager(ours, 30), lrs, rtol=1e-15)


def test_cyclic_triangular2_halves_each_cycle():
  s = S.cyclic_lr(0.0, 1.0, step_size_up=2, mode="triangular2")
  peaks = [float(s(2 + 4 * c)) for c in range(5)]
  assert peaks == [1.0, 0.5, 0.25, 0.125, 0.0625]


# --- jit, dtypes, errors ------------------------------------------------------------------------

MAKERS = [lambda: S.one_cycle_lr(0.1, 1000), lambda: S.one_cycle_momentum(1000, three_phase=True),
          lambda: S.cyclic_lr(0.01, 0.1, 7, mode="exp_range", gamma=0.99), lambda: S.cyclic_momentum(0.8, 0.9, 5)]
IDS = ["one_cycle_lr", "one_cycle_momentum", "cyclic_lr", "cyclic_momentum"]


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_jit_no_retrace_vector_and_dtypes(make):
  traces = []

  @jax.jit
  def f(k):
    traces.append(1)
    return make()(k)

  vals = [float(f(jnp.asarray(k, jnp.int32))) for k in range(0, 1000, 37)]
  assert len(traces) == 1
  np.testing.assert_allclose(vals, [float(make()(k)) for k in range(0, 1000, 37)], rtol=1e-14)
  np.testing.assert_allclose(np.asarray(make()(np.arange(0, 1000, 37))), vals, rtol=1e-14)
  assert make()(3).dtype == jnp.float64
  with jax.enable_x64(False):
    assert make()(jnp.asarray(3, jnp.int32)).dtype == jnp.float32
  with jax.numpy_dtype_promotion("strict"):
    make()(jnp.arange(50))


def test_float32_arguments_give_float32():
  assert S.one_cycle_lr(np.float32(0.1), 100)(5).dtype == jnp.float32
  assert S.one_cycle_momentum(100, np.float32(0.85), np.float32(0.95))(5).dtype == jnp.float32
  assert S.cyclic_lr(np.float32(0.01), np.float32(0.1), 4)(5).dtype == jnp.float32


@pytest.mark.parametrize("call,message", [
    (lambda: S.one_cycle_lr(0.1, 0), "one_cycle_lr: expected positive integer `total_steps`, got 0"),
    (lambda: S.one_cycle_lr(0.1, 10.0), "one_cycle_lr: expected positive integer `total_steps`, got 10.0"),
    (lambda: S.one_cycle_lr(0.1, 10, pct_start=1), "expected a float `pct_start` between 0 and 1, got 1"),
    (lambda: S.one_cycle_lr(0.1, 10, pct_start=1.5), "expected a float `pct_start` between 0 and 1, got 1.5"),
    (lambda: S.one_cycle_lr(0.1, 10, anneal_strategy="exp"), "expected `anneal_strategy` 'cos' or 'linear'"),
    (lambda: S.one_cycle_lr(0.1, 10, div_factor=0.0), "expected positive `div_factor` and `final_div_factor`"),
    (lambda: S.one_cycle_momentum(10, pct_start=-0.1), "one_cycle_momentum: expected a float `pct_start`"),
    (lambda: S.cyclic_lr(0.01, 0.1, mode="sine"), "cyclic_lr: expected `mode` 'triangular', 'triangular2'"),
    (lambda: S.cyclic_lr(0.01, 0.1, step_size_up=0), "expected `step_size_up` > 0 and `step_size_down` >= 0"),
    (lambda: S.cyclic_momentum(step_size_down=-1), "cyclic_momentum: expected `step_size_up` > 0"),
    (lambda: S.cyclic_lr(0.01, 0.1, scale_mode="epoch"), "expected `scale_mode` 'cycle' or 'iterations'"),
], ids=["total0", "total-float", "pct-int", "pct-big", "anneal", "div", "mom-pct", "mode", "up0", "down-neg",
        "scale_mode"])
def test_bad_arguments(call, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    call()


@pytest.mark.parametrize("kwargs", [{"total_steps": 0}, {"total_steps": 10, "pct_start": 1},
                                    {"total_steps": 10, "anneal_strategy": "exp"}])
def test_torch_rejects_the_same_one_cycle_arguments(kwargs):
  torch = pytest.importorskip("torch")
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
  with pytest.raises(ValueError):
    torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, **kwargs)

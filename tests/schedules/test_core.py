"""The machinery every schedule shares (``schedules/_core.py``): the count check (negative counts
raise eagerly, are NaN under jit and reported under ``checked``), the explicit ``TorchSchedule``
type that ``chained``/``sequential_lr`` read, and the float count ``lambda_lr`` passes on."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from losslab_jax.schedules._core import TorchSchedule, TorchSteps

S = ll.schedules

MAKERS = {
    "step_lr": lambda: S.step_lr(0.1, 2),
    "multistep_lr": lambda: S.multistep_lr(0.1, [2, 4]),
    "exponential_lr": lambda: S.exponential_lr(0.1, 0.9),
    "constant_lr": lambda: S.constant_lr(0.1),
    "linear_lr": lambda: S.linear_lr(0.1),
    "polynomial_lr": lambda: S.polynomial_lr(0.1),
    "cosine_annealing_lr": lambda: S.cosine_annealing_lr(0.1, 10),
    "cosine_annealing_warm_restarts": lambda: S.cosine_annealing_warm_restarts(0.1, 3),
    "warmup_cosine": lambda: S.warmup_cosine(0.1, 2, 10),
    "one_cycle_lr": lambda: S.one_cycle_lr(0.1, 10),
    "one_cycle_momentum": lambda: S.one_cycle_momentum(10),
    "cyclic_lr": lambda: S.cyclic_lr(0.01, 0.1, 3),
    "cyclic_momentum": lambda: S.cyclic_momentum(0.8, 0.9, 3),
    "lambda_lr": lambda: S.lambda_lr(0.1, lambda k: 1.0 / (k + 1.0)),
    "multiplicative_lr": lambda: S.multiplicative_lr(0.1, lambda k: 0.9),
    "sequential_lr": lambda: S.sequential_lr([S.constant_lr(0.1), S.exponential_lr(0.1, 0.9)], [3]),
    "chained": lambda: S.chained([S.constant_lr(0.1), S.exponential_lr(0.1, 0.9)]),
    "per_epoch": lambda: S.per_epoch(S.step_lr(0.1, 2), 3),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_negative_count_raises_eagerly(name):
  s = MAKERS[name]()
  with pytest.raises(ValueError, match="expected a non-negative count"):
    s(-1)
  with pytest.raises(ValueError, match="expected a non-negative count"):
    s(np.asarray([0, 3, -2]))


@pytest.mark.parametrize("name", list(MAKERS))
def test_negative_count_is_nan_under_jit(name):
  s = MAKERS[name]()
  out = np.asarray(jax.jit(s)(jnp.asarray([-3, -1, 0, 1])))
  assert np.all(np.isnan(out[:2]))
  np.testing.assert_array_equal(out[2:], [float(s(0)), float(s(1))])


def test_negative_count_is_reported_under_checked():
  f = jax.jit(ll.losses.checked(S.step_lr(0.1, 2)))
  err, value = f(jnp.asarray(-1))
  assert np.isnan(float(value))
  with pytest.raises(Exception, match="step_lr: expected a non-negative count"):
    err.throw()
  err, value = f(jnp.asarray(3))
  assert err.get() is None and float(value) == pytest.approx(0.01, rel=1e-15)


def test_float_count_is_refused():
  with pytest.raises(TypeError, match="step_lr: expected an integer count"):
    S.step_lr(0.1, 2)(1.0)


def test_every_schedule_is_a_torch_schedule_with_its_rule():
  chainable = {"step_lr", "multistep_lr", "exponential_lr", "constant_lr", "linear_lr", "polynomial_lr",
               "cosine_annealing_lr", "multiplicative_lr"}
  for name, make in MAKERS.items():
    s = make()
    if name == "per_epoch":  # a plain adapter: the count check is its inner schedule's
      assert not isinstance(s, TorchSchedule)
      continue
    assert isinstance(s, TorchSchedule) and s.name == name
    assert isinstance(s.rule, TorchSteps) == (name in chainable), name


def test_lambda_lr_passes_a_float_count():
  seen = []

  def fn(k):
    seen.append(k.dtype)
    return k / 1000

  s = S.lambda_lr(1.0, fn)
  # The optimizer's count is int32, and jax divides int32 / int in float32 even under x64
  # (0.0010000000474974513); torch divides Python ints in double: exactly 0.001.
  one = jnp.asarray(1, jnp.int32)
  assert float(s(one)) == 0.001
  assert seen[-1] == jnp.float64
  assert float(jax.jit(s)(jnp.asarray(7, jnp.int32))) == 7 / 1000


def test_multiplicative_lr_passes_a_float_count():
  s = S.multiplicative_lr(1.0, lambda k: 1.0 - k / 1000)
  want = 1.0
  for k in range(1, 5):
    want *= 1.0 - k / 1000
  assert float(s(jnp.asarray(4, jnp.int32))) == want

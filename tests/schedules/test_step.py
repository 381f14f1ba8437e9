"""step_lr, multistep_lr, exponential_lr, constant_lr, linear_lr, polynomial_lr: hand-checked
values, torch's numbers bit for bit (eager), jit / vector counts, dtypes, errors."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from losslab_jax.schedules._core import TABLE_SIZE

from tests.schedules._torch_ref import eager, torch_lrs  # noqa: E402

S = ll.schedules




# --- hand-checked values ----------------------------------------------------------------------


@pytest.mark.parametrize("schedule,expected", [
    (S.step_lr(1.0, step_size=3, gamma=0.5), [1, 1, 1, .5, .5, .5, .25]),
    (S.multistep_lr(1.0, [2, 5, 5], gamma=0.5), [1, 1, .5, .5, .5, .125, .125]),
    (S.multistep_lr(1.0, [0, 3], gamma=0.5), [.5, .5, .5, .25, .25]),
    (S.exponential_lr(2.0, gamma=0.5), [2, 1, .5, .25]),
    (S.constant_lr(1.0, factor=0.25, total_iters=2), [.25, .25, 1, 1]),
    (S.constant_lr(1.0, factor=0.25, total_iters=0), [.25, .25, .25]),  # torch's chainable quirk
    (S.linear_lr(1.0, start_factor=0.25, end_factor=1.0, total_iters=3), [.25, .5, .75, 1, 1]),
    (S.linear_lr(1.0, start_factor=1.0, end_factor=0.0, total_iters=2), [1, .5, 0, 0]),
    (S.polynomial_lr(1.0, total_iters=2, power=2.0), [1, .25, 0, 0]),
    (S.polynomial_lr(1.0, total_iters=0), [1, 1, 1]),
], ids=["step", "multistep-dup", "multistep-0", "exponential", "constant", "constant-T0", "linear",
        "linear-down", "polynomial", "polynomial-T0"])
def test_hand_checked_values(schedule, expected):
  np.testing.assert_allclose(eager(schedule, len(expected) - 1), expected, rtol=1e-15, atol=1e-300)


# --- torch's numbers, bit for bit ---------------------------------------------------------------

TWINS = [
    ("step", lambda: S.step_lr(0.1, 2, 0.7), lambda o, L: L.StepLR(o, 2, 0.7)),
    ("multistep", lambda: S.multistep_lr(0.1, [3, 1, 3, 8], 0.3), lambda o, L: L.MultiStepLR(o, [3, 1, 3, 8], 0.3)),
    ("exponential", lambda: S.exponential_lr(0.1, 0.93), lambda o, L: L.ExponentialLR(o, 0.93)),
    ("constant", lambda: S.constant_lr(0.1, 0.3, 4), lambda o, L: L.ConstantLR(o, 0.3, 4)),
    ("linear", lambda: S.linear_lr(0.1, 0.07, 0.9, 13), lambda o, L: L.LinearLR(o, 0.07, 0.9, 13)),
    ("polynomial", lambda: S.polynomial_lr(0.1, 11, 1.7), lambda o, L: L.PolynomialLR(o, 11, 1.7)),
]


@pytest.mark.parametrize("name,ours,theirs", TWINS, ids=[t[0] for t in TWINS])
def test_eager_values_are_torch_bitwise(name, ours, theirs):
  assert eager(ours(), 60) == torch_lrs(theirs, 60)


def test_exponential_past_the_table_stays_within_1e13():
  ours = S.exponential_lr(0.1, 0.999)
  want = torch_lrs(lambda o, L: L.ExponentialLR(o, 0.999), TABLE_SIZE + 200)
  got = np.asarray(jax.jit(ours)(jnp.arange(TABLE_SIZE + 201)))
  np.testing.assert_array_equal(got[:TABLE_SIZE], want[:TABLE_SIZE])
  np.testing.assert_allclose(got, want, rtol=1e-13)


def test_step_past_the_table_continues_the_product():
  ours = S.step_lr(1.0, step_size=1, gamma=0.9999)
  k = np.array([TABLE_SIZE - 1, TABLE_SIZE, TABLE_SIZE + 1000])
  v, x = 1.0, []
  for n in range(int(k.max()) + 1):
    if n in k:
      x.append(v)
    v *= 0.9999
  np.testing.assert_allclose(np.asarray(ours(k)), x, rtol=1e-13)


def test_long_linear_warmup_uses_the_closed_form_past_the_table():
  T = 3 * TABLE_SIZE
  ours = S.linear_lr(1.0, start_factor=0.1, end_factor=1.0, total_iters=T)
  k = np.array([0, TABLE_SIZE + 5, T, T + 10])
  np.testing.assert_allclose(np.asarray(ours(k)), 0.1 + 0.9 * np.minimum(k, T) / T, rtol=1e-12)


# --- jit, vector counts, dtypes -----------------------------------------------------------------

ALL = [t[1] for t in TWINS]


@pytest.mark.parametrize("make", ALL, ids=[t[0] for t in TWINS])
def test_jit_vector_and_eager_agree(make):
  s = make()
  k = np.arange(40)
  e = np.array(eager(s, 39))
  np.testing.assert_allclose(np.asarray(jax.jit(s)(jnp.asarray(k, jnp.int32))), e, rtol=1e-15)
  np.testing.assert_allclose(np.asarray(s(k.reshape(4, 10))).ravel(), e, rtol=1e-15)


@pytest.mark.parametrize("make", ALL, ids=[t[0] for t in TWINS])
def test_jit_does_not_retrace_on_new_counts(make):
  traces = []

  @jax.jit
  def f(k):
    traces.append(1)
    return make()(k)

  for k in range(5):
    f(jnp.asarray(k, jnp.int32))
  assert len(traces) == 1


@pytest.mark.parametrize("make", ALL, ids=[t[0] for t in TWINS])
def test_dtypes(make):
  assert make()(3).dtype == jnp.float64  # Python lr under x64
  with jax.enable_x64(False):
    assert make()(jnp.asarray(3, jnp.int32)).dtype == jnp.float32


def test_float32_lr_gives_float32():
  s = S.exponential_lr(np.float32(0.1), 0.9)
  assert s(5).dtype == jnp.float32
  np.testing.assert_allclose(float(s(5)), 0.1 * 0.9**5, rtol=1e-7)   # float32: ~1 ulp (measured 1.5e-8)


@pytest.mark.parametrize("make", ALL, ids=[t[0] for t in TWINS])
def test_strict_dtype_promotion(make):
  with jax.numpy_dtype_promotion("strict"):
    make()(jnp.arange(TABLE_SIZE + 3))


def test_float_count_is_rejected():
  with pytest.raises(TypeError, match=re.escape("step_lr: expected an integer count")):
    S.step_lr(0.1, 2)(1.0)


def test_milestones_beyond_int32_are_never_reached():
  s = S.multistep_lr(1.0, [2, 2**40], gamma=0.5)
  with jax.enable_x64(False):
    assert float(s(jnp.asarray(2**31 - 1, jnp.int32))) == 0.5


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,message", [
    (lambda: S.step_lr(0.1, 0), "step_lr: expected `step_size` to be a positive integer, got 0"),
    (lambda: S.step_lr(0.1, 2.0), "step_lr: expected `step_size` to be a positive integer, got 2.0"),
    (lambda: S.multistep_lr(0.1, [1, -2]), "multistep_lr: expected `milestones[i]` to be an integer >= 0"),
    (lambda: S.multistep_lr(0.1, 3), "multistep_lr: expected `milestones` to be a sequence"),
    (lambda: S.constant_lr(0.1, factor=1.5), "constant_lr: expected `factor` between 0 and 1"),
    (lambda: S.constant_lr(0.1, total_iters=-1), "constant_lr: expected `total_iters` to be an integer >= 0"),
    (lambda: S.linear_lr(0.1, start_factor=0.0), "linear_lr: expected `start_factor` greater than 0"),
    (lambda: S.linear_lr(0.1, end_factor=1.5), "linear_lr: expected `end_factor` between 0 and 1"),
    (lambda: S.polynomial_lr(0.1, power=-1.0), "polynomial_lr: expected `power` >= 0"),
    (lambda: S.exponential_lr("0.1", 0.9), "exponential_lr: expected `lr` to be a real number"),
], ids=["step0", "step-float", "milestone-neg", "milestones-int", "factor", "iters", "start", "end", "power",
        "lr-str"])
def test_bad_arguments(call, message):
  with pytest.raises((ValueError, TypeError), match=re.escape(message)):
    call()


def test_constant_factor_zero_raises_where_torch_divides_by_zero():
  s = S.constant_lr(0.1, factor=0.0, total_iters=3)
  assert float(s(2)) == 0.0
  with pytest.raises(ValueError, match="constant_lr: factor=0 divides by zero"):
    s(3)
  assert math.isnan(float(jax.jit(s)(jnp.asarray(3))))

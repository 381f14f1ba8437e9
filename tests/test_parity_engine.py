"""The comparator must be able to fail: wrong values, wrong gradients and wrong dtypes are caught."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402

from parity._case import Config, FunctionCase, TrajectoryCase  # noqa: E402
from parity._compare import array_error, run_config  # noqa: E402


def _inputs(rng, dtype):
  return (rng.standard_normal((4, 3)).astype(dtype),)


def _case(jax_fn):
  return FunctionCase("t", "test", jax_fn, lambda x: (x ** 2).sum(), _inputs, [Config("a")])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_function_passes(dtype):
  assert run_config(_case(lambda x: jnp.sum(x ** 2)), Config("a"), dtype).passed


def test_wrong_value_fails():
  res = run_config(_case(lambda x: jnp.sum(x ** 2) * (1 + 1e-8)), Config("a"), "float64")
  assert not res.passed and res.value.rel > 1e-9


def test_wrong_gradient_fails():
  # value right, gradient wrong: custom rule scales the gradient
  import jax

  @jax.custom_vjp
  def f(x):
    return jnp.sum(x ** 2)

  f.defvjp(lambda x: (f(x), x), lambda x, g: (2.001 * x * g,))
  res = run_config(_case(f), Config("a"), "float64")
  assert not res.passed and res.value.rel < 1e-14 and res.grad.rel > 1e-4


def test_dtype_mismatch_fails():
  res = run_config(_case(lambda x: jnp.sum(x ** 2).astype(jnp.float32)), Config("a"), "float64")
  assert not res.passed and "dtype" in res.message


def test_gradient_dtype_mismatch_fails():
  # value and its dtype right, gradient values right but returned in float32 for a float64 input
  import jax

  @jax.custom_vjp
  def f(x):
    return jnp.sum(x ** 2)

  f.defvjp(lambda x: (f(x), x), lambda x, g: ((2 * x * g).astype(jnp.float32),))
  res = run_config(_case(f), Config("a"), "float64")
  assert not res.passed and res.value.rel < 1e-14
  assert res.message == "gradient dtype mismatch for input 0: losslab_jax float32 vs torch float64"


def test_trajectory_dtype_mismatch_fails():
  traj = [{"w": np.full(3, float(k))} for k in range(4)]
  bad = [dict(t) for t in traj]
  bad[2] = {"w": traj[2]["w"].astype(np.float32)}   # exact values, wrong dtype at step 2
  case = TrajectoryCase("tt", "test", lambda seed, dtype: bad, lambda seed, dtype: traj, [Config("a")])
  res = run_config(case, Config("a"), "float64")
  assert not res.passed and res.message == "dtype mismatch at step 2, leaf 0: losslab_jax float32 vs torch float64"
  good = TrajectoryCase("tt", "test", lambda seed, dtype: traj, lambda seed, dtype: traj, [Config("a")])
  assert run_config(good, Config("a"), "float64").passed


def test_exception_becomes_failure():
  def boom(x):
    raise RuntimeError("boom")

  res = run_config(_case(boom), Config("a"), "float32")
  assert not res.passed and "boom" in res.message


def test_nan_matches_nan_only():
  assert array_error([np.nan, 1.0], [np.nan, 1.0]).rel == 0
  assert array_error([np.nan, 1.0], [0.0, 1.0]).rel == np.inf
  assert array_error([np.inf], [-np.inf]).rel == np.inf


def test_trajectory_detects_a_late_divergence():
  traj = [{"w": np.full(3, float(k))} for k in range(10)]
  bad = [dict(t) for t in traj]
  bad[7] = {"w": traj[7]["w"] + 1e-6}
  case = TrajectoryCase("tt", "test", lambda seed, dtype: bad, lambda seed, dtype: traj, [Config("a")])
  res = run_config(case, Config("a"), "float64")
  assert not res.passed and "step 7" in res.message

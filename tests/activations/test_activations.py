"""relu, sigmoid, tanh, softmax, log_softmax: torch-equal values and gradients, at +-1e4 too.

Random-input parity lives in ``parity/cases/activations.py``; here: the extreme logits, the
``axis`` argument, relu's kink, tanh's accuracy, and that forward mode and Hessians work through
the custom JVP rules.
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

A = ll.activations

EXTREME = np.array([[1e4, -1e4, 0.0, 3.0], [1e4, 1e4, -1e4, -2.0], [-1e4, -1e4, -1e4, -1e4]])


def _vjp_pair(jax_fn, torch_fn, x, seed=0):
  """(jax value, jax vjp, torch value, torch grad) for the same random cotangent."""
  out, vjp = jax.vjp(jax_fn, jnp.asarray(x))
  cot = rng(seed).standard_normal(out.shape)
  xt = torch.tensor(x, requires_grad=True)
  ref = torch_fn(xt)
  ref.backward(torch.tensor(cot))
  return out, vjp(jnp.asarray(cot))[0], ref.detach().numpy(), xt.grad.numpy()


# (ours, torch's function name): the name is looked up inside the test, so collection needs no torch
ELEMENTWISE = [(A.relu, "relu"), (A.sigmoid, "sigmoid"), (A.tanh, "tanh")]


@pytest.mark.parametrize("fns", ELEMENTWISE, ids=lambda f: f[0].__name__)
def test_elementwise_match_torch_at_extremes(fns):
  out, g, ref, gref = _vjp_pair(fns[0], getattr(torch, fns[1]), EXTREME)
  assert_close(out, ref, atol=1e-300)
  assert_close(g, gref, atol=1e-300)
  assert np.isfinite(np.asarray(g)).all()


def test_relu_gradient_at_zero_is_zero():
  g = jax.grad(lambda x: jnp.sum(A.relu(x)))(jnp.array([-1.0, 0.0, 2.0]))
  assert np.asarray(g).tolist() == [0.0, 0.0, 1.0]


def test_sigmoid_saturates_exactly():
  assert np.asarray(A.sigmoid(jnp.array([1e4, -1e4], jnp.float32))).tolist() == [1.0, 0.0]


def test_tanh_is_accurate_in_float32():
  x = np.concatenate([np.linspace(-12, 12, 20001), np.geomspace(1e-30, 0.7, 2001)]).astype(np.float32)
  exact = np.tanh(x.astype(np.float64))
  got = np.asarray(A.tanh(jnp.asarray(x)), np.float64)
  ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
  assert (np.abs(got - exact) / ulp).max() <= 1.5  # XLA's own float32 tanh is off by up to ~4.4 ulp
  assert A.tanh(jnp.asarray(x)).dtype == jnp.float32


def test_tanh_is_accurate_in_float64():
  x = np.concatenate([np.linspace(-25, 25, 20001), np.geomspace(1e-300, 0.7, 2001)])
  exact = np.tanh(x)  # libm, within 1 ulp
  got = np.asarray(A.tanh(jnp.asarray(x)))
  assert (np.abs(got - exact) / np.spacing(np.abs(exact))).max() <= 2.0


def test_tanh_special_values():
  x = jnp.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30], jnp.float64)
  out = np.asarray(A.tanh(x))
  assert out[:4].tolist() == [0.0, 0.0, 1.0, -1.0] and np.signbit(out[1]) and np.isnan(out[4])
  assert out[5] == 1e-30
  assert A.tanh(jnp.ones(2, jnp.bfloat16)).dtype == jnp.bfloat16


AXIS_FNS = [(A.softmax, "softmax"), (A.log_softmax, "log_softmax")]


@pytest.mark.parametrize("fns", AXIS_FNS, ids=lambda f: f[0].__name__)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_family_extremes_along_each_axis(fns, axis):
  out, g, ref, gref = _vjp_pair(lambda x: fns[0](x, axis=axis), lambda x: getattr(torch, fns[1])(x, dim=axis), EXTREME)
  assert np.isfinite(np.asarray(out)).all() and np.isfinite(np.asarray(g)).all()
  assert_close(out, ref, atol=1e-300)
  assert_close(g, gref, atol=1e-300)


@pytest.mark.parametrize("fns", AXIS_FNS, ids=lambda f: f[0].__name__)
@pytest.mark.parametrize("axis", [0, 1, 2, -2])
def test_softmax_family_axis_on_3d(fns, axis):
  x = rng(1).standard_normal((3, 4, 5)) * 3
  out, g, ref, gref = _vjp_pair(lambda a: fns[0](a, axis=axis), lambda a: getattr(torch, fns[1])(a, dim=axis), x)
  assert_close(out, ref, rtol=1e-12)
  assert_close(g, gref, rtol=1e-12, atol=1e-15)


def test_softmax_sums_to_one_and_ties_split_evenly():
  out = np.asarray(A.softmax(jnp.asarray(EXTREME)))
  assert_close(out.sum(-1), [1.0, 1.0, 1.0])
  assert_close(out[1], [0.5, 0.5, 0.0, 0.0])
  assert_close(out[2], [0.25] * 4)


def test_softmax_vjp_is_torchs_formula_exactly():
  # torch: y * (g - sum(g * y)); jax.nn.softmax's VJP rounds as y*g - y*sum(y*g)
  x = np.asarray(rng(2).standard_normal((4, 6)) * 4, np.float32)
  g = np.asarray(rng(3).standard_normal((4, 6)), np.float32)
  y, vjp = jax.vjp(A.softmax, jnp.asarray(x))
  y = np.asarray(y)
  expected = y * (g - (g * y).sum(-1, keepdims=True))
  np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("fn", [A.tanh, A.softmax, A.log_softmax], ids=lambda f: f.__name__)
def test_forward_mode_and_hessian(fn):
  x = jnp.asarray(rng(4).standard_normal(5))
  v = jnp.asarray(rng(5).standard_normal(5))
  _, jvp = jax.jvp(fn, (x,), (v,))
  fwd = jax.jacfwd(fn)(x) @ v
  rev = jax.jacrev(fn)(x) @ v
  assert_close(jvp, fwd, rtol=1e-12, atol=1e-15)
  assert_close(jvp, rev, rtol=1e-12, atol=1e-15)
  h = jax.hessian(lambda a: jnp.sum(fn(a) ** 2))(x)
  assert np.isfinite(np.asarray(h)).all()
  assert_close(h, np.asarray(h).T, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("fn", [A.sigmoid, A.tanh, A.softmax, A.log_softmax, A.relu], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64"])
def test_dtype_preserved(fn, dtype):
  x = jnp.asarray(EXTREME).astype(dtype)
  assert fn(x).dtype == jnp.dtype(dtype)
  assert np.isfinite(np.asarray(fn(x), np.float64)).all()


@pytest.mark.parametrize("fn", [A.relu, A.sigmoid, A.tanh, A.softmax, A.log_softmax], ids=lambda f: f.__name__)
def test_jitted_value_and_gradient_equal_eager(fn):
  """parity compares the jitted activations with torch; this ties them to the eager call (float64)."""
  x = jnp.asarray(np.concatenate([rng(3).standard_normal((4, 4)) * 4, EXTREME]))  # +-1e4 rows too
  cot = jnp.asarray(rng(4).standard_normal(x.shape))

  def value_and_vjp(v):
    out, vjp = jax.vjp(fn, v)
    return out, vjp(cot)[0]

  eager = value_and_vjp(x)
  jitted = jax.jit(value_and_vjp)(x)
  for e, j in zip(eager, jitted):
    np.testing.assert_allclose(np.asarray(j), np.asarray(e), rtol=1e-12, atol=1e-14)

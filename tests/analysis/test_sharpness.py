"""sharpness against numpy.linalg.eigvalsh on quadratics and least squares, and hand math."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losslab_jax import analysis
from tests.helpers import assert_close, rng


def _spd(r, eigenvalues):
  q, _ = np.linalg.qr(r.standard_normal((len(eigenvalues), len(eigenvalues))))
  return q @ np.diag(eigenvalues) @ q.T


def test_quadratic_on_a_pytree_equals_largest_eigenvalue():
  r = rng(0)
  a = _spd(r, [10.0, 5.0, 3.0, 1.0, 0.5, 0.1])
  b = r.standard_normal(6)

  def loss(p):  # the Hessian is `a` in the flattening order (w first, then v)
    z = jnp.concatenate([p["w"], p["v"].ravel()])
    return 0.5 * z @ jnp.asarray(a) @ z + jnp.asarray(b) @ z

  params = {"w": jnp.asarray(r.standard_normal(2)), "v": jnp.asarray(r.standard_normal((2, 2)))}
  res = analysis.sharpness(loss, params, iters=60)
  evals, evecs = np.linalg.eigh(a)
  assert_close(res.max_eigenvalue, evals.max(), rtol=1e-10)
  v = np.concatenate([np.asarray(res.eigenvector["w"]), np.asarray(res.eigenvector["v"]).ravel()])
  assert_close(abs(v @ evecs[:, -1]), 1.0, rtol=1e-10)
  assert float(res.residual) < 1e-8 and res.eigenvalue_history.shape == (60,)


def test_least_squares_with_data_args():
  r = rng(1)
  x, y = r.standard_normal((20, 5)), r.standard_normal(20)
  loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)  # noqa: E731  Hessian 2 X^T X / N
  res = analysis.sharpness(loss, jnp.zeros(5), x, y, iters=200)
  assert_close(res.max_eigenvalue, np.linalg.eigvalsh(2 * x.T @ x / 20).max(), rtol=1e-10)


def test_indefinite_hessian_gives_largest_magnitude_with_sign():
  r = rng(2)
  a = _spd(r, [-8.0, 3.0, 1.0])
  res = analysis.sharpness(lambda w: 0.5 * w @ jnp.asarray(a) @ w, jnp.ones(3), iters=80)
  assert_close(res.max_eigenvalue, -8.0, rtol=1e-10)


def test_non_quadratic_hand_math_and_keys():
  # L = sum(w^4) / 4 has Hessian diag(3 w^2): the top eigenvalue is 3 * max(w^2) = 3 * 4
  w = jnp.array([0.5, -2.0, 1.0])
  loss = lambda w: jnp.sum(w**4) / 4  # noqa: E731
  res = analysis.sharpness(loss, w, iters=60)
  assert_close(res.max_eigenvalue, 12.0, rtol=1e-10)
  other = analysis.sharpness(loss, w, iters=60, key=jax.random.key(5))
  assert_close(other.max_eigenvalue, 12.0, rtol=1e-10)
  assert float(analysis.sharpness(lambda w: jnp.sum(3.0 * w), w, iters=2).max_eigenvalue) == 0.0


def test_jit_without_retrace():
  traces = []

  def loss(w, s):
    traces.append(1)
    return s * jnp.sum(w**2)

  analysis.sharpness(loss, jnp.ones(3), 1.0, iters=5)
  n = len(traces)
  res = analysis.sharpness(loss, jnp.full(3, 2.0, jnp.float64), 3.0, iters=5)
  assert len(traces) == n
  assert_close(res.max_eigenvalue, 6.0, rtol=1e-12)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="sharpness: expected `iters` an int >= 1, got 0"):
    analysis.sharpness(lambda w: jnp.sum(w**2), jnp.ones(2), iters=0)
  with pytest.raises(TypeError, match="floating"):
    analysis.sharpness(lambda w: jnp.sum(w), jnp.ones(2, jnp.int32))

"""RAdam: rectification threshold and eps placement (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close


def _numpy_radam(grads, p, lr, b1, b2, eps, wd):
  """torch's _single_tensor_radam (L2 decay), transcribed."""
  m = v = np.zeros_like(p)
  rho_inf = 2 / (1 - b2) - 1
  for t, g in enumerate(grads, start=1):
    g = g + wd * p
    m = m + (1 - b1) * (g - m)
    v = b2 * v + (1 - b2) * g * g
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    m_hat = m / bc1
    rho_t = rho_inf - 2 * t * b2 ** t / bc2
    if rho_t > 5.0:
      rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
      p = p - m_hat * lr * (bc2 ** 0.5 / (np.sqrt(v) + eps)) * rect
    else:
      p = p - m_hat * lr
  return p


@pytest.mark.parametrize("eps", [1e-8, 0.1])
def test_matches_a_numpy_transcription_of_torch(eps):
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) for _ in range(9)]
  p0 = rng.standard_normal(4)
  tx = ll.optim.radam(lr=0.05, eps=eps, weight_decay=0.1)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  assert_close(q, _numpy_radam(grads, p0, 0.05, 0.9, 0.999, eps, 0.1), rtol=1e-12)


def test_rectification_starts_at_step_6_for_beta2_0_999():
  # rho_t = 1, 2, 3, 4, 4.996, 5.994: steps 1..5 are m_hat steps, step 6 is rectified.
  g = jnp.asarray([1.0], jnp.float64)
  tx = ll.optim.scale_by_radam()
  s = tx.init(g)
  for t in range(1, 7):
    d, s = tx.update(g, s)
    if t <= 5:
      assert_close(d, [1.0], rtol=1e-14)   # constant g: m_hat = g
    else:
      assert abs(float(d[0]) - 1.0) > 1e-3

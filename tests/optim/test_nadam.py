"""NAdam: the μ_t schedule and ``mu_product`` (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

def test_mu_product_is_float32_also_for_float64_params():
  state = ll.optim.scale_by_nadam().init({"w": jnp.zeros(3, jnp.float64)})
  # torch keeps mu_product in its default dtype (float32), also for float64 params
  assert state.mu_product.dtype == jnp.float32 and float(state.mu_product) == 1.0
  assert state.exp_avg["w"].dtype == state.exp_avg_sq["w"].dtype == jnp.float64


def _mu(b1, t, psi):
  return b1 * (1.0 - 0.5 * 0.96 ** (t * psi))


def test_mu_product_is_the_float32_product_of_mu_t():
  g = jnp.asarray([1.0, -2.0], jnp.float64)
  tx = ll.optim.scale_by_nadam(momentum_decay=0.05)
  s = tx.init(g)
  expected = np.float32(1.0)
  for t in range(1, 4):
    _, s = tx.update(g, s)
    expected = np.float32(expected * np.float32(_mu(0.9, t, 0.05)))
    assert float(s.mu_product) == float(expected)


def test_matches_a_numpy_transcription_of_torch():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) * s for s in (1.0, 5.0, 0.1, 0.2, 1.0)]
  p = p0 = rng.standard_normal(4)
  lr, b1, b2, eps, wd, psi = 0.05, 0.8, 0.9, 1e-3, 0.1, 0.02
  m = v = np.zeros(4)
  mu_product = np.float32(1.0)
  for t, g in enumerate(grads, start=1):
    p = p * (1 - lr * wd)                              # decoupled_weight_decay=True
    mu, mu_next = _mu(b1, t, psi), _mu(b1, t + 1, psi)
    mu_product = np.float32(mu_product * np.float32(mu))
    m = m + (1 - b1) * (g - m)
    v = b2 * v + (1 - b2) * g * g
    denom = np.sqrt(v / (1 - b2 ** t)) + eps
    p = p - lr * (1 - mu) / (1 - float(mu_product)) * g / denom
    p = p - lr * mu_next / (1 - float(mu_product) * mu_next) * m / denom
  tx = ll.optim.nadam(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, momentum_decay=psi,
                      decoupled_weight_decay=True)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  assert_close(q, p, rtol=1e-12)


def test_differs_from_optax_nadam_constant_mu():
  g = jnp.asarray([1.0, -0.5], jnp.float64)
  ours, theirs = ll.optim.nadam(lr=0.1), optax.nadam(0.1)
  u1, _ = ours.update(g, ours.init(g), g)
  u2, _ = theirs.update(g, theirs.init(g), g)
  assert np.max(np.abs(np.asarray(u1) - np.asarray(u2))) > 1e-3

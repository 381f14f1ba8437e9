"""Adadelta: default lr=1.0 descends, and hand math (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close


def test_default_lr_descends_unlike_optax_default():
  # first step: delta = sqrt(eps) / sqrt(0.1 g^2 + eps) * g; torch's lr=1.0 subtracts it.
  g = jnp.asarray([0.1], jnp.float64)
  tx = ll.optim.adadelta()
  u, _ = tx.update(g, tx.init(g), g)
  expected = -np.sqrt(1e-6) / np.sqrt(0.1 * 0.01 + 1e-6) * 0.1
  assert_close(u, [expected], rtol=1e-13)
  uo, _ = optax.adadelta().update(g, optax.adadelta().init(g), g)   # learning_rate=None: no sign flip
  assert float(uo[0]) > 0 > float(u[0])


def test_matches_a_numpy_transcription_of_torch():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) for _ in range(6)]
  p = p0 = rng.standard_normal(4)
  lr, rho, eps, wd = 0.5, 0.8, 1e-3, 0.1
  v = u = np.zeros(4)
  for g in grads:
    g = g + wd * p
    v = rho * v + (1 - rho) * g * g
    delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
    u = rho * u + (1 - rho) * delta * delta
    p = p - lr * delta
  tx = ll.optim.adadelta(lr=lr, rho=rho, eps=eps, weight_decay=wd)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  assert_close(q, p, rtol=1e-13)

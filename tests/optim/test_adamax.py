"""Adamax: a numpy transcription of torch (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close


def test_defaults_are_torch_defaults():
  # lr 2e-3: first step = lr * g / (|g| + eps)  (m1 / bc1 = g, u1 = |g| + eps)
  g = jnp.asarray([3.0, -0.5], jnp.float64)
  tx = ll.optim.adamax()
  u, _ = tx.update(g, tx.init(g), g)
  assert_close(u, -2e-3 * np.asarray(g) / (np.abs(np.asarray(g)) + 1e-8), rtol=1e-13)


def test_matches_a_numpy_transcription_of_torch():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) * s for s in (1.0, 5.0, 0.1, 0.2, 1.0)]
  p = p0 = rng.standard_normal(4)
  lr, b1, b2, eps, wd = 0.05, 0.8, 0.9, 1e-2, 0.1
  m = u = np.zeros(4)
  for t, g in enumerate(grads, start=1):
    g = g + wd * p
    m = m + (1 - b1) * (g - m)
    u = np.maximum(b2 * u, np.abs(g) + eps)
    p = p - lr / (1 - b1 ** t) * m / u
  tx = ll.optim.adamax(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  assert_close(q, p, rtol=1e-13)

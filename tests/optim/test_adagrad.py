"""Adagrad: lr_decay, eps outside the square root (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

def test_initial_accumulator_value_fills_the_sum():
  state = ll.optim.scale_by_adagrad(initial_accumulator_value=0.25).init({"w": jnp.zeros(3, jnp.float32)})
  assert_close(state.sum["w"], [0.25, 0.25, 0.25], rtol=0.0)


def test_matches_a_numpy_transcription_of_torch():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) for _ in range(6)]
  p = p0 = rng.standard_normal(4)
  lr, lr_decay, wd, init, eps = 0.1, 0.3, 0.1, 0.2, 1e-3
  acc = np.full(4, init)
  for t, g in enumerate(grads, start=1):
    g = g + wd * p
    clr = lr / (1 + (t - 1) * lr_decay)
    acc = acc + g * g
    p = p - clr * g / (np.sqrt(acc) + eps)
  tx = ll.optim.adagrad(lr=lr, lr_decay=lr_decay, weight_decay=wd, initial_accumulator_value=init, eps=eps)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  assert_close(q, p, rtol=1e-13)


def test_zero_eps_and_zero_accumulator_give_nan_like_torch():
  # torch: 0 / (sqrt(0) + 0) = NaN; optax's scale_by_rss returns 0 there.
  g = jnp.asarray([0.0, 1.0], jnp.float64)
  tx = ll.optim.adagrad(eps=0.0)
  u, _ = tx.update(g, tx.init(g), g)
  assert np.isnan(float(u[0])) and float(u[1]) == -0.01

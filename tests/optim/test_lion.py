"""Lion: lion-pytorch's checks and defaults, state layout, decoupled decay by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

def test_beta_one_is_allowed_as_in_lion_pytorch():
  ll.optim.lion(betas=(1.0, 1.0))


def test_default_weight_decay_is_zero_and_first_step_is_minus_lr_sign():
  g = jnp.asarray([3.0, -0.2, 0.0], jnp.float64)
  p = jnp.asarray([1.0, 2.0, 3.0], jnp.float64)
  tx = ll.optim.lion()
  u, _ = tx.update(g, tx.init(p), p)
  assert_close(u, [-1e-4, 1e-4, 0.0], rtol=1e-15)


def test_matches_a_numpy_transcription_of_lion_pytorch():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) for _ in range(6)]
  p = p0 = rng.standard_normal(4)
  lr, b1, b2, wd = 0.01, 0.8, 0.95, 0.3
  m = np.zeros(4)
  for g in grads:
    p = p * (1 - lr * wd)
    p = p - lr * np.sign(b1 * m + (1 - b1) * g)
    m = b2 * m + (1 - b2) * g
  tx = ll.optim.lion(lr=lr, betas=(b1, b2), weight_decay=wd)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  assert_close(q, p, rtol=1e-13)

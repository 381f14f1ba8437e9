"""Adamax: torch's validation messages, state layout, and a numpy transcription of torch."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

BAD = [
    ({"lr": -0.1}, "Invalid learning rate: -0.1"),
    ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ({"betas": (-0.1, 0.999)}, "Invalid beta parameter at index 0: -0.1"),
    ({"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
    ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[m for _, m in BAD])
def test_invalid_hyperparameters_use_torch_wording(kwargs, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    ll.optim.adamax(**kwargs)



def test_state_fields_and_dtypes():
  state = ll.optim.scale_by_adamax().init({"w": jnp.zeros(3, jnp.float32)})
  assert isinstance(state, ll.optim.AdamaxState)
  assert state._fields == ("step", "exp_avg", "exp_inf")
  assert state.step.dtype == jnp.int32
  assert state.exp_avg["w"].dtype == state.exp_inf["w"].dtype == jnp.float32


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

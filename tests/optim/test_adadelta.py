"""Adadelta: torch's validation messages, state layout, default lr=1.0 descends."""

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
    ({"rho": 1.5}, "Invalid rho value: 1.5"),
    ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[m for _, m in BAD])
def test_invalid_hyperparameters_use_torch_wording(kwargs, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    ll.optim.adadelta(**kwargs)



def test_state_fields_and_dtypes():
  state = ll.optim.scale_by_adadelta().init({"w": jnp.zeros(3, jnp.float32)})
  assert isinstance(state, ll.optim.AdadeltaState)
  assert state._fields == ("step", "square_avg", "acc_delta")
  assert state.step.dtype == jnp.int32
  assert state.square_avg["w"].dtype == state.acc_delta["w"].dtype == jnp.float32


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

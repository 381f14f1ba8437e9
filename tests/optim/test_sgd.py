"""SGD: dampening / Nesterov semantics by hand (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close


def _numpy_sgd(grads, p, lr, mu, tau, wd, nesterov):
  """torch's _single_tensor_sgd, transcribed."""
  buf = None
  for g in grads:
    g = g + wd * p
    buf = g.copy() if buf is None else mu * buf + (1 - tau) * g
    d = g + mu * buf if nesterov else buf
    p = p - lr * d
  return p


@pytest.mark.parametrize("kw", [
    {"momentum": 0.9, "dampening": 0.5},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    {"momentum": 0.0, "weight_decay": 0.1},
], ids=["dampening", "nesterov-wd", "plain-wd"])
def test_matches_a_numpy_transcription_of_torch(kw):
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) for _ in range(5)]
  p0 = rng.standard_normal(4)
  tx = ll.optim.sgd(lr=0.1, **kw)
  p, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    u, s = tx.update(jnp.asarray(g), s, p)
    p = optax.apply_updates(p, u)
  expected = _numpy_sgd(grads, p0, 0.1, kw["momentum"], kw.get("dampening", 0.0), kw.get("weight_decay", 0.0),
                        kw.get("nesterov", False))
  assert_close(p, expected, rtol=1e-13)


def test_first_dampened_step_is_the_plain_gradient():
  # torch: buf = g.clone() at the first step, not (1 - dampening) * g.
  g = jnp.asarray([2.0, -4.0], jnp.float64)
  tx = ll.optim.sgd(lr=0.5, momentum=0.9, dampening=0.5)
  u, s = tx.update(g, tx.init(g), g)
  assert_close(u, [-1.0, 2.0], rtol=0.0)
  # second step: buf = 0.9 * g + 0.5 * g = 1.4 g
  u, _ = tx.update(g, s, g)
  assert_close(u, -0.5 * 1.4 * np.asarray(g), rtol=1e-15)


def test_dampening_is_what_optax_trace_lacks():
  g = jnp.asarray([1.0], jnp.float64)
  ours, theirs = ll.optim.sgd(lr=1.0, momentum=0.9, dampening=0.5), optax.sgd(1.0, momentum=0.9)
  s1, s2 = ours.init(g), theirs.init(g)
  for _ in range(3):
    u1, s1 = ours.update(g, s1, g)
    u2, s2 = theirs.update(g, s2, g)
  # buffers: ours 1, 1.4, 1.76; optax 1, 1.9, 2.71
  assert_close(u1, [-1.76], rtol=1e-15)
  assert_close(u2, [-2.71], rtol=1e-15)


def test_momentum_schedule_is_read_at_each_count():
  g = jnp.asarray([1.0], jnp.float64)
  tx = ll.optim.sgd(lr=1.0, momentum=lambda k: jnp.where(k == 1, 0.5, 0.9))
  s = tx.init(g)
  bufs = []
  for _ in range(3):
    u, s = tx.update(g, s, g)
    bufs.append(-float(u[0]))
  assert_close(bufs, [1.0, 1.5, 2.35], rtol=1e-15)   # b1 = g; b2 = 0.5 b1 + g; b3 = 0.9 b2 + g

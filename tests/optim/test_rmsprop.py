"""RMSprop: eps placement, lr applied to the buffer (checks and state layout: test_hyperparameters.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close


def test_first_step_by_hand():
  # v1 = 0.01 g^2: step = lr * g / (0.1 |g| + eps), eps outside the square root.
  g = jnp.asarray([2.0, -1e-7], jnp.float64)
  tx = ll.optim.rmsprop(lr=0.01, eps=1e-6)
  u, _ = tx.update(g, tx.init(g), g)
  gn = np.asarray(g)
  assert_close(u, -0.01 * gn / (0.1 * np.abs(gn) + 1e-6), rtol=1e-13)


def _numpy_rmsprop(grads, p, lrs, alpha, eps, wd, mu, centered):
  """torch's _single_tensor_rmsprop, transcribed, with the lr of each step."""
  v = ga = b = np.zeros_like(p)
  for g, lr in zip(grads, lrs):
    g = g + wd * p
    v = alpha * v + (1 - alpha) * g * g
    if centered:
      ga = ga + (1 - alpha) * (g - ga)
      avg = np.sqrt(v - ga * ga) + eps
    else:
      avg = np.sqrt(v) + eps
    if mu > 0:
      b = mu * b + g / avg
      p = p - lr * b
    else:
      p = p - lr * g / avg
  return p


@pytest.mark.parametrize("centered", [False, True])
def test_decaying_lr_multiplies_the_whole_buffer_as_in_torch(centered):
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(4) for _ in range(6)]
  p0 = rng.standard_normal(4)
  sched = lambda k: 0.1 * 0.5 ** k  # noqa: E731
  tx = ll.optim.rmsprop(lr=sched, momentum=0.9, centered=centered, weight_decay=0.1)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    upd, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, upd)
  expected = _numpy_rmsprop(grads, p0, [sched(k) for k in range(6)], 0.99, 1e-8, 0.1, 0.9, centered)
  assert_close(q, expected, rtol=1e-12)
  # optax applies the lr as each gradient enters the buffer: a different trajectory.
  otx = optax.chain(optax.add_decayed_weights(0.1),
                    optax.rmsprop(sched, decay=0.99, eps=1e-8, eps_in_sqrt=False, centered=centered,
                                  momentum=0.9))
  r, so = jnp.asarray(p0), otx.init(jnp.asarray(p0))
  for g in grads:
    upd, so = otx.update(jnp.asarray(g), so, r)
    r = optax.apply_updates(r, upd)
  assert np.max(np.abs(np.asarray(r) - expected)) > 1e-2

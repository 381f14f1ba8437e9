"""Adam / AdamW: hand-math steps (checks and state layout: test_hyperparameters.py; torch parity of
whole trajectories is in parity/cases/optim.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

def test_schedules_skip_the_range_checks():
  ll.optim.adam(lr=lambda k: 0.1, betas=(lambda k: 0.9, 0.999))


def test_first_step_is_lr_times_sign_by_hand():
  # m1 = 0.1 g, v1 = 0.001 g^2, bc1 = 0.1, bc2 = 0.001: step = lr * g / (|g| + eps).
  g = jnp.asarray([0.5, -2.0, 1e-3], jnp.float64)
  p = jnp.zeros(3, jnp.float64)
  tx = ll.optim.adam(lr=0.1)
  u, _ = tx.update(g, tx.init(p), p)
  assert_close(u, -0.1 * np.asarray(g) / (np.abs(np.asarray(g)) + 1e-8), rtol=1e-12)


def _torch_adam_numpy(grads, p, lr, b1, b2, eps, wd, amsgrad, decoupled):
  """An independent numpy transcription of torch's _single_tensor_adam."""
  m = np.zeros_like(p); v = np.zeros_like(p); vmax = np.zeros_like(p)
  for t, g in enumerate(grads, start=1):
    if decoupled:
      p = p * (1 - lr * wd)
    else:
      g = g + wd * p
    m = m + (1 - b1) * (g - m)
    v = b2 * v + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    denom = np.sqrt(vmax if amsgrad else v) / np.sqrt(1 - b2 ** t) + eps
    p = p - lr / (1 - b1 ** t) * m / denom
  return p


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("decoupled", [False, True])
def test_matches_a_numpy_transcription_of_torch(amsgrad, decoupled):
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(5) * s for s in (1.0, 3.0, 0.1, 0.5, 2.0, 0.01)]
  p0 = rng.standard_normal(5)
  kw = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1, amsgrad=amsgrad)
  tx = ll.optim.adam(**kw, decoupled_weight_decay=decoupled)
  p, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    u, s = tx.update(jnp.asarray(g), s, p)
    p = optax.apply_updates(p, u)
  expected = _torch_adam_numpy(grads, p0, 0.05, 0.8, 0.95, 1e-3, 0.1, amsgrad, decoupled)
  assert_close(p, expected, rtol=1e-12)


def test_amsgrad_is_the_max_of_raw_v_not_optax_max_of_bias_corrected_v():
  # A large gradient then small ones: the raw-v maximum (torch) and optax's maximum of v/bc2 differ.
  grads = [np.array([10.0]), np.array([0.1]), np.array([0.1]), np.array([0.1])]
  p0 = np.array([0.0])
  ours, torch_like = jnp.asarray(p0), _torch_adam_numpy(grads, p0, 0.1, 0.9, 0.999, 1e-8, 0.0, True, False)
  tx, s = ll.optim.adam(lr=0.1, amsgrad=True), None
  s = tx.init(ours)
  otx = optax.amsgrad(0.1)
  po, so = jnp.asarray(p0), otx.init(jnp.asarray(p0))
  for g in grads:
    u, s = tx.update(jnp.asarray(g), s, ours)
    ours = optax.apply_updates(ours, u)
    uo, so = otx.update(jnp.asarray(g), so, po)
    po = optax.apply_updates(po, uo)
  assert_close(ours, torch_like, rtol=1e-12)
  assert abs(float(po[0]) - float(ours[0])) > 1e-3


def test_adamw_is_adam_with_decoupled_decay_and_torch_default():
  rng = np.random.default_rng(3)
  p = jnp.asarray(rng.standard_normal(4))
  g = jnp.asarray(rng.standard_normal(4))
  a, b = ll.optim.adamw(lr=0.1), ll.optim.adam(lr=0.1, weight_decay=1e-2, decoupled_weight_decay=True)
  assert_close(a.update(g, a.init(p), p)[0], b.update(g, b.init(p), p)[0], rtol=0.0)


def test_weight_decay_without_params_says_how_to_call():
  tx = ll.optim.adamw()
  p = jnp.zeros(2)
  with pytest.raises(ValueError, match="needs the current parameters"):
    tx.update(p, tx.init(p))

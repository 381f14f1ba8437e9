"""Rprop: torch's semantics (semantics.md §1.10) with torch as the oracle; validation; jit and scan.

The 50-step trajectory parity lives in ``parity/cases/optim_extra.py`` (case ``rprop``).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

from tests._optional import optional_import  # noqa: E402

torch = optional_import("torch")  # imported on first use in a test: no torch skips only those tests


def _run(tx, p0, grads):
  p = jnp.asarray(p0)
  state = tx.init(p)
  out = []
  for g in grads:
    u, state = tx.update(jnp.asarray(g), state, p)
    p = optax.apply_updates(p, u)
    out.append(np.asarray(p))
  return out, state


def _run_torch(p0, grads, **kw):
  p = torch.tensor(p0, requires_grad=True)
  opt = torch.optim.Rprop([p], **kw)
  out = []
  for g in grads:
    p.grad = torch.tensor(g)
    opt.step()
    out.append(p.detach().numpy().copy())
  return out, opt.state[p]


def test_first_update_is_not_stale():
  # semantics.md §1.10: lr=100, g=+1 three times: torch -50, -50, -50 (optax: 0, -100, -50).
  grads = [np.array([1.0])] * 3
  ours, _ = _run(ll.optim.rprop(lr=100.0), np.zeros(1), grads)
  assert_close(np.diff(np.concatenate([[0.0], np.ravel(ours)])), [-50.0, -50.0, -50.0])
  stale, _ = _run(optax.rprop(100.0), np.zeros(1), grads)
  assert float(stale[0][0]) == 0.0  # optax's first update is zero: the bug this port avoids


@pytest.mark.parametrize("kw", [
    {},
    {"lr": 0.3, "etas": (0.3, 1.7), "step_sizes": (0.01, 1.0)},
    {"lr": 5.0, "step_sizes": (1e-6, 1.0)},  # lr above the max step: clamped at the first step
    {"lr": 0.05, "maximize": True},
], ids=["default", "etas-steps", "lr-above-max", "maximize"])
def test_matches_torch_with_sign_flips_and_zero_gradients(kw):
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal(6) for _ in range(12)]
  grads[3][:2] = 0.0  # sign product 0: eta unchanged but clamped, torch's factor 1
  grads[4][0] = 0.0
  ours, state = _run(ll.optim.rprop(**kw), np.ones(6), grads)
  theirs, tstate = _run_torch(np.ones(6), grads, **kw)
  for a, b in zip(ours, theirs):
    assert_close(a, b, rtol=0, atol=0)
  rp = state[1]
  assert_close(rp.prev, tstate["prev"].numpy(), rtol=0)
  assert_close(rp.step_size, tstate["step_size"].numpy(), rtol=0)
  assert int(rp.step) == int(tstate["step"])


def test_nan_gradient_behaves_like_torch():
  # torch.sign(nan) == 0: the element does not move, its step size is kept, and prev becomes NaN.
  grads = [np.array([1.0, 2.0]), np.array([np.nan, 1.0]), np.array([1.0, 1.0]), np.array([-1.0, 1.0])]
  ours, _ = _run(ll.optim.rprop(lr=0.1), np.zeros(2), grads)
  theirs, _ = _run_torch(np.zeros(2), grads, lr=0.1)
  for a, b in zip(ours, theirs):
    np.testing.assert_array_equal(a, b)


def test_lr_schedule_only_initialises_the_step_size():
  # torch reads the group's lr once, when the state is created; later lr changes are ignored.
  grads = [np.array([1.0])] * 3
  ours, _ = _run(ll.optim.rprop(lr=lambda count: 0.1 * (count + 1.0)), np.zeros(1), grads)
  assert_close(np.ravel(ours), [-0.1, -0.22, -0.364], rtol=1e-12)


def test_float32_state_and_update_dtypes():
  params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.ones(3, jnp.bfloat16)}
  tx = ll.optim.rprop()
  state = tx.init(params)
  rp = state[1]
  assert isinstance(rp, ll.optim.RpropState)
  assert rp._fields == ("step", "prev", "step_size")
  assert rp.step.dtype == jnp.int32
  assert rp.step_size["b"].dtype == jnp.bfloat16 and rp.step_size["w"].dtype == jnp.float32
  u, state2 = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  assert u["b"].dtype == jnp.bfloat16 and u["w"].dtype == jnp.float32
  same = jax.tree.map(lambda a, b: (a.shape, a.dtype) == (b.shape, b.dtype), state, state2)
  assert all(jax.tree.leaves(same))


def test_jit_does_not_retrace_and_scan_keeps_the_state_structure():
  tx = ll.optim.rprop(lr=0.1)
  traces = []

  @jax.jit
  def step(p, s, g):
    traces.append(1)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  p = jnp.ones(3, jnp.float64)
  s = tx.init(p)
  for k in range(3):
    p, s = step(p, s, jnp.array([1.0, -1.0, 0.5]) * (-1.0) ** k)
  assert len(traces) == 1

  def body(carry, g):
    p, s = carry
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (p2, _), _ = jax.lax.scan(body, (jnp.ones(3, jnp.float64), tx.init(p)),
                            jnp.stack([jnp.array([1.0, -1.0, 0.5]) * (-1.0) ** k for k in range(3)]))
  assert_close(p2, p, rtol=0)


def test_step_size_bounds_must_be_ordered():
  with pytest.raises(ValueError, match=re.escape("rprop: expected step_sizes=(min, max) with min <= max")):
    ll.optim.rprop(step_sizes=(1.0, 0.1))

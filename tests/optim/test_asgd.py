"""ASGD: torch's semantics (semantics.md §1.11) with torch as the oracle, incl. its eta/mu/ax state.

The 50-step trajectory parity lives in ``parity/cases/optim_extra.py`` (cases ``asgd``, ``asgd_ax``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

from tests._optional import optional_import  # noqa: E402

torch = optional_import("torch")  # imported on first use in a test: no torch skips only those tests


def _asgd_state(state) -> ll.optim.ASGDState:
  (found,) = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, ll.optim.ASGDState))
              if isinstance(s, ll.optim.ASGDState)]
  return found


def _run(tx, p0, grads):
  p = jnp.asarray(p0)
  state = tx.init(p)
  ps, states = [], []
  for g in grads:
    u, state = tx.update(jnp.asarray(g), state, p)
    p = optax.apply_updates(p, u)
    ps.append(np.asarray(p))
    states.append(_asgd_state(state))
  return ps, states


def _run_torch(p0, grads, scheduler=None, **kw):
  p = torch.tensor(p0, requires_grad=True)
  opt = torch.optim.ASGD([p], **kw)
  sched = scheduler(opt) if scheduler else None
  ps, states = [], []
  for g in grads:
    p.grad = torch.tensor(g)
    opt.step()
    if sched:
      sched.step()
    ps.append(p.detach().numpy().copy())
    states.append({k: v.clone() for k, v in opt.state[p].items()})
  return ps, states


CONFIGS = [
    {"lr": 0.1, "t0": 3.0},
    {"lr": 0.2, "lambd": 0.1, "alpha": 0.5, "t0": 1.0, "weight_decay": 0.05},
    {"lr": 0.05, "t0": 0.0, "maximize": True},
    {},
]


@pytest.mark.parametrize("kw", CONFIGS, ids=["t0-3", "lambd-alpha-wd", "maximize-t0-0", "default"])
def test_params_and_state_match_torch(kw):
  rng = np.random.default_rng(0)
  p0 = rng.standard_normal(5)
  grads = [rng.standard_normal(5) for _ in range(10)]
  ours, states = _run(ll.optim.asgd(**kw), p0, grads)
  theirs, tstates = _run_torch(p0, grads, **kw)
  for a, b, s, ts in zip(ours, theirs, states, tstates):
    assert_close(a, b, rtol=1e-14)
    assert_close(s.ax, ts["ax"].numpy(), rtol=1e-14)
    # torch's eta and mu are float32 scalars (its default scalar dtype); ours are the same numbers.
    assert s.eta.dtype == jnp.float32 and ts["eta"].dtype == torch.float32
    assert float(s.eta) == float(ts["eta"]) and float(s.mu) == float(ts["mu"])
    assert int(s.step) == int(ts["step"])


def test_eta_and_mu_are_updated_after_use():
  # step 1 uses eta = lr and copies p into ax (mu = 1); lambd = 0 makes the decay term vanish.
  tx = ll.optim.asgd(lr=0.5, lambd=0.0, t0=0.0)
  p = jnp.array([1.0], jnp.float64)
  u, state = tx.update(jnp.array([2.0], jnp.float64), tx.init(p), p)
  p = optax.apply_updates(p, u)
  assert_close(p, [0.0])                                   # 1 - 0.5 * 2
  s = _asgd_state(state)
  assert_close(s.ax, [0.0])
  assert_close(s.mu, 1.0)                                  # mu = 1 / max(1, 1 - 0)
  u, state = tx.update(jnp.array([2.0], jnp.float64), state, p)
  p = optax.apply_updates(p, u)
  s = _asgd_state(state)
  assert_close(p, [-1.0])
  assert_close(s.ax, [-1.0])                               # mu was still 1: ax = p
  assert_close(s.mu, 0.5)                                  # 1 / max(1, 2 - 0)
  u, state = tx.update(jnp.array([2.0], jnp.float64), state, p)
  s = _asgd_state(state)
  assert_close(s.ax, [-1.5])                               # ax + 0.5 * (p - ax) = -1 + 0.5 * (-2 + 1)


def test_lr_schedule_matches_a_torch_scheduler():
  # torch computes the next eta from the group's lr at the time of the step.
  rng = np.random.default_rng(1)
  p0 = rng.standard_normal(3)
  grads = [rng.standard_normal(3) for _ in range(6)]
  ours, states = _run(ll.optim.asgd(lr=lambda k: 0.1 * 0.8**k, lambd=0.1, t0=2.0), p0, grads)
  theirs, tstates = _run_torch(p0, grads, scheduler=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8),
                               lr=0.1, lambd=0.1, t0=2.0)
  for a, b, s, ts in zip(ours, theirs, states, tstates):
    assert_close(a, b, rtol=1e-14)
    assert float(s.eta) == float(ts["eta"])


def test_float32_params():
  rng = np.random.default_rng(2)
  p0 = rng.standard_normal(4).astype(np.float32)
  grads = [rng.standard_normal(4).astype(np.float32) for _ in range(8)]
  ours, states = _run(ll.optim.asgd(lr=0.1, t0=2.0), p0, grads)
  theirs, tstates = _run_torch(p0, grads, lr=0.1, t0=2.0)
  assert ours[-1].dtype == np.float32 and states[-1].ax.dtype == jnp.float32
  # atol: an element that cancels to 2.5e-4 carries the rounding of its O(1) history
  assert_close(ours[-1], theirs[-1], rtol=1e-6, atol=1e-7)
  assert_close(states[-1].ax, tstates[-1]["ax"].numpy(), rtol=1e-6, atol=1e-7)


def test_needs_params():
  tx = ll.optim.asgd()
  p = jnp.zeros(2)
  with pytest.raises(ValueError, match="asgd: expected the current parameters"):
    tx.update(p, tx.init(p))


def test_jit_without_retrace_and_scan():
  tx = ll.optim.asgd(lr=0.1, t0=1.0, weight_decay=0.1)
  traces = []

  @jax.jit
  def step(p, s, g):
    traces.append(1)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  p0 = {"w": jnp.ones((2, 2), jnp.float64), "b": jnp.zeros(2, jnp.float64)}
  gs = [jax.tree.map(lambda x, k=k: jnp.full_like(x, 0.3 * (k + 1)), p0) for k in range(4)]
  p, s = p0, tx.init(p0)
  for g in gs:
    p, s = step(p, s, g)
  assert len(traces) == 1

  def body(carry, g):
    p, s = carry
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (p2, s2), _ = jax.lax.scan(body, (p0, tx.init(p0)), jax.tree.map(lambda *x: jnp.stack(x), *gs))
  jax.tree.map(lambda a, b: assert_close(a, b, rtol=0), (p2, s2), (p, s))

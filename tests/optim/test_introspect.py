"""ll.optim.get_step: one documented way to read the update count (tree_get(state, "step") refuses,
because every alias keeps two counters)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import losslab_jax as ll


def _run(tx, n, p):
  state = tx.init(p)
  for _ in range(n):
    _, state = tx.update(jax.tree.map(jnp.ones_like, p), state, p)
  return state


def test_tree_get_refuses_and_get_step_reads_the_count():
  p = jnp.ones(2, jnp.float64)
  state = _run(ll.optim.adam(lr=0.1), 3, p)
  with pytest.raises(KeyError):
    optax.tree_utils.tree_get(state, "step")  # two counters: AdamState.step and ScaleByLrState.step
  assert int(ll.optim.get_step(state)) == 3


@pytest.mark.parametrize("name", ["sgd", "asgd", "rprop", "lion", "rmsprop"])
def test_every_alias_and_a_bare_scale_by(name):
  p = jnp.ones(2, jnp.float64)
  assert int(ll.optim.get_step(_run(getattr(ll.optim, name)(), 2, p))) == 2
  assert int(ll.optim.get_step(_run(ll.optim.scale_by_adam(), 4, p))) == 4


def test_under_jit_and_inside_a_chain():
  p = jnp.ones(2, jnp.float64)
  tx = optax.chain(ll.optim.clip_grad_norm(1.0), ll.optim.sgd(lr=0.1, momentum=0.9))
  state = _run(tx, 5, p)
  assert int(jax.jit(ll.optim.get_step)(state)) == 5


def test_the_lr_of_the_next_update():
  lr = ll.schedules.step_lr(0.1, step_size=1, gamma=0.5)
  p = jnp.ones(2, jnp.float64)
  state = _run(ll.optim.adam(lr=lr), 3, p)
  assert float(lr(ll.optim.get_step(state))) == 0.1 * 0.5**3
  assert float(ll.monitor.learning_rate(state, lr)) == 0.1 * 0.5**3


def test_param_groups_need_one_group():
  tx = ll.optim.param_groups({"a": ll.optim.sgd(), "b": ll.optim.adam()}, lambda p: {"x": "a", "y": "b"})
  p = {"x": jnp.ones(1, jnp.float64), "y": jnp.ones(1, jnp.float64)}
  state = _run(tx, 2, p)
  with pytest.raises(ValueError, match="get_step: expected exactly one ll.optim step counter in the state, got 2"):
    ll.optim.get_step(state)
  assert int(ll.optim.get_step(state.inner_states["b"])) == 2


def test_a_state_without_a_counter_is_refused():
  with pytest.raises(ValueError, match="got 0"):
    ll.optim.get_step(optax.sgd(0.1).init(jnp.ones(1)))


def test_nnx_optimizer_state():
  nnx = pytest.importorskip("flax.nnx")
  m = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(m, ll.optim.adam(lr=0.1), wrt=nnx.Param)
  grads = jax.tree.map(jnp.ones_like, nnx.state(m, nnx.Param))
  opt.update(m, grads)
  opt.update(m, grads)
  step = ll.optim.get_step(opt.opt_state)
  assert isinstance(step, jax.Array) and int(step) == 2

"""param_groups: torch parameter groups (per-group hyperparameters) and frozen parameters (grad None).

Trajectory parity against torch param groups lives in ``parity/cases/optim_extra.py`` (case
``param_groups``).
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

P0 = {"body": np.array([1.0, -2.0, 0.5]), "head": np.array([[0.3, -0.7]]), "enc": np.array([2.0, 3.0])}


def _grads(k):
  rng = np.random.default_rng(k)
  return {n: rng.standard_normal(v.shape) for n, v in P0.items()}


def _run(tx, steps):
  params = {k: jnp.asarray(v) for k, v in P0.items()}
  state = tx.init(params)
  for k in range(steps):
    u, state = tx.update({n: jnp.asarray(g) for n, g in _grads(k).items()}, state, params)
    params = optax.apply_updates(params, u)
  return params, state


def _run_torch(groups_of, make_opt, steps, frozen=()):
  params = {k: torch.tensor(v, requires_grad=True) for k, v in P0.items()}
  opt = make_opt([{"params": [params[n] for n in names], **kw} for names, kw in groups_of])
  for k in range(steps):
    for n, g in _grads(k).items():
      params[n].grad = None if n in frozen else torch.tensor(g)
    opt.step()
  return {k: v.detach().numpy() for k, v in params.items()}, opt


def test_differential_learning_rates_match_torch_groups():
  tx = ll.optim.param_groups({"slow": ll.optim.asgd(lr=0.01, t0=2.0), "fast": ll.optim.asgd(lr=0.2, t0=2.0)},
                             {"body": "slow", "enc": "slow", "head": "fast"})
  ours, _ = _run(tx, 6)
  theirs, _ = _run_torch([(["body", "enc"], {"lr": 0.01}), (["head"], {"lr": 0.2})],
                         lambda g: torch.optim.ASGD(g, t0=2.0), 6)
  for k in theirs:
    assert_close(ours[k], theirs[k], rtol=1e-14)


def test_frozen_leaves_do_not_move_and_have_no_state_like_torch_grad_none():
  # AdamW with weight decay would move a parameter with a zero gradient; a frozen one must not move.
  tx = ll.optim.param_groups({"train": ll.optim.adamw(lr=0.05, weight_decay=0.5),
                              "frozen": optax.set_to_zero()},
                             lambda params: {"body": "train", "head": "train", "enc": "frozen"})
  ours, state = _run(tx, 5)
  theirs, opt = _run_torch([(["body", "head", "enc"], {})],
                           lambda g: torch.optim.AdamW(g, lr=0.05, weight_decay=0.5), 5, frozen=("enc",))
  for k in theirs:
    assert_close(ours[k], theirs[k], rtol=1e-13)
  np.testing.assert_array_equal(ours["enc"], P0["enc"])
  # torch: no state at all for the frozen parameter; ours: the frozen leaf is a MaskedNode (no arrays)
  assert len(opt.state[opt.param_groups[0]["params"][2]]) == 0
  train_state = state.inner_states["train"]
  enc_leaves = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(train_state)
                if any(getattr(p, "key", None) == "enc" for p in path)]
  assert enc_leaves == []
  # the trainable leaves' step counts advanced 5 times, the frozen group has an empty state
  steps = [int(v) for _, v in optax.tree_utils.tree_get_all_with_path(train_state, "step")]
  assert steps and all(s == 5 for s in steps)
  assert jax.tree.leaves(state.inner_states["frozen"]) == []


def test_zero_gradient_is_not_frozen():
  # semantics.md §0: torch skips grad None, but a zero gradient still moves the parameter (ASGD's decay).
  tx = ll.optim.asgd(lr=0.1, lambd=0.5)
  p = jnp.array([2.0], jnp.float64)
  u, _ = tx.update(jnp.zeros(1, jnp.float64), tx.init(p), p)
  eta = float(np.float32(0.1))  # torch keeps eta as a float32 scalar
  assert_close(optax.apply_updates(p, u), [2.0 * (1 - 0.5 * eta)], rtol=1e-15)


def test_groups_keep_their_own_step_counts():
  tx = ll.optim.param_groups({"a": ll.optim.rprop(lr=0.1), "b": ll.optim.rprop(lr=0.3)},
                             {"body": "a", "head": "b", "enc": "a"})
  _, state = _run(tx, 3)
  for name in ("a", "b"):
    is_rprop = lambda x: isinstance(x, ll.optim.RpropState)  # noqa: E731
    (rp,) = [s for s in jax.tree.leaves(state.inner_states[name], is_leaf=is_rprop) if is_rprop(s)]
    assert int(rp.step) == 3


def test_jit_without_retrace():
  tx = ll.optim.param_groups({"a": ll.optim.rprop(lr=0.1), "f": optax.set_to_zero()},
                             {"body": "a", "head": "a", "enc": "f"})
  traces = []

  @jax.jit
  def step(p, s, g):
    traces.append(1)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  p = {k: jnp.asarray(v) for k, v in P0.items()}
  s = tx.init(p)
  for k in range(3):
    p, s = step(p, s, {n: jnp.asarray(g) for n, g in _grads(k).items()})
  assert len(traces) == 1
  np.testing.assert_array_equal(p["enc"], P0["enc"])


def test_unknown_label_is_an_error():
  with pytest.raises(ValueError, match=re.escape("param_groups: expected every label to name a group in"
                                                 " `transforms` ('a'), got unknown labels 'b'")):
    ll.optim.param_groups({"a": ll.optim.rprop()}, {"body": "a", "head": "b", "enc": "a"})
  tx = ll.optim.param_groups({"a": ll.optim.rprop()}, lambda p: {"body": "a", "head": "zzz", "enc": "a"})
  with pytest.raises(ValueError, match="got unknown labels 'zzz'"):
    tx.init({k: jnp.asarray(v) for k, v in P0.items()})


@pytest.mark.parametrize("transforms", [{}, [ll.optim.rprop()], {"a": "adam"}],
                         ids=["empty", "list", "not-a-tx"])
def test_transforms_must_be_a_dict_of_transformations(transforms):
  with pytest.raises(TypeError, match="param_groups: expected `transforms"):
    ll.optim.param_groups(transforms, {"body": "a"})

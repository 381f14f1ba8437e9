"""Gradient clipping: torch's clip_grad_norm_ / clip_grad_value_ facts (semantics.md §4), torch as oracle.

Parity on random inputs and clipping before an optimizer step live in
``parity/cases/optim_extra.py`` (cases ``clip_grad_norm``, ``clip_grad_value``,
``clip_grad_norm_then_step``).
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


def _torch_clip(grads, max_norm, norm_type=2.0):
  ps = [torch.zeros(np.shape(g), dtype=torch.float64) for g in grads]
  for p, g in zip(ps, grads):
    p.grad = torch.tensor(np.asarray(g, np.float64))
  total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
  return [p.grad.numpy() for p in ps], total.item()


def _ours(grads, max_norm, norm_type=2.0):
  tx = ll.optim.clip_grad_norm(max_norm, norm_type)
  g = [jnp.asarray(x) for x in grads]
  out, state = tx.update(g, tx.init(g))
  return [np.asarray(o) for o in out], state.total_norm


GRADS = [np.array([[3.0, -4.0], [1.0, 0.5]]), np.array([2.0, -12.0, 0.25]), np.array(-1.5)]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0, 0.5, 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_matches_torch(norm_type, max_norm):
  ours, total = _ours(GRADS, max_norm, norm_type)
  theirs, ttotal = _torch_clip(GRADS, max_norm, norm_type)
  assert_close(total, ttotal, rtol=1e-15)
  for a, b in zip(ours, theirs):
    assert_close(a, b, rtol=1e-15)


def test_norm_types_by_hand():
  flat = np.concatenate([np.ravel(g) for g in GRADS])
  for p, expected in ((2.0, np.sqrt(np.sum(flat**2))), (1.0, np.sum(np.abs(flat))), (float("inf"), 12.0)):
    _, total = _ours(GRADS, 1.0, p)
    assert_close(total, expected, rtol=1e-15)


def test_scales_just_below_max_norm_unlike_optax():
  # torch: coef = max_norm / (total + 1e-6) is applied whenever total > max_norm - 1e-6.
  g = [np.array([3.0, 4.0])]  # norm 5
  max_norm = 5.0 + 5e-7
  ours, _ = _ours(g, max_norm)
  assert_close(ours[0], np.array([3.0, 4.0]) * max_norm / (5.0 + 1e-6), rtol=1e-15)
  assert ours[0][0] < 3.0
  theirs, _ = _torch_clip(g, max_norm)
  assert_close(ours[0], theirs[0], rtol=1e-15)
  unchanged, _ = optax.clip_by_global_norm(max_norm).update([jnp.asarray(g[0])], optax.EmptyState())
  np.testing.assert_array_equal(unchanged[0], g[0])


def test_nan_and_inf_propagate_like_torch():
  with_nan = [np.array([1.0, np.nan]), np.array([2.0])]
  ours, total = _ours(with_nan, 1.0)
  assert np.isnan(total) and all(np.isnan(o).all() for o in ours)
  with_inf = [np.array([1.0, np.inf]), np.array([2.0])]
  ours, total = _ours(with_inf, 1.0)
  theirs, _ = _torch_clip(with_inf, 1.0)
  assert np.isinf(total)
  for a, b in zip(ours, theirs):
    np.testing.assert_array_equal(a, b)  # inf * 0 = NaN at the inf element, 0 elsewhere
  assert np.isnan(ours[0][1]) and ours[0][0] == 0.0


def test_state_holds_the_pre_clip_norm_inside_a_chain():
  tx = optax.chain(ll.optim.clip_grad_norm(1.0), ll.optim.rprop())
  params = {"a": jnp.zeros(2, jnp.float64)}
  state = tx.init(params)
  assert float(optax.tree_utils.tree_get(state, "total_norm")) == 0.0
  _, state = tx.update({"a": jnp.array([3.0, 4.0], jnp.float64)}, state, params)
  assert float(optax.tree_utils.tree_get(state, "total_norm")) == 5.0


def test_dtypes_are_kept_per_leaf():
  g = {"h": jnp.array([3.0, 4.0], jnp.bfloat16), "f": jnp.array([12.0], jnp.float32)}
  tx = ll.optim.clip_grad_norm(1.0)
  state = tx.init(g)
  out, state = tx.update(g, state)
  assert out["h"].dtype == jnp.bfloat16 and out["f"].dtype == jnp.float32
  assert state.total_norm.dtype == jnp.float32
  # float32 results against exact hand values: a few ulps (6e-8); measured 0 and 6e-8
  assert_close(state.total_norm, 13.0, rtol=1e-7)
  assert_close(out["f"], [12.0 / 13.0], rtol=1e-6)


def test_empty_tree_is_left_alone():
  tx = ll.optim.clip_grad_norm(1.0)
  out, state = tx.update({}, tx.init({}))
  assert out == {} and float(state.total_norm) == 0.0


def test_jit_and_scan_keep_the_state():
  tx = ll.optim.clip_grad_norm(0.5)
  g = {"w": jnp.ones((2, 2), jnp.float32)}

  def body(s, x):
    u, s = tx.update(jax.tree.map(lambda a: a * x, g), s)
    return s, u["w"][0, 0]

  s, us = jax.lax.scan(body, tx.init(g), jnp.array([0.1, 1.0, 2.0], jnp.float32))
  assert s.total_norm.dtype == jnp.float32
  # float32 results against exact hand values: a few ulps (6e-8); measured 0 and 2.3e-8
  assert_close(s.total_norm, 4.0, rtol=1e-7)
  assert_close(us, [0.1, 0.5 / (2.0 + 1e-6), 2.0 * 0.5 / (4.0 + 1e-6)], rtol=1e-6)


def test_clip_grad_value_matches_torch_and_keeps_nan():
  grads = [np.array([-2.0, 0.3, 7.0, np.nan]), np.array([[0.5, -0.5]])]
  tx = ll.optim.clip_grad_value(0.4)
  ours, _ = tx.update([jnp.asarray(g) for g in grads], tx.init(grads))
  ps = [torch.zeros(g.shape, dtype=torch.float64) for g in grads]
  for p, g in zip(ps, grads):
    p.grad = torch.tensor(g)
  torch.nn.utils.clip_grad_value_(ps, 0.4)
  for a, p in zip(ours, ps):
    np.testing.assert_array_equal(np.asarray(a), p.grad.numpy())
  assert np.isnan(np.asarray(ours[0])[3])


@pytest.mark.parametrize("call,exc,message", [
    (lambda: ll.optim.clip_grad_norm(-1.0), ValueError, "clip_grad_norm: expected `max_norm` >= 0, got -1.0"),
    (lambda: ll.optim.clip_grad_norm("1"), TypeError,
     "clip_grad_norm: expected `max_norm` to be a float, got str"),
    (lambda: ll.optim.clip_grad_norm(1.0, norm_type="fro"), TypeError,
     "clip_grad_norm: expected `norm_type` to be a float, got str"),
    (lambda: ll.optim.clip_grad_value(-0.1), ValueError,
     "clip_grad_value: expected `clip_value` >= 0, got -0.1"),
])
def test_bad_arguments(call, exc, message):
  with pytest.raises(exc, match=re.escape(message)):
    call()

"""get_total_norm / clip_grads_with_norm: hand math, NaN/inf, underflow, dtypes, jit (torch parity:
cases ``get_total_norm`` and ``clip_grads_with_norm``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

TREE = {"a": jnp.array([3.0, 0.0], jnp.float64), "b": [jnp.array([[-4.0]], jnp.float64), jnp.array(12.0, jnp.float64)]}


@pytest.mark.parametrize("p,expected", [(2.0, 13.0), (1.0, 19.0), (math.inf, 12.0), (0.0, 3.0),
                                        (3.0, (27 + 64 + 1728) ** (1 / 3))])
def test_total_norm_by_hand(p, expected):
  assert_close(ll.optim.get_total_norm(TREE, p), expected, rtol=1e-14)
  assert_close(jax.jit(ll.optim.get_total_norm, static_argnums=1)(TREE, p), expected, rtol=1e-14)


def test_float32_squares_that_underflow_still_give_the_norm():
  # (3e-20)**2 is below float32's smallest subnormal: a plain sqrt(sum(x * x)) returns 0.
  g = [jnp.array([3e-20], jnp.float32), jnp.array([4e-20], jnp.float32)]
  # float32 norms against exact hand values: a few ulps (6e-8); measured 3.2e-8 and 1.5e-8
  assert_close(ll.optim.get_total_norm(g), 5e-20, rtol=1e-6)
  assert_close(ll.optim.get_total_norm([jnp.array([3e30, 4e30], jnp.float32)]), 5e30, rtol=1e-6)


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_nan_propagates_and_inf_gives_inf(p):
  assert math.isnan(float(ll.optim.get_total_norm([jnp.array([1.0, jnp.nan]), jnp.array([2.0])], p)))
  assert float(ll.optim.get_total_norm([jnp.array([1.0, jnp.inf]), jnp.array([2.0])], p)) == math.inf


def test_clip_with_norm_nan_and_inf_totals():
  g = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
  assert all(bool(jnp.isnan(x).all()) for x in jax.tree.leaves(ll.optim.clip_grads_with_norm(g, 1.0, jnp.nan)))
  out = ll.optim.clip_grads_with_norm(g, 1.0, jnp.inf)
  assert all(bool((x == 0).all()) for x in jax.tree.leaves(out))


def test_clip_with_norm_by_hand_dtypes_and_empty():
  g = {"h": jnp.array([3.0, 4.0], jnp.bfloat16), "f": jnp.array([1.0], jnp.float32)}
  out = jax.jit(lambda g, t: ll.optim.clip_grads_with_norm(g, 2.0, t))(g, jnp.asarray(10.0, jnp.float64))
  assert out["h"].dtype == jnp.bfloat16 and out["f"].dtype == jnp.float32
  assert_close(out["f"], [2.0 / (10.0 + 1e-6)], rtol=1e-7)   # float32: ~1 ulp (measured 3.4e-8)
  assert_close(ll.optim.clip_grads_with_norm(g, 100.0, 5.0)["f"], [1.0], rtol=0)  # coefficient clamped to 1
  assert ll.optim.get_total_norm({}).shape == () and float(ll.optim.get_total_norm({})) == 0.0
  assert ll.optim.get_total_norm(g).dtype == jnp.float32


def test_bad_arguments():
  with pytest.raises(TypeError, match="norm_type"):
    ll.optim.get_total_norm(TREE, "fro")
  with pytest.raises(TypeError, match="max_norm"):
    ll.optim.clip_grads_with_norm(TREE, None, 1.0)


def test_composes_with_clip_grad_norm():
  rng = np.random.default_rng(0)
  g = {"a": jnp.asarray(rng.standard_normal((3, 2))), "b": jnp.asarray(rng.standard_normal(4))}
  tx = ll.optim.clip_grad_norm(0.5)
  expected, state = tx.update(g, tx.init(g))
  total = ll.optim.get_total_norm(g)
  assert_close(total, state.total_norm, rtol=1e-14)
  for x, y in zip(jax.tree.leaves(ll.optim.clip_grads_with_norm(g, 0.5, total)), jax.tree.leaves(expected)):
    assert_close(x, y, rtol=1e-14)

"""l1/l2/elastic-net penalties over pytrees, the bias/norm filter, and their relation to weight decay:
coupled L2 in the loss equals torch-style ``weight_decay`` (SGD, Adam); decoupled AdamW decay does not."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

L = ll.losses
f64 = jnp.float64


def _params():
  return {"dense": {"kernel": jnp.asarray([[1.0, -2.0], [0.0, 3.0]], f64), "bias": jnp.asarray([1.0, -1.0], f64)},
          "layernorm": {"scale": jnp.asarray([[2.0, 2.0]], f64)}, "step": jnp.asarray(3, jnp.int32)}


def test_values_by_hand_and_filters():
  p = _params()
  assert_close(L.l1_penalty(p), 6 + 2 + 4)  # integer leaf skipped
  assert_close(L.l2_penalty(p), 0.5 * (14 + 2 + 8))
  assert_close(L.elastic_net_penalty(p, 0.25), 0.25 * 12 + 0.75 * 12)
  assert_close(L.elastic_net_penalty(p, 1.0), L.l1_penalty(p))
  assert_close(L.elastic_net_penalty(p, 0.0), L.l2_penalty(p))
  # the ready-made filter keeps only the kernel (the 1-D bias and the "layernorm" scale are skipped)
  assert_close(L.l1_penalty(p, filter=L.exclude_bias_and_norm), 6.0)
  assert_close(L.l2_penalty(p, filter=L.exclude_bias_and_norm), 7.0)
  only_bias = lambda path, leaf: any(getattr(k, "key", None) == "bias" for k in path)
  assert_close(L.l2_penalty(p, filter=only_bias), 1.0)
  assert float(L.l1_penalty(p, filter=lambda path, leaf: False)) == 0.0
  with pytest.raises(ValueError, match="l1_ratio"):
    L.elastic_net_penalty(p, 1.5)


def test_gradients_nan_and_dtypes():
  w = {"w": jnp.asarray([0.0, -2.0, 3.0], f64)}
  assert_close(jax.grad(L.l1_penalty)(w)["w"], [0.0, -1.0, 1.0])  # sgn(0) = 0, as torch's abs
  assert_close(jax.grad(L.l2_penalty)(w)["w"], [0.0, -2.0, 3.0])  # gradient = w
  bad = {"w": w["w"].at[1].set(jnp.nan)}
  for fn in (L.l1_penalty, L.l2_penalty, lambda q: L.elastic_net_penalty(q, 0.5)):
    assert np.isnan(fn(bad)) and np.isnan(jax.grad(fn)(bad)["w"][1])
    assert_close(jax.jit(fn)(w), fn(w), rtol=1e-15)
  for dt in (jnp.bfloat16, jnp.float32):
    assert L.l2_penalty({"w": w["w"].astype(dt)}).dtype == dt


def _problem():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((16, 3)), f64)
  y = jnp.asarray(rng.standard_normal((16, 2)), f64)
  params = {"w": jnp.asarray(rng.standard_normal((3, 2)), f64), "b": jnp.asarray(rng.standard_normal(2), f64)}
  return params, lambda p: jnp.mean((x @ p["w"] + p["b"][None, :] - y) ** 2)


def _trajectory(tx, loss, params, steps=15):
  state = tx.init(params)
  out = []
  for _ in range(steps):
    g = jax.grad(loss)(params)
    u, state = tx.update(g, state, params)
    params = optax.apply_updates(params, u)
    out.append(params)
  return out


@pytest.mark.parametrize("make", [lambda wd: ll.optim.sgd(lr=0.1, momentum=0.9, weight_decay=wd),
                                  lambda wd: ll.optim.adam(lr=0.05, weight_decay=wd)], ids=["sgd", "adam"])
def test_coupled_weight_decay_is_the_l2_penalty(make):
  params, loss = _problem()
  wd = 0.3
  decayed = _trajectory(make(wd), loss, params)
  penalised = _trajectory(make(0.0), lambda p: loss(p) + wd * L.l2_penalty(p), params)
  for a, b in zip(decayed, penalised):
    for k in a:
      assert_close(a[k], b[k], rtol=1e-12, atol=1e-14)


def test_decoupled_adamw_decay_is_not_an_l2_penalty():
  params, loss = _problem()
  wd, lr = 0.3, 0.05
  adamw = _trajectory(ll.optim.adamw(lr=lr, weight_decay=wd), loss, params)
  l2_in_adam = _trajectory(ll.optim.adam(lr=lr), lambda p: loss(p) + wd * L.l2_penalty(p), params)
  gap = max(float(jnp.max(jnp.abs(a[k] - b[k]))) for a, b in zip(adamw, l2_in_adam) for k in a)
  assert gap > 1e-2  # not a rounding difference: a different algorithm
  # what AdamW does instead: p <- p (1 - lr wd) before the plain Adam step on the unpenalised loss
  manual, p, tx = [], params, ll.optim.adam(lr=lr)
  state = tx.init(p)
  for _ in range(15):
    g = jax.grad(loss)(p)
    u, state = tx.update(g, state, p)
    p = optax.apply_updates(jax.tree_util.tree_map(lambda v: v * (1 - lr * wd), p), u)
    manual.append(p)
  for a, b in zip(adamw, manual):
    for k in a:
      assert_close(a[k], b[k], rtol=1e-12, atol=1e-14)

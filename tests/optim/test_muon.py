"""Muon: torch's validation messages, 2-D only, the param_groups recipe, Newton-Schulz against torch
(bfloat16 and with the cast removed), dtypes, NaN, jit (trajectories: parity cases ``muon``,
``muon_full_precision``)."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

def test_step_time_checks_are_raised_at_construction():
  with pytest.raises(ValueError, match="Number of steps must be less than 100"):
    ll.optim.muon(ns_steps=100)
  with pytest.raises(ValueError, match="Coefficients must be a tuple of exactly 3 values"):
    ll.optim.muon(ns_coefficients=(1.0, 2.0))


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()])
def test_only_2d_leaves_as_in_torch(shape):
  tx = ll.optim.muon()
  with pytest.raises(ValueError, match=re.escape("Muon only supports 2D parameters whereas we found a parameter")):
    tx.init({"w": jnp.zeros((2, 2)), "x": jnp.zeros(shape)})


def test_param_groups_recipe_routes_other_leaves_to_adamw():
  params = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((4, 3))), "b": jnp.ones(3), "s": jnp.ones(())}
  grads = jax.tree.map(lambda p: p * 0.3 + 0.1, params)
  labels = lambda ps: jax.tree.map(lambda p: "muon" if p.ndim == 2 else "adamw", ps)  # noqa: E731
  tx = ll.optim.param_groups({"muon": ll.optim.muon(lr=0.02), "adamw": ll.optim.adamw(lr=3e-4)}, labels)
  u, _ = tx.update(grads, tx.init(params), params)
  m, a = ll.optim.muon(lr=0.02), ll.optim.adamw(lr=3e-4)
  rest = {"b": params["b"], "s": params["s"]}
  assert_close(u["w"], m.update(grads["w"], m.init(params["w"]), params["w"])[0], rtol=0)
  ua, _ = a.update({k: grads[k] for k in rest}, a.init(rest), rest)
  assert_close(u["b"], ua["b"], rtol=0)
  assert_close(u["s"], ua["s"], rtol=0)


@pytest.mark.parametrize("shape", [(6, 4), (3, 7)], ids=["tall", "wide"])
def test_full_precision_equals_torch_with_the_cast_removed(shape):
  torch = pytest.importorskip("torch")
  from parity.reference.muon import zeropower_via_newtonschulz_full_precision as reference
  from losslab_jax.optim._muon import zeropower_via_newtonschulz

  g = np.random.default_rng(2).standard_normal(shape)
  coef = (3.4445, -4.775, 2.0315)
  ours = zeropower_via_newtonschulz(jnp.asarray(g), coef, 5, 1e-7, ns_dtype=None)
  assert ours.dtype == jnp.float64
  assert_close(ours, reference(torch.tensor(g), coef, 5, 1e-7).numpy(), rtol=1e-12, atol=1e-14)


def test_bfloat16_iteration_within_one_bfloat16_ulp_of_torch():
  # torch's own function as it is: bfloat16 values, float32 products. Our roundings sit where
  # torch's do; a float32 sum in another order may land on the other side of a rounding boundary.
  torch = pytest.importorskip("torch")
  from torch.optim._muon import _zeropower_via_newtonschulz as torch_ns
  from losslab_jax.optim._muon import zeropower_via_newtonschulz

  rng = np.random.default_rng(3)
  coef = (3.4445, -4.775, 2.0315)
  for shape in ((6, 5), (5, 3), (4, 4)):
    g = rng.standard_normal(shape).astype(np.float32)
    ours = np.asarray(jax.jit(zeropower_via_newtonschulz, static_argnums=(1, 2, 3))(jnp.asarray(g), coef, 5, 1e-7))
    theirs = torch_ns(torch.tensor(g), coef, 5, 1e-7).float().numpy()
    assert np.abs(ours - theirs).max() <= 2.0 ** -7 * np.abs(theirs).max()
    # and the bfloat16 rounding is really there: full precision differs by far more than that
    full = np.asarray(zeropower_via_newtonschulz(jnp.asarray(g), coef, 5, 1e-7, ns_dtype=None))
    assert np.abs(full - theirs).max() > 1e-4


def test_muon_equals_a_numpy_transcription_of_torch_full_precision():
  rng = np.random.default_rng(4)
  p0 = rng.standard_normal((5, 3))
  grads = [rng.standard_normal((5, 3)) for _ in range(4)]
  lr, wd, mu, coef = 0.02, 0.1, 0.9, (3.4445, -4.775, 2.0315)
  p, buf = p0.copy(), np.zeros_like(p0)
  for g in grads:   # torch's _single_tensor_muon with the Newton-Schulz cast removed
    buf = buf + (1 - mu) * (g - buf)
    upd = g + mu * (buf - g)
    x = upd.T / max(np.linalg.norm(upd), 1e-7)
    for _ in range(5):
      a_ = x @ x.T
      x = coef[0] * x + (coef[1] * a_ + coef[2] * a_ @ a_) @ x
    p = p * (1 - lr * wd) - lr * math.sqrt(5 / 3) * x.T
  tx = ll.optim.muon(lr=lr, weight_decay=wd, momentum=mu, ns_dtype=None)
  q, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  for g in grads:
    u, s = tx.update(jnp.asarray(g), s, q)
    q = optax.apply_updates(q, u)
  assert_close(q, p, rtol=1e-12)


def test_dtypes_nan_and_no_retrace():
  params = {"a": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones((2, 2), jnp.float32), "c": jnp.eye(2, dtype=jnp.float64)}
  tx = ll.optim.muon(lr=lambda k: 0.1 * 0.5 ** k)
  traces = []

  @jax.jit
  def step(p, s, g):
    traces.append(1)
    u, s = tx.update(g, s, p)
    return u, s

  s = tx.init(params)
  for k in range(3):
    u, s = step(params, s, jax.tree.map(lambda p: p * (k + 1) + 0.1, params))
  assert len(traces) == 1
  assert {k: v.dtype for k, v in u.items()} == {k: v.dtype for k, v in params.items()}
  assert all(b.dtype == params[k].dtype for k, b in s[0].momentum_buffer.items())
  u, _ = step(params, tx.init(params), {**params, "b": params["b"].at[0, 0].set(jnp.nan)})
  assert bool(jnp.isnan(u["b"]).all()) and bool(jnp.isfinite(u["c"]).all())


def test_nnx_optimizer_with_the_param_groups_recipe():
  from flax import nnx

  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0), param_dtype=jnp.float32)
  labels = lambda ps: jax.tree.map(lambda p: "muon" if p.ndim == 2 else "adamw", ps)  # noqa: E731
  tx = ll.optim.param_groups({"muon": ll.optim.muon(lr=0.05), "adamw": ll.optim.adamw(lr=1e-2)}, labels)
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 3)), jnp.float32)
  loss = lambda m: jnp.mean((m(x) - 1.0) ** 2)  # noqa: E731

  @nnx.jit
  def train(model, opt):
    opt.update(model, nnx.grad(loss)(model))

  before = float(loss(model))
  for _ in range(3):
    train(model, opt)
  assert float(loss(model)) < before

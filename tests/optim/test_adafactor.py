"""Adafactor: torch's validation messages, state layout, a numpy transcription of torch's step,
torch on a 3-D parameter, dtypes, NaN, jit and nnx (whole trajectories: parity case ``adafactor``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import losslab_jax as ll
from tests.helpers import assert_close

def test_state_fields_shapes_and_dtypes():
  params = {"m": jnp.zeros((2, 4, 3), jnp.float32), "v": jnp.zeros(3, jnp.bfloat16), "s": jnp.zeros((), jnp.float64)}
  state = ll.optim.scale_by_adafactor().init(params)
  assert isinstance(state, ll.optim.AdafactorState)
  assert state._fields == ("step", "row_var", "col_var", "variance")
  assert state.step.dtype == jnp.int32
  assert state.row_var["m"].shape == (2, 4, 1) and state.col_var["m"].shape == (2, 1, 3)
  assert state.variance["m"].shape == (0,)
  assert state.variance["v"].shape == (3,) and state.variance["v"].dtype == jnp.bfloat16
  assert state.variance["s"].shape == () and state.row_var["s"].shape == (0,)


def _run(tx, p0, grads):
  """Apply ``tx`` along ``grads`` from ``p0`` with one jitted step; returns (params, state)."""
  step = jax.jit(lambda p, s, g: (lambda u, s2: (optax.apply_updates(p, u), s2))(*tx.update(g, s, p)))
  p = jax.tree.map(jnp.asarray, p0)
  s = tx.init(p)
  for g in grads:
    p, s = step(p, s, jax.tree.map(jnp.asarray, g))
  return p, s


def _torch_adafactor_numpy(grads, p, *, lr, beta2_decay, eps1, eps2, d, wd):
  """An independent float64 numpy transcription of torch's _single_tensor_adafactor."""
  row = np.zeros(p.shape[:-1] + (1,)) if p.ndim > 1 else None
  col = np.zeros(p.shape[:-2] + (1, p.shape[-1])) if p.ndim > 1 else None
  var = np.zeros_like(p)
  for t, g in enumerate(grads, start=1):
    w = t ** beta2_decay
    rho = min(lr, 1 / t ** 0.5)
    alpha = max(eps2, np.linalg.norm(p) / math.sqrt(p.size)) * rho
    p = p * (1 - lr * wd)
    if p.ndim > 1:
      row = row + w * ((g * g).mean(-1, keepdims=True) - row)
      col = col + w * ((g * g).mean(-2, keepdims=True) - col)
      est = row * col / np.maximum(row.mean(-2, keepdims=True), eps1)
    else:
      var = var + w * (g * g - var)
      est = var
    u = g / np.sqrt(np.maximum(est, eps1 * eps1))
    denom = max(1.0, np.linalg.norm(u) / (math.sqrt(u.size) * d))
    p = p - alpha / denom * u
  return p


SHAPES = {"vector": (5,), "matrix": (4, 3), "batched": (2, 3, 4)}


@pytest.mark.parametrize("kw", [dict(lr=0.05, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0),
                                dict(lr=0.3, beta2_decay=-0.5, eps=(1e-3, 0.1), d=1.5, weight_decay=0.2)],
                         ids=["defaults", "all-set"])
def test_matches_a_numpy_transcription_of_torch(kw):
  rng = np.random.default_rng(0)
  p0 = {k: rng.standard_normal(v) for k, v in SHAPES.items()}
  grads = [{k: rng.standard_normal(v) * sc for k, v in SHAPES.items()} for sc in (1.0, 3.0, 0.1, 0.5, 2.0, 0.01)]
  p, _ = _run(ll.optim.adafactor(**kw), p0, grads)
  eps1 = kw["eps"][0] if kw["eps"][0] is not None else float(np.finfo(np.float64).eps)
  for k in SHAPES:
    expected = _torch_adafactor_numpy([g[k] for g in grads], p0[k], lr=kw["lr"], beta2_decay=kw["beta2_decay"],
                                      eps1=eps1, eps2=kw["eps"][1], d=kw["d"], wd=kw["weight_decay"])
    assert_close(p[k], expected, rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_on_a_3d_parameter(dtype):
  # The shared parity problem has no leaf with more than two axes: factoring on the last two.
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  p0 = rng.standard_normal((3, 4, 5)).astype(dtype)
  grads = [rng.standard_normal((3, 4, 5)).astype(dtype) for _ in range(8)]
  tp = torch.tensor(p0, requires_grad=True)
  opt = torch.optim.Adafactor([tp], lr=0.05, weight_decay=0.1)
  for g in grads:
    tp.grad = torch.tensor(g)
    opt.step()
  p, s = _run(ll.optim.adafactor(lr=0.05, weight_decay=0.1), p0, grads)
  assert_close(p, tp.detach().numpy(), rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6 if dtype == "float32" else 0)
  assert_close(s[1].row_var, opt.state[tp]["row_var"].numpy(), rtol=1e-5 if dtype == "float32" else 1e-12)


def test_dtype_preserved():
  params = {f"{k}-{d.__name__}": jnp.ones(shape, d) for k, shape in (("m", (3, 2)), ("v", (2,)))
            for d in (jnp.bfloat16, jnp.float32, jnp.float64)}
  tx = ll.optim.adafactor(weight_decay=0.1)
  u, s = jax.jit(tx.update)(jax.tree.map(lambda p: p * 0.5, params), tx.init(params), params)
  for k, p in params.items():
    assert u[k].dtype == p.dtype
    assert s[1].row_var[k].dtype == s[1].variance[k].dtype == p.dtype


def test_nan_gradient_propagates_to_that_leaf():
  params = {"m": jnp.ones((3, 2)), "v": jnp.ones(2)}
  grads = {"m": jnp.ones((3, 2)).at[0, 0].set(jnp.nan), "v": jnp.array([jnp.nan, 1.0])}
  tx = ll.optim.adafactor()
  u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  assert bool(jnp.isnan(u["m"]).all())        # the NaN spreads through the row/column factors and RMS
  assert bool(jnp.isnan(u["v"]).all())        # through RMS(U)


def test_needs_params():
  tx = ll.optim.adafactor()
  p = jnp.zeros(2)
  with pytest.raises(ValueError, match="relative to the parameters"):
    tx.update(p, tx.init(p))


def test_no_retrace_and_nnx_optimizer():
  traces = []
  tx = ll.optim.adafactor(lr=lambda k: 0.05 * 0.9 ** k, weight_decay=0.1)

  @jax.jit
  def step(params, state, grads):
    traces.append(1)
    u, state = tx.update(grads, state, params)
    return optax.apply_updates(params, u), state

  params = {"m": jnp.ones((3, 2)), "v": jnp.ones(2)}
  state = tx.init(params)
  for k in range(3):
    params, state = step(params, state, jax.tree.map(lambda p: p * (k + 1.0), params))
  assert len(traces) == 1

  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0), param_dtype=jnp.float32)
  opt = nnx.Optimizer(model, ll.optim.adafactor(lr=0.05), wrt=nnx.Param)
  x = jnp.ones((4, 3), jnp.float32)
  loss = lambda m: jnp.mean(m(x) ** 2)  # noqa: E731
  before = float(loss(model))

  @nnx.jit
  def train(model, opt):
    opt.update(model, nnx.grad(loss)(model))

  for _ in range(3):
    train(model, opt)
  assert float(loss(model)) < before

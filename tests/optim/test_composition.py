"""Generic checks over the torch.optim family (sgd ... lion): optax composition, jit without
retracing, state structure through ``lax.scan`` / ``lax.cond``, dtypes, ``maximize``.

Torch parity of the trajectories is in ``parity/cases/optim.py`` (run by ``tests/test_parity.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

# Each optimizer with keyword arguments that switch on every state field and decay path.
OPTIMIZERS = {
    "sgd": (ll.optim.sgd, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    "sgd-nesterov": (ll.optim.sgd, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "adam": (ll.optim.adam, {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True}),
    "adamw": (ll.optim.adamw, {"lr": 0.01, "amsgrad": True}),
    "adamax": (ll.optim.adamax, {"lr": 0.01, "weight_decay": 0.01}),
    "nadam": (ll.optim.nadam, {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}),
    "radam": (ll.optim.radam, {"lr": 0.01, "weight_decay": 0.01}),
    "rmsprop": (ll.optim.rmsprop, {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01}),
    "adagrad": (ll.optim.adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1,
                                   "weight_decay": 0.01}),
    "adadelta": (ll.optim.adadelta, {"weight_decay": 0.01}),
    "lion": (ll.optim.lion, {"lr": 1e-3, "weight_decay": 0.1}),
}
IDS = list(OPTIMIZERS)


def _params(dtype=jnp.float64, seed=0):
  rng = np.random.default_rng(seed)
  return {"w": jnp.asarray(rng.standard_normal((3, 4)), dtype), "b": jnp.asarray(rng.standard_normal(4), dtype)}


def _grads(n, dtype=jnp.float64, seed=1):
  rng = np.random.default_rng(seed)
  return [{"w": jnp.asarray(rng.standard_normal((3, 4)), dtype), "b": jnp.asarray(rng.standard_normal(4), dtype)}
          for _ in range(n)]


def _run(tx, params, grads):
  state = tx.init(params)
  out = []
  for g in grads:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
    out.append(params)
  return out, state


def _tree_close(a, b, rtol=1e-12, atol=0.0):
  jax.tree.map(lambda x, y: assert_close(x, y, rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("name", IDS)
def test_returns_extra_args_transformation(name):
  factory, kw = OPTIMIZERS[name]
  tx = factory(**kw)
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  params = _params()
  updates, _ = tx.update(_grads(1)[0], tx.init(params), params, value=jnp.asarray(1.0))  # extra args pass
  assert jax.tree.structure(updates) == jax.tree.structure(params)


@pytest.mark.parametrize("name", IDS)
def test_no_retrace_on_second_update(name):
  factory, kw = OPTIMIZERS[name]
  tx = factory(**kw)
  traces = []

  @jax.jit
  def step(params, state, grads):
    traces.append(1)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params = _params()
  state = tx.init(params)
  for g in _grads(3):
    params, state = step(params, state, g)
  assert len(traces) == 1


@pytest.mark.parametrize("name", IDS)
def test_state_stable_through_scan_and_cond(name):
  factory, kw = OPTIMIZERS[name]
  tx = factory(**kw)
  params = _params()
  state0 = tx.init(params)
  grads = _grads(4)

  def body(carry, g):
    p, s = carry
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
  (p_scan, s_scan), _ = jax.lax.scan(body, (params, state0), stacked)
  p_loop, s_loop = _run(tx, params, grads)
  _tree_close(p_scan, p_loop[-1])
  assert jax.tree.structure(s_scan) == jax.tree.structure(state0)
  assert [x.dtype for x in jax.tree.leaves(s_scan)] == [x.dtype for x in jax.tree.leaves(state0)]

  def maybe_step(pred, s):
    return jax.lax.cond(pred, lambda s: tx.update(grads[0], s, params)[1], lambda s: s, s)

  s_true = jax.jit(maybe_step)(True, state0)
  s_false = jax.jit(maybe_step)(False, state0)
  _tree_close(s_false, state0)
  assert jax.tree.structure(s_true) == jax.tree.structure(state0)


@pytest.mark.parametrize("name", IDS)
def test_float32_stays_float32(name):
  factory, kw = OPTIMIZERS[name]
  tx = factory(**kw)
  params = _params(jnp.float32)
  state = tx.init(params)
  for g in _grads(2, jnp.float32):
    updates, state = jax.jit(tx.update)(g, state, params)
    params = optax.apply_updates(params, updates)
  assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  floating = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating) and x.ndim > 0]
  assert {x.dtype for x in floating} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize("name", IDS)
def test_bfloat16_params_work(name):
  factory, kw = OPTIMIZERS[name]
  tx = factory(**kw)
  p16, p32 = _params(jnp.bfloat16), _params(jnp.float32)
  p32 = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32), p32)   # same start
  g16, g32 = _grads(3, jnp.bfloat16), _grads(3, jnp.float32)
  g32 = [jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32), g) for g in g32]
  out16, state16 = _run(tx, p16, g16)
  out32, _ = _run(tx, p32, g32)
  assert {x.dtype for x in jax.tree.leaves(out16[-1])} == {jnp.dtype(jnp.bfloat16)}
  for a, b in zip(jax.tree.leaves(out16[-1]), jax.tree.leaves(out32[-1])):
    assert np.all(np.isfinite(np.asarray(a, np.float32)))
    # bf16 params rounded after each of 3 steps (unit roundoff 3.9e-3 each) against a float32 run
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", [n for n in IDS if n != "lion"])  # lion-pytorch has no maximize
def test_maximize_equals_minimizing_the_negative(name):
  factory, kw = OPTIMIZERS[name]
  params, grads = _params(), _grads(4)
  up, _ = _run(factory(**kw, maximize=True), params, grads)
  down, _ = _run(factory(**kw), params, [jax.tree.map(jnp.negative, g) for g in grads])
  _tree_close(up, down)


@pytest.mark.parametrize("name", IDS)
def test_inside_optax_chain(name):
  factory, kw = OPTIMIZERS[name]
  params, grads = _params(), _grads(3)
  chained, _ = _run(optax.chain(optax.clip(0.5), factory(**kw)), params, grads)
  clipped, _ = _run(factory(**kw), params, [jax.tree.map(lambda x: jnp.clip(x, -0.5, 0.5), g) for g in grads])
  _tree_close(chained, clipped)


@pytest.mark.parametrize("name", IDS)
def test_multi_transform(name):
  factory, kw = OPTIMIZERS[name]
  params, grads = _params(), _grads(3)
  tx = optax.multi_transform({"opt": factory(**kw), "frozen": optax.set_to_zero()}, {"w": "opt", "b": "frozen"})
  out, _ = _run(tx, params, grads)
  alone, _ = _run(factory(**kw), {"w": params["w"]}, [{"w": g["w"]} for g in grads])
  assert_close(out[-1]["w"], alone[-1]["w"], rtol=1e-12)
  assert_close(out[-1]["b"], params["b"], rtol=0.0)


@pytest.mark.parametrize("name", IDS)
def test_inject_hyperparams(name):
  factory, kw = OPTIMIZERS[name]
  params, grads = _params(), _grads(4)
  tx = optax.inject_hyperparams(factory)(**kw)
  state = tx.init(params)
  assert "lr" in state.hyperparams
  step = jax.jit(tx.update)
  p, ref = params, factory(**kw)
  p_ref, s_ref = params, ref.init(params)
  for g in grads[:2]:
    u, state = step(g, state, p)
    p = optax.apply_updates(p, u)
    u_ref, s_ref = ref.update(g, s_ref, p_ref)
    p_ref = optax.apply_updates(p_ref, u_ref)
  _tree_close(p, p_ref)
  # Changing the injected lr mid-run is the same as building the optimizer with the new lr.
  state.hyperparams["lr"] = jnp.asarray(kw.get("lr", 1.0) / 2, jnp.float64)
  ref_half = factory(**{**kw, "lr": kw.get("lr", 1.0) / 2})
  u, _ = step(grads[2], state, p)
  u_half, _ = ref_half.update(grads[2], s_ref, p_ref)
  _tree_close(u, u_half)


SCALE_BY = {
    "sgd": (ll.optim.scale_by_sgd, {"momentum": 0.9, "dampening": 0.1}, ll.optim.sgd),
    "adam": (ll.optim.scale_by_adam, {"amsgrad": True}, ll.optim.adam),
    "adamax": (ll.optim.scale_by_adamax, {}, ll.optim.adamax),
    "nadam": (ll.optim.scale_by_nadam, {"momentum_decay": 0.01}, ll.optim.nadam),
    "radam": (ll.optim.scale_by_radam, {}, ll.optim.radam),
    "rmsprop": (ll.optim.scale_by_rmsprop, {"momentum": 0.5, "centered": True}, ll.optim.rmsprop),
    "adagrad": (ll.optim.scale_by_adagrad, {"initial_accumulator_value": 0.1}, ll.optim.adagrad),
    "adadelta": (ll.optim.scale_by_adadelta, {"rho": 0.8}, ll.optim.adadelta),
    "lion": (ll.optim.scale_by_lion, {}, ll.optim.lion),
}


@pytest.mark.parametrize("name", list(SCALE_BY))
def test_scale_by_then_scale_equals_the_alias(name):
  scale_by, kw, alias = SCALE_BY[name]
  params, grads = _params(), _grads(8)
  composed, _ = _run(optax.chain(scale_by(**kw), optax.scale(-0.03)), params, grads)
  aliased, _ = _run(alias(lr=0.03, **kw), params, grads)
  _tree_close(composed, aliased)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "nadam", "rmsprop", "lion"])
def test_schedule_lr_equals_step_by_step_rebuild(name):
  """A schedule lr at update k acts like a constant lr = schedule(k) for that update."""
  factory, kw = OPTIMIZERS[name]
  sched = lambda k: 0.05 * 0.9 ** k  # noqa: E731
  params, grads = _params(), _grads(4)
  tx = factory(**{**kw, "lr": sched})
  state = tx.init(params)
  p = params
  for k, g in enumerate(grads):
    u, new_state = tx.update(g, state, p)
    u_const, _ = factory(**{**kw, "lr": sched(k)}).update(g, state, p)
    _tree_close(u, u_const)
    p, state = optax.apply_updates(p, u), new_state

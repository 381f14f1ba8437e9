"""LBFGS: torch's ``step(closure)`` (semantics.md §1.12) with torch as the oracle, state included.

End-to-end parity on the shared problem lives in ``parity/cases/optim_extra.py`` (cases ``lbfgs``,
``lbfgs_default``).
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


def rosenbrock(p, lib=jnp):
  """A mild Rosenbrock valley (curved, so the line search brackets and zooms) plus a quartic bowl."""
  x, y = p["xy"][0], p["xy"][1]
  return (1 - x) ** 2 + 10 * (y - x**2) ** 2 + lib.sum(p["z"] ** 4) / 4 + lib.sum(p["z"] ** 2)


START = {"xy": np.array([-1.2, 1.0]), "z": np.array([[0.5, -1.0, 2.0]])}


def _run(steps, start=START, fn=rosenbrock, **kw):
  params = {k: jnp.asarray(v) for k, v in start.items()}
  tx = ll.optim.lbfgs(**kw)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    value, grads = jax.value_and_grad(fn)(params)
    updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=fn)
    return optax.apply_updates(params, updates), state

  out = []
  for _ in range(steps):
    params, state = step(params, state)
    out.append(jax.tree.map(np.asarray, params))
  return out, state


def _run_torch(steps, start=START, fn=rosenbrock, **kw):
  params = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
  opt = torch.optim.LBFGS(list(params.values()), **kw)  # dict order == sorted == jax leaf order

  def closure():
    opt.zero_grad()
    loss = fn(params, lib=torch)
    loss.backward()
    return loss

  out = []
  for _ in range(steps):
    opt.step(closure)
    out.append({k: v.detach().numpy().copy() for k, v in params.items()})
  return out, opt.state[next(iter(params.values()))]


def _logical(buf, state):
  """The ring buffer's stored rows, oldest first (torch's list order)."""
  n, size = int(state.history_len), buf.shape[0]
  return np.stack([np.asarray(buf[(int(state.history_start) + i) % size]) for i in range(n)]) if n else None


CONFIGS = [
    {"max_iter": 5, "history_size": 2},
    {"max_iter": 20},
    {"lr": 0.5, "max_iter": 7, "history_size": 3, "tolerance_change": 1e-6},
    {"line_search_fn": "strong_wolfe", "history_size": 3},
    {"line_search_fn": "strong_wolfe", "max_iter": 6, "max_eval": 5},
    {"line_search_fn": "strong_wolfe", "lr": 2.0, "max_iter": 3},
]


@pytest.mark.slow
@pytest.mark.parametrize("kw", CONFIGS, ids=["fixed-h2", "fixed-default", "fixed-lr-tol", "wolfe-h3",
                                             "wolfe-maxeval", "wolfe-lr2"])
def test_params_and_state_match_torch(kw):
  ours, state = _run(4, **kw)
  theirs, ts = _run_torch(4, **kw)
  for a, b in zip(ours, theirs):
    for k in b:
      assert_close(a[k], b[k], rtol=1e-9, atol=1e-12, err_msg=k)
  assert int(state.func_evals) == ts["func_evals"] and int(state.n_iter) == ts["n_iter"]
  assert int(state.history_len) == len(ts["old_dirs"])
  assert_close(state.t, float(ts["t"]), rtol=1e-9)
  assert_close(state.H_diag, float(ts["H_diag"]), rtol=1e-8)
  assert_close(state.prev_loss, ts["prev_loss"], rtol=1e-9, atol=1e-14)
  # float64, but differences of nearly equal iterates (s, y, 1/y.s) amplify rounding: measured worst
  # 7.6e-10 relative over CONFIGS (fixed-lr-tol); dirs entries near 0 (4.6e-14 apart) need the atol
  assert_close(state.d, ts["d"].numpy(), rtol=1e-8, atol=1e-12)
  assert_close(_logical(state.old_stps, state), torch.stack(ts["old_stps"]).numpy(), rtol=1e-8, atol=1e-12)
  assert_close(_logical(state.old_dirs, state), torch.stack(ts["old_dirs"]).numpy(), rtol=1e-8, atol=1e-12)
  assert_close(np.asarray(state.ro)[[(int(state.history_start) + i) % state.ro.shape[0]
                                     for i in range(int(state.history_len))]],
               [float(r) for r in ts["ro"]], rtol=1e-8)


def test_single_iteration_is_a_scaled_gradient_step():
  # semantics.md §1.12: max_iter=1 gives exactly p - min(1, 1/||g||_1) * lr * g.
  fn = lambda p, lib=jnp: lib.sum(p["a"] ** 2) * 0.5 + lib.sum(p["b"] ** 2) * 0.05  # noqa: E731
  for start, lr in (({"a": np.array([3.0, -1.0]), "b": np.array([2.0])}, 0.7),      # ||g||_1 > 1
                    ({"a": np.array([0.1, -0.2]), "b": np.array([1.0])}, 2.0)):     # ||g||_1 < 1
    g = {"a": start["a"], "b": 0.1 * start["b"]}
    l1 = np.abs(g["a"]).sum() + np.abs(g["b"]).sum()
    (p,), _ = _run(1, start=start, fn=fn, lr=lr, max_iter=1)
    for k in g:
      assert_close(p[k], start[k] - min(1.0, 1.0 / l1) * lr * g[k], rtol=1e-15)


def test_quadratic_closure_evaluations_match_torch():
  fn = lambda p, lib=jnp: 0.5 * p["x"][0] ** 2 + 5.0 * p["x"][1] ** 2 + p["x"][0] * p["x"][1]  # noqa: E731
  for kw in ({}, {"line_search_fn": "strong_wolfe"}):
    (p,), state = _run(1, start={"x": np.array([1.0, 1.0])}, fn=fn, **kw)
    (tp,), ts = _run_torch(1, start={"x": np.array([1.0, 1.0])}, fn=fn, **kw)
    assert int(state.func_evals) == ts["func_evals"] and int(state.n_iter) == ts["n_iter"]
    assert_close(p["x"], tp["x"], rtol=1e-9, atol=1e-14)


def test_stops_before_iterating_when_the_gradient_is_below_tolerance():
  start = {"xy": np.array([1.0, 1.0]), "z": np.array([[1e-9, 0.0, -1e-9]])}  # max|g| ~ 2e-9 < 1e-7
  (p,), state = _run(1, start=start)
  _, ts = _run_torch(1, start=start)
  assert_close(p["z"], start["z"], rtol=0)
  assert int(state.n_iter) == 0 and int(state.func_evals) == 1
  assert ts["n_iter"] == 0 and ts["func_evals"] == 1


def test_value_is_computed_when_omitted():
  params = {k: jnp.asarray(v) for k, v in START.items()}
  tx = ll.optim.lbfgs(max_iter=4)
  grads = jax.grad(rosenbrock)(params)
  u1, _ = tx.update(grads, tx.init(params), params, value_fn=rosenbrock)
  u2, _ = tx.update(grads, tx.init(params), params, value=rosenbrock(params), value_fn=rosenbrock)
  jax.tree.map(lambda a, b: assert_close(a, b, rtol=0), u1, u2)


def test_jit_without_retrace_equals_eager_and_keeps_dtypes():
  params = {"xy": jnp.asarray(START["xy"], jnp.float32), "z": jnp.asarray(START["z"], jnp.float32)}
  tx = ll.optim.lbfgs(line_search_fn="strong_wolfe", max_iter=5, history_size=4)
  traces = []

  def step(p, s):
    value, grads = jax.value_and_grad(rosenbrock)(p)
    u, s = tx.update(grads, s, p, value=value, grad=grads, value_fn=rosenbrock)
    return optax.apply_updates(p, u), s

  def traced_step(p, s):
    traces.append(1)
    return step(p, s)

  jstep = jax.jit(traced_step)
  p, s = params, tx.init(params)
  pe, se = params, tx.init(params)
  for _ in range(3):
    p, s = jstep(p, s)
    pe, se = step(pe, se)
  assert len(traces) == 1
  assert p["z"].dtype == jnp.float32 and s.d.dtype == jnp.float32 and s.old_dirs.shape == (4, 5)
  # float32: jit and eager round differently, the line search amplifies it (measured 3.6e-7 absolute)
  jax.tree.map(lambda a, b: assert_close(a, b, rtol=1e-5, atol=1e-6), p, pe)


@pytest.mark.parametrize("kw,message", [
    ({"lr": -1.0}, "Invalid learning rate: -1.0"),
    ({"line_search_fn": "armijo"}, "lbfgs: expected line_search_fn None or 'strong_wolfe', got 'armijo'"),
    ({"max_iter": 0}, "lbfgs: expected `max_iter` to be an int >= 1, got 0"),
    ({"history_size": 2.5}, "lbfgs: expected `history_size` to be an int >= 1, got 2.5"),
])
def test_invalid_arguments(kw, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    ll.optim.lbfgs(**kw)


def test_update_needs_value_fn_and_params():
  params = {"x": jnp.zeros(2)}
  tx = ll.optim.lbfgs()
  state = tx.init(params)
  with pytest.raises(ValueError, match="lbfgs: expected `value_fn=loss_fn`"):
    tx.update(params, state, params, value=jnp.zeros([]))
  with pytest.raises(ValueError, match="lbfgs: expected the current parameters"):
    tx.update(params, state, value_fn=lambda p: jnp.sum(p["x"]))


def test_lr_schedule_is_read_once_per_update_like_a_torch_scheduler():
  lrs = [1.0, 0.5, 0.25]
  ours, _ = _run(3, lr=lambda count: 0.5**count, max_iter=4, history_size=3)
  params = {k: torch.tensor(v, requires_grad=True) for k, v in START.items()}
  opt = torch.optim.LBFGS(list(params.values()), lr=lrs[0], max_iter=4, history_size=3)

  def closure():
    opt.zero_grad()
    loss = rosenbrock(params, lib=torch)
    loss.backward()
    return loss

  for k, lr in enumerate(lrs):
    opt.param_groups[0]["lr"] = lr
    opt.step(closure)
    for n in params:
      assert_close(ours[k][n], params[n].detach().numpy(), rtol=1e-12, atol=1e-15)


def test_state_structure_survives_scan():
  params = {k: jnp.asarray(v) for k, v in START.items()}
  tx = ll.optim.lbfgs(max_iter=3, history_size=2)

  def body(carry, _):
    p, s = carry
    value, grads = jax.value_and_grad(rosenbrock)(p)
    u, s = tx.update(grads, s, p, value=value, value_fn=rosenbrock)
    return (optax.apply_updates(p, u), s), value

  (p, s), values = jax.lax.scan(body, (params, tx.init(params)), None, length=3)
  ours, state = _run(3, max_iter=3, history_size=2)
  jax.tree.map(lambda a, b: assert_close(a, b, rtol=1e-13), p, ours[-1])
  assert jax.tree.structure(s) == jax.tree.structure(state) and int(s.n_iter) == int(state.n_iter)

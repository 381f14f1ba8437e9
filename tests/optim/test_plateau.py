"""reduce_lr_on_plateau: semantics.md's examples by hand, torch's lr sequences, a jitted training
step with optax.chain against torch's loop, state stability, errors."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll

plateau = ll.optim.reduce_lr_on_plateau


def lrs_of(tx, metrics, *, jit=False):
  state = tx.init(jnp.zeros(()))
  update = jax.jit(tx.update) if jit else tx.update
  out = []
  for m in metrics:
    _, state = update(jnp.ones(()), state, value=m)
    out.append(float(state.lr))
  return out


def torch_lrs(metrics, lr=1.0, **kwargs):
  torch = pytest.importorskip("torch")
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
  out = []
  for m in metrics:
    sched.step(m)
    out.append(sched.get_last_lr()[0])
  return out


# --- semantics.md's examples, by hand --------------------------------------------------------------


def test_flat_metric_patience_2():
  assert lrs_of(plateau(patience=2), [1.0] * 7) == pytest.approx([1, 1, 1, .1, .1, .1, .01], rel=1e-15)


def test_min_lr_floors_the_lr():
  assert lrs_of(plateau(patience=0, factor=0.5, min_lr=0.05), [1.0] * 8) == [1, .5, .25, .125, .0625, .05, .05, .05]


def test_eps_guard_skips_tiny_reductions():
  # lr 0.01 -> 0.005 is a reduction of 0.005 <= eps = 0.01: skipped, the lr stays
  assert lrs_of(plateau(patience=0, factor=0.5, eps=0.01, base_lr=0.01), [1.0] * 4) == [0.01] * 4


def test_rel_mode_with_negative_metrics_accepts_slightly_worse_values():
  """semantics.md: best -10 -> -9.9995 counts as better (best * (1 - thr) is less negative)."""
  tx = plateau(patience=0, threshold=1e-4)
  state = tx.init(jnp.zeros(()))
  for m in (-10.0, -9.9995, -9.9991):
    _, state = tx.update(jnp.ones(()), state, value=m)
    assert float(state.best) == m and int(state.num_bad_epochs) == 0
  assert float(state.lr) == 1.0


def test_nan_metric_counts_as_bad():
  assert lrs_of(plateau(patience=1), [1.0, math.nan, math.nan, 0.5]) == [1.0, 1.0, 0.1, 0.1]


def test_cooldown_ignores_bad_epochs():
  tx = plateau(patience=0, cooldown=2, factor=0.5)
  assert lrs_of(tx, [1.0] * 8) == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_updates_are_scaled_by_lr_over_base_lr():
  tx = plateau(patience=0, factor=0.5, base_lr=0.2)
  state = tx.init({"w": jnp.zeros(3, jnp.float32)})
  u, state = tx.update({"w": jnp.full(3, 2.0, jnp.float32)}, state, value=1.0)
  u, state = tx.update({"w": jnp.full(3, 2.0, jnp.float32)}, state, value=1.0)
  assert u["w"].dtype == jnp.float32
  np.testing.assert_array_equal(u["w"], 1.0)  # lr 0.1 / base 0.2 = 0.5
  assert float(state.lr) == 0.1 and float(state.scale) == 0.5


# --- torch's sequences ------------------------------------------------------------------------------

CONFIGS = [
    ("min-rel", {"patience": 2}),
    ("min-abs-cooldown", {"patience": 1, "threshold": 0.05, "threshold_mode": "abs", "cooldown": 2}),
    ("max-rel", {"mode": "max", "patience": 1, "factor": 0.3}),
    ("max-abs-min_lr", {"mode": "max", "patience": 0, "threshold": 0.01, "threshold_mode": "abs", "min_lr": 0.02}),
    ("eps", {"patience": 0, "factor": 0.9, "eps": 0.05}),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_lr_sequence_is_torch_bitwise(name, kw, jit):
  rng = np.random.default_rng(7)
  metrics = [float(v) for v in 1.0 + 0.05 * rng.standard_normal(40) - 0.01 * np.arange(40)]
  metrics[13] = math.nan
  assert lrs_of(plateau(**kw, base_lr=0.5), metrics, jit=jit) == torch_lrs(metrics, lr=0.5, **kw)


# --- inside a jitted training step ------------------------------------------------------------------


def test_jitted_training_step_matches_torch_loop():
  """optax.chain(sgd, plateau), value=loss: the k-th step uses the lr torch has after step(loss_k)."""
  torch = pytest.importorskip("torch")
  x = np.linspace(-1, 1, 16)
  y = 0.3 * x + 0.1 * np.sin(7 * x)
  lr, kw = 0.5, {"patience": 1, "factor": 0.5, "threshold": 1e-2}

  def loss_fn(w):
    return jnp.mean((w[0] * x + w[1] - y) ** 2)

  tx = optax.chain(ll.optim.sgd(lr=lr, momentum=0.9), plateau(**kw, base_lr=lr))

  @jax.jit
  def step(w, state):
    loss, g = jax.value_and_grad(loss_fn)(w)
    u, state = tx.update(g, state, w, value=loss)
    return optax.apply_updates(w, u), state, loss

  w = jnp.zeros(2)
  state = tx.init(w)
  ours = []
  for _ in range(30):
    w, state, _ = step(w, state)
    ours.append(np.asarray(w))

  wt = torch.zeros(2, dtype=torch.float64, requires_grad=True)
  opt = torch.optim.SGD([wt], lr=lr, momentum=0.9)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)
  theirs = []
  for _ in range(30):
    opt.zero_grad()
    loss = torch.mean((wt[0] * xt + wt[1] - yt) ** 2)
    loss.backward()
    sched.step(loss.item())
    opt.step()
    theirs.append(wt.detach().numpy().copy())
  assert float(state[-1].lr) < lr  # the lr was reduced along the way
  np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_no_retrace_and_stable_state_through_scan():
  tx = plateau(patience=1)
  params = {"w": jnp.zeros(2, jnp.float32)}
  state = tx.init(params)
  traces = []

  @jax.jit
  def f(state, m):
    traces.append(1)
    return tx.update({"w": jnp.ones(2, jnp.float32)}, state, value=m)[1]

  for m in (3.0, 2.0, 2.5, 2.5):
    new = f(state, jnp.asarray(m))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), new) == jax.tree.map(lambda a: (a.shape, a.dtype), state)
    state = new
  assert len(traces) == 1
  assert isinstance(state, ll.optim.ReduceLROnPlateauState)
  assert state._fields == ("best", "num_bad_epochs", "cooldown_counter", "lr", "scale")

  def body(s, m):
    return tx.update({"w": jnp.ones(2, jnp.float32)}, s, value=m)[1], None

  final, _ = jax.lax.scan(body, tx.init(params), jnp.ones(6))
  assert float(final.lr) == pytest.approx(0.01)


def test_patience_is_optax_contrib_patience_minus_one():
  """semantics.md: torch patience p == optax.contrib.reduce_on_plateau patience p + 1 (flat metric)."""
  ours = lrs_of(plateau(patience=2), [1.0] * 9)
  tx = optax.contrib.reduce_on_plateau(factor=0.1, patience=3)
  state = tx.init(jnp.zeros(()))
  theirs = []
  for _ in range(9):
    _, state = tx.update(jnp.ones(()), state, value=jnp.asarray(1.0))
    theirs.append(float(state.scale))
  np.testing.assert_allclose(ours, theirs, rtol=1e-14)   # the same float64 products (measured equal)


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,message", [
    ({"factor": 1.0}, ValueError, "reduce_lr_on_plateau: expected `factor` < 1.0 (torch: Factor should be < 1.0.)"),
    ({"mode": "maximum"}, ValueError, "reduce_lr_on_plateau: expected `mode` 'min' or 'max', got 'maximum'"),
    ({"threshold_mode": "percent"}, ValueError, "expected `threshold_mode` 'rel' or 'abs', got 'percent'"),
    ({"patience": -1}, ValueError, "expected `patience` to be a non-negative integer, got -1"),
    ({"cooldown": 1.5}, ValueError, "expected `cooldown` to be a non-negative integer, got 1.5"),
    ({"min_lr": [0.1]}, TypeError, "expected `min_lr` to be a float"),
    ({"base_lr": 0.0}, ValueError, "expected `base_lr` > 0"),
], ids=["factor", "mode", "threshold_mode", "patience", "cooldown", "min_lr-list", "base_lr"])
def test_bad_arguments(kwargs, error, message):
  with pytest.raises(error, match=re.escape(message)):
    plateau(**kwargs)


def test_update_needs_a_scalar_value():
  tx = plateau()
  state = tx.init(jnp.zeros(()))
  with pytest.raises(ValueError, match=re.escape("reduce_lr_on_plateau: expected the metric as")):
    tx.update(jnp.ones(()), state)
  with pytest.raises(ValueError, match=re.escape("expected a scalar metric `value`, got shape (2,)")):
    tx.update(jnp.ones(()), state, value=jnp.ones(2))

"""weighted_sum and uncertainty_weighting: hand values, optimum of the learned log-variances, and why a
learnable scale times the loss collapses (trained here with optax and watched going to 0, then below)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

L = ll.losses
f64 = jnp.float64


def test_weighted_sum_forms():
  assert_close(L.weighted_sum([2.0, 0.5], [1.0, 4.0]), 4.0)
  assert_close(L.weighted_sum(jnp.asarray([2.0, 0.5], f64), jnp.asarray([1.0, 4.0], f64)), 4.0)
  assert_close(L.weighted_sum({"a": 2.0, "b": 0.5}, {"b": 4.0, "a": 1.0}), 4.0)
  with pytest.raises(ValueError, match="keys"):
    L.weighted_sum({"a": 2.0}, {"b": 1.0})
  with pytest.raises(TypeError, match="mapping"):
    L.weighted_sum({"a": 2.0}, [1.0])
  with pytest.raises(ValueError, match="as many"):
    L.weighted_sum([1.0, 2.0], [1.0])
  with pytest.raises(ValueError, match="scalar"):
    L.weighted_sum([jnp.ones(3)], [1.0])


def test_uncertainty_weighting_values():
  l = jnp.asarray([2.0, 0.5], f64)
  s = jnp.asarray([0.3, -1.0], f64)
  assert_close(L.uncertainty_weighting(l, s), np.exp(-0.3) * 2 + 0.3 + np.exp(1.0) * 0.5 - 1.0, rtol=1e-14)
  # the paper's terms: regression 1/2 e^-s L + s/2, classification e^-s L + s/2
  assert_close(L.uncertainty_weighting(l, s, task_types=("regression", "classification")),
               0.5 * np.exp(-0.3) * 2 + 0.15 + np.exp(1.0) * 0.5 - 0.5, rtol=1e-14)
  with pytest.raises(ValueError, match="task_types"):
    L.uncertainty_weighting(l, s, task_types=("regression",))
  nan = L.uncertainty_weighting(l.at[0].set(jnp.nan), s)
  g = jax.grad(lambda s: L.uncertainty_weighting(l.at[0].set(jnp.nan), s))(s)
  assert np.isnan(nan) and np.isnan(g[0])
  assert L.uncertainty_weighting(l.astype(jnp.bfloat16), s.astype(jnp.bfloat16)).dtype == jnp.bfloat16
  assert_close(jax.jit(L.uncertainty_weighting)(l, s), L.uncertainty_weighting(l, s), rtol=1e-15)


def _train(loss_fn, params, steps=300, lr=0.05):
  tx = optax.adam(lr)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    g = jax.grad(loss_fn)(params)
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state

  for _ in range(steps):
    params, state = step(params, state)
  return params


def test_learned_log_variances_reach_their_optimum():
  # fixed task losses: the optimum of e^-s L + s is s = log L (weight 1/L); with the paper's
  # classification term e^-s L + s/2 it is s = log(2L)
  l = jnp.asarray([4.0, 0.25], f64)
  s = _train(lambda s: L.uncertainty_weighting(l, s), jnp.zeros(2, f64), steps=600)
  assert_close(s, np.log([4.0, 0.25]), atol=1e-3)   # 600 optimizer steps reach the optimum to ~1e-3
  s = _train(lambda s: L.uncertainty_weighting(l, s, task_types=("regression", "classification")),
             jnp.zeros(2, f64), steps=600)
  assert_close(s, [np.log(4.0), np.log(0.5)], atol=1e-3)


def test_model_and_log_vars_train_together_in_one_optax_chain():
  # two regression tasks on one scalar parameter with different noise: the weights adapt
  params = {"theta": jnp.asarray(0.0, f64), "log_vars": jnp.zeros(2, f64)}

  def loss(p):
    task = jnp.stack([(p["theta"] - 1.0) ** 2 + 1.0, (p["theta"] - 3.0) ** 2 + 0.01])
    return L.uncertainty_weighting(task, p["log_vars"])

  out = _train(loss, params, steps=800)
  # the low-noise task (floor 0.01) wins: theta ends near 3, its weight e^-s is the larger one
  assert abs(float(out["theta"]) - 3.0) < 0.2
  assert float(out["log_vars"][1]) < float(out["log_vars"][0])


def test_learnable_scale_times_loss_collapses():
  """The seed's ``self.weight * loss`` with a trainable weight: d/dw (w L) = L > 0 always, so gradient
  descent drives w to 0 and then negative without bound, after which the model *ascends* its loss."""
  params = {"theta": jnp.asarray(0.0, f64), "w": jnp.asarray(1.0, f64)}

  def loss(p):
    return p["w"] * ((p["theta"] - 3.0) ** 2 + 0.5)

  tx = optax.sgd(0.01)
  state = tx.init(params)
  ws, task = [], []
  for _ in range(40):
    g = jax.grad(loss)(params)
    u, state = tx.update(g, state)
    params = optax.apply_updates(params, u)
    ws.append(float(params["w"]))
    task.append(float((params["theta"] - 3.0) ** 2 + 0.5))
  ws = np.array(ws)
  assert np.all(np.diff(ws) < 0)  # w decreases at every step (its gradient is the positive loss)
  assert ws[-1] < 0  # ... through 0 and below
  first_negative = int(np.argmax(ws < 0))
  assert 0 < first_negative < 39
  assert task[-1] > task[first_negative]  # once w < 0 the model makes its task loss worse
  assert np.isfinite(task).all()

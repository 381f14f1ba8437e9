"""The analysis tools on a flax.nnx model passed as users pass it: only nnx.Param is analysed.

A BatchNorm model passed directly used to have its running statistics perturbed (a negative running
variance gave NaN landscape points) and differentiated (``bn/mean`` and ``bn/var`` reported as
layers). Expected values come from ``nnx.grad`` / ``jax.hessian`` on the parameters alone and numpy.
"""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx   # flax is a core dependency of losslab_jax

import losslab_jax as ll

F64 = jnp.float64


class _BNNet(nnx.Module):
  def __init__(self):
    rngs = nnx.Rngs(0)
    self.lin = nnx.Linear(3, 2, rngs=rngs, param_dtype=F64)
    self.bn = nnx.BatchNorm(2, use_running_average=True, rngs=rngs, param_dtype=F64)
    self.out = nnx.Linear(2, 1, rngs=rngs, param_dtype=F64)
    # running statistics a perturbation would push below zero (var) or treat as weights
    self.bn.mean[...] = jnp.asarray([0.3, -0.2], self.bn.mean[...].dtype)
    self.bn.var[...] = jnp.asarray([0.05, 0.02], self.bn.var[...].dtype)

  def __call__(self, x):
    return self.out(self.bn(self.lin(x)))


def _data():
  rng = np.random.default_rng(0)
  return jnp.asarray(rng.normal(size=(8, 3)), F64), jnp.asarray(rng.normal(size=(8, 1)), F64)


def _loss(model, x, y):
  return jnp.mean((model(x) - y) ** 2)


PARAM_NAMES = ["bn/bias", "bn/scale", "lin/bias", "lin/kernel", "out/bias", "out/kernel"]


def _stats(model):
  return np.asarray(model.bn.mean[...]).copy(), np.asarray(model.bn.var[...]).copy()


def test_gradient_flow_reports_parameters_only():
  model, (x, y) = _BNNet(), _data()
  before = _stats(model)
  res = ll.analysis.gradient_flow(_loss, model, x, y)
  assert sorted(res.gradient_stats) == PARAM_NAMES
  grads = nnx.grad(_loss)(model, x, y)   # differentiates nnx.Param only
  np.testing.assert_allclose(float(res.gradient_stats["lin/kernel"].norm),
                             np.linalg.norm(np.asarray(grads["lin"]["kernel"][...])), rtol=1e-12)
  total = np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in jax.tree.leaves(grads)))
  np.testing.assert_allclose(float(res.total_gradient_norm), total, rtol=1e-12)
  np.testing.assert_allclose(float(res.loss_value), float(_loss(model, x, y)), rtol=1e-14)
  np.testing.assert_array_equal(_stats(model)[0], before[0])
  np.testing.assert_array_equal(_stats(model)[1], before[1])


def test_loss_landscape_perturbs_parameters_only():
  model, (x, y) = _BNNet(), _data()
  before = _stats(model)
  res = ll.analysis.loss_landscape(_loss, model, x, y, key=jax.random.key(1), num_points=5, span=1.0)
  assert bool(jnp.all(jnp.isfinite(res.losses)))           # a perturbed running variance gave NaN
  np.testing.assert_allclose(float(res.losses[2]), float(_loss(model, x, y)), rtol=1e-14)
  (d,) = res.directions
  assert sorted(ll.analysis._common.leaf_names(d)) == PARAM_NAMES
  # the point at alpha = 1 is the model with theta + d, running statistics as they were
  shifted = nnx.clone(model)
  params = nnx.state(shifted, nnx.Param)
  nnx.update(shifted, jax.tree.map(lambda p, e: p + e, params, d))
  np.testing.assert_allclose(float(res.losses[4]), float(_loss(shifted, x, y)), rtol=1e-12)
  np.testing.assert_array_equal(_stats(model)[0], before[0])
  np.testing.assert_array_equal(_stats(model)[1], before[1])


def test_sharpness_is_the_parameter_hessians_top_eigenvalue():
  model, (x, y) = _BNNet(), _data()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  hessian = jax.hessian(lambda v: _loss(nnx.merge(graphdef, unravel(v), rest), x, y))(flat)
  eig = np.linalg.eigvalsh(np.asarray(hessian))
  top = eig[np.argmax(np.abs(eig))]
  res = ll.analysis.sharpness(_loss, model, x, y, iters=100)
  # eigenvalues 127.3, 91.5, -26.8: after 100 steps the error (0.72^100 of the start) is at rounding level
  np.testing.assert_allclose(float(res.max_eigenvalue), top, rtol=1e-10)
  assert sorted(ll.analysis._common.leaf_names(res.eigenvector)) == PARAM_NAMES


def test_lr_range_test_trains_parameters_only():
  model, (x, y) = _BNNet(), _data()
  before = _stats(model)
  k_steps, lo, hi = 6, 1e-3, 1e-1
  res = ll.analysis.lr_range_test(lambda m, b: _loss(m, *b), model, (x[None], y[None]),
                                  min_lr=lo, max_lr=hi, num_steps=k_steps, skip_start=1, skip_end=1)
  # reference: plain SGD on the parameters, running statistics fixed; losses[k] is before step k
  ref, expected = nnx.clone(model), []
  for k in range(k_steps):
    lr = lo * (hi / lo) ** (k / (k_steps - 1))
    loss, grads = nnx.value_and_grad(_loss)(ref, x, y)
    expected.append(float(loss))
    params = nnx.state(ref, nnx.Param)
    nnx.update(ref, jax.tree.map(lambda p, g: p - lr * g, params, grads))
  np.testing.assert_allclose(np.asarray(res.losses), expected, rtol=1e-10)
  np.testing.assert_array_equal(_stats(model)[0], before[0])
  np.testing.assert_array_equal(_stats(model)[1], before[1])


def test_a_state_with_batch_statistics_is_refused():
  model, (x, y) = _BNNet(), _data()
  state = nnx.state(model)
  with pytest.raises(TypeError, match=r"gradient_flow: `params` holds a BatchStat variable at bn/mean.*"
                                      r"pass the nnx module itself"):
    ll.analysis.gradient_flow(lambda s, x, y: 0.0, state, x, y)
  with pytest.raises(TypeError, match=r"loss_landscape: `params` holds a BatchStat"):
    ll.analysis.loss_landscape(lambda s, x, y: 0.0, state, x, y, key=jax.random.key(0))
  # the parameters alone are fine
  params = nnx.state(model, nnx.Param)
  res = ll.analysis.gradient_flow(lambda p, x: jnp.sum(p["lin"]["kernel"][...] * x[0, 0]), params, x)
  np.testing.assert_allclose(float(res.gradient_stats["lin/kernel"].norm), np.sqrt(6) * abs(float(x[0, 0])),
                             rtol=1e-14)

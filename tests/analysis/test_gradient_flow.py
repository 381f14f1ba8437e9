"""gradient_flow against numpy statistics of jax.grad's arrays, and hand math."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losslab_jax import analysis
from tests.helpers import assert_close, rng


def _loss(p, x, y):
  h = jnp.tanh(x @ p["dense"]["kernel"] + p["dense"]["bias"][None])
  return jnp.mean((h @ p["head"]["kernel"] - y) ** 2) + 0.0 * jnp.sum(p["unused"])


def _params(r):
  return {"dense": {"kernel": jnp.asarray(r.standard_normal((4, 6)), jnp.float64),
                    "bias": jnp.asarray(r.standard_normal(6), jnp.float64)},
          "head": {"kernel": jnp.asarray(r.standard_normal((6, 3)), jnp.float64)},
          "unused": jnp.ones(2, jnp.float64)}


def test_statistics_equal_numpy_on_jax_grad_arrays():
  r = rng(0)
  params, x, y = _params(r), r.standard_normal((10, 4)), r.standard_normal((10, 3))
  res = analysis.gradient_flow(_loss, params, x, y)
  grads = jax.grad(_loss)(params, x, y)
  expected = {"dense/kernel": grads["dense"]["kernel"], "dense/bias": grads["dense"]["bias"],
              "head/kernel": grads["head"]["kernel"], "unused": grads["unused"]}
  assert set(res.gradient_stats) == set(expected)
  for name, g in expected.items():
    g, s = np.asarray(g), res.gradient_stats[name]
    assert_close(s.norm, np.linalg.norm(g), rtol=1e-12, err_msg=name)
    assert_close(s.mean, np.mean(g), rtol=1e-12, atol=1e-300, err_msg=name)
    assert_close(s.std, np.std(g), rtol=1e-12, err_msg=name)
    assert_close(s.max_abs, np.max(np.abs(g)), rtol=1e-12, err_msg=name)
    assert s.shape == g.shape
  total = np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in expected.values()))
  assert_close(res.total_gradient_norm, total, rtol=1e-12)
  assert_close(res.loss_value, _loss(params, x, y), rtol=1e-14)


def test_hand_math_and_flags():
  # grad of sum(w^2) is 2w = [6, 8]; b gets no gradient; c gets 1e4 per entry
  params = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([1.0, 2.0, 3.0]), "c": jnp.ones((2, 2))}
  loss = lambda p: jnp.sum(p["w"] ** 2) + 0.0 * jnp.sum(p["b"]) + 1e4 * jnp.sum(p["c"])  # noqa: E731
  res = analysis.gradient_flow(loss, params)
  w = res.gradient_stats["w"]
  assert (float(w.norm), float(w.mean), float(w.std), float(w.max_abs)) == (10.0, 7.0, 1.0, 8.0)
  assert float(res.gradient_stats["c"].norm) == 2e4  # sqrt(4 * 1e8)
  assert_close(res.total_gradient_norm, np.sqrt(100.0 + 4e8), rtol=1e-14)
  assert float(res.loss_value) == 25.0 + 4e4
  assert res.vanishing_layers() == ["b"] and res.exploding_layers() == ["c"]
  assert (int(res.num_vanishing), int(res.num_exploding)) == (1, 1)
  strict = analysis.gradient_flow(loss, params, vanishing_threshold=11.0, exploding_threshold=1e5)
  assert strict.vanishing_layers() == ["b", "w"] and strict.exploding_layers() == []
  assert strict.vanishing_threshold == 11.0


def test_jits_without_retrace_and_bf16_stats_in_float32():
  traces = []

  def loss(p, x):
    traces.append(1)
    return jnp.sum(jnp.sin(x @ p))

  r = rng(1)
  x = jnp.asarray(r.standard_normal((3, 4)), jnp.float32)
  analysis.gradient_flow(loss, jnp.ones(4, jnp.float32), x)
  n = len(traces)
  analysis.gradient_flow(loss, jnp.full(4, 2.0, jnp.float32), 2 * x)
  assert len(traces) == n
  res = jax.jit(lambda p: analysis.gradient_flow(lambda q: jnp.sum(q.astype(jnp.float32) ** 2), p))(
      jnp.ones(3, jnp.bfloat16))
  assert res.gradient_stats["params"].norm.dtype == jnp.float32
  assert_close(res.gradient_stats["params"].norm, np.sqrt(12.0), rtol=1e-6)  # float32 statistics of bf16


def test_bad_inputs_raise():
  loss = lambda p: jnp.sum(p)  # noqa: E731
  with pytest.raises(TypeError, match="gradient_flow: expected every leaf of `params` to be floating"):
    analysis.gradient_flow(loss, {"a": jnp.ones(2), "n": jnp.ones(2, jnp.int32)})
  with pytest.raises(ValueError, match="vanishing_threshold"):
    analysis.gradient_flow(loss, jnp.ones(2), vanishing_threshold=-1.0)
  with pytest.raises(ValueError, match="vanishing_threshold <= exploding_threshold"):
    analysis.gradient_flow(loss, jnp.ones(2), vanishing_threshold=10.0, exploding_threshold=1.0)
  with pytest.raises(ValueError, match="empty"):
    analysis.gradient_flow(loss, {})

"""loss_landscape against numpy: the centre is the loss, quadratic slices are parabolas, filter norms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losslab_jax import analysis
from tests.helpers import assert_close, rng


def _mlp_params(r):
  return {
      "dense": {"kernel": jnp.asarray(r.standard_normal((4, 5)), jnp.float64),
                "bias": jnp.asarray(r.standard_normal(5), jnp.float64)},
      "head": {"kernel": jnp.asarray(r.standard_normal((5, 2)), jnp.float64),
               "bias": jnp.asarray(r.standard_normal(2), jnp.float64)},
  }


def _mlp_loss(p, x, y):
  h = jnp.tanh(x @ p["dense"]["kernel"] + p["dense"]["bias"][None])
  return jnp.mean((h @ p["head"]["kernel"] + p["head"]["bias"][None] - y) ** 2)


def _mlp_loss_numpy(p, x, y):
  p = jax.tree.map(np.asarray, p)
  h = np.tanh(x @ p["dense"]["kernel"] + p["dense"]["bias"][None])
  return np.mean((h @ p["head"]["kernel"] + p["head"]["bias"][None] - y) ** 2)


def _quadratic(r, n):
  q, _ = np.linalg.qr(r.standard_normal((n, n)))
  a = q @ np.diag(np.linspace(0.5, 4.0, n)) @ q.T
  c = r.standard_normal(n)
  return a, c, lambda w: 0.5 * (w - c) @ jnp.asarray(a) @ (w - c)


def _numpy_quadratic(a, c, w):
  return 0.5 * (w - c) @ a @ (w - c)


@pytest.mark.parametrize("dims, normalize", [(1, "filter"), (2, None)])
def test_centre_equals_loss(dims, normalize):
  r = rng(0)
  params = _mlp_params(r)
  x, y = r.standard_normal((8, 4)), r.standard_normal((8, 2))
  res = analysis.loss_landscape(_mlp_loss, params, x, y, key=jax.random.key(1), num_points=7, dims=dims,
                                normalize=normalize)
  expected = _mlp_loss_numpy(params, x, y)
  assert_close(res.current_loss, expected, rtol=1e-12)
  assert_close(res.losses[(3,) * dims], expected, rtol=1e-12)
  assert float(res.alphas[3]) == 0.0
  assert res.losses.shape == (7,) * dims


@pytest.mark.parametrize("normalize", ["filter", None])
def test_1d_quadratic_slice_is_the_parabola(normalize):
  r = rng(1)
  a, c, loss = _quadratic(r, 6)
  w = jnp.asarray(r.standard_normal(6), jnp.float64)
  res = analysis.loss_landscape(loss, w, key=jax.random.key(2), num_points=9, span=2.0, normalize=normalize)
  d = np.asarray(res.directions[0])
  if normalize is not None:  # a 1-D leaf is one filter: rescaled to ||w||
    assert_close(np.linalg.norm(d), np.linalg.norm(np.asarray(w)), rtol=1e-12)
  alphas = np.linspace(-2.0, 2.0, 9)
  assert_close(res.alphas, alphas, rtol=1e-14, atol=1e-15)
  w0 = np.asarray(w)
  g = a @ (w0 - c)
  parabola = _numpy_quadratic(a, c, w0) + alphas * (g @ d) + 0.5 * alphas**2 * (d @ a @ d)
  assert_close(res.losses, parabola, rtol=1e-11)
  # the second difference of a parabola is exact: d^T A d
  assert_close(res.curvature, [d @ a @ d], rtol=1e-9)  # (f+ - 2 f0 + f-) / h^2: cancellation, ~eps f / (h^2 dAd)


def test_2d_quadratic_surface_and_statistics():
  r = rng(2)
  a, c, loss = _quadratic(r, 5)
  w = np.asarray(r.standard_normal(5))
  res = analysis.loss_landscape(loss, jnp.asarray(w), key=jax.random.key(3), num_points=5, dims=2,
                                normalize="layer", span=0.5)
  d1, d2 = (np.asarray(d) for d in res.directions)
  grid = np.linspace(-0.5, 0.5, 5)
  expected = np.array([[_numpy_quadratic(a, c, w + s * d1 + t * d2) for t in grid] for s in grid])
  assert_close(res.losses, expected, rtol=1e-11)
  assert_close(res.betas, grid, rtol=1e-14, atol=1e-15)
  assert_close(res.loss_std, np.std(expected), rtol=1e-10)
  assert_close(res.loss_variance, np.var(expected), rtol=1e-10)
  assert_close(res.loss_range, np.ptp(expected), rtol=1e-10)
  assert_close(res.loss_min, expected.min(), rtol=1e-12)
  assert_close(res.loss_max, expected.max(), rtol=1e-12)
  f0 = _numpy_quadratic(a, c, w)
  assert_close(res.sharpness, (expected.max() - f0) / (1 + abs(f0)), rtol=1e-10)
  assert_close(res.curvature, [d1 @ a @ d1, d2 @ a @ d2], rtol=1e-8)  # second difference at h = 0.25: cancellation


def _flat_filters(x, axis):
  x = np.moveaxis(np.asarray(x), axis, 0)
  return x.reshape(x.shape[0], -1)


def _filter_norms(x, axis):
  return np.linalg.norm(_flat_filters(x, axis), axis=1)


@pytest.mark.parametrize("filter_axis", [-1, 0])
def test_filter_normalisation_matches_params_filter_norms(filter_axis):
  r = rng(3)
  params = {"conv": jnp.asarray(r.standard_normal((3, 3, 2, 4)), jnp.float64),
            "dense": jnp.asarray(r.standard_normal((6, 4)), jnp.float64),
            "bias": jnp.asarray(r.standard_normal(4), jnp.float64),
            "scale": jnp.asarray(2.5, jnp.float64)}
  raw = jax.tree.map(lambda v: jnp.asarray(r.standard_normal(v.shape)), params)
  d = analysis.filter_normalize(raw, params, filter_axis=filter_axis)
  for name in ("conv", "dense"):
    assert_close(_filter_norms(d[name], filter_axis), _filter_norms(params[name], filter_axis), rtol=1e-12)
    # only rescaled: each filter keeps its direction
    cos = np.sum(_flat_filters(d[name], filter_axis) * _flat_filters(raw[name], filter_axis), axis=1)
    assert_close(cos, _filter_norms(d[name], filter_axis) * _filter_norms(raw[name], filter_axis), rtol=1e-12)
  # 1-D and 0-D leaves are normalised as one filter
  assert_close(np.linalg.norm(d["bias"]), np.linalg.norm(params["bias"]), rtol=1e-12)
  assert_close(abs(float(d["scale"])), 2.5, rtol=1e-12)


def test_landscape_uses_filter_normalised_directions():
  r = rng(3)
  params = {"conv": jnp.asarray(r.standard_normal((3, 3, 2, 4)), jnp.float64),
            "bias": jnp.asarray(r.standard_normal(4), jnp.float64)}
  res = analysis.loss_landscape(lambda p: jnp.sum(p["conv"] ** 2) + jnp.sum(p["bias"]), params,
                                key=jax.random.key(4), num_points=3)
  d = res.directions[0]
  assert_close(_filter_norms(d["conv"], -1), _filter_norms(params["conv"], -1), rtol=1e-12)
  assert_close(np.linalg.norm(d["bias"]), np.linalg.norm(params["bias"]), rtol=1e-12)


def test_layer_normalisation_and_ignore_biasbn():
  r = rng(4)
  params = {"w": jnp.asarray(r.standard_normal((5, 3)), jnp.float64),
            "b": jnp.asarray(r.standard_normal(3), jnp.float64)}
  raw = jax.tree.map(lambda v: jnp.asarray(r.standard_normal(v.shape)), params)
  d = analysis.filter_normalize(raw, params, normalize="layer", ignore_biasbn=True)
  assert_close(np.linalg.norm(d["w"]), np.linalg.norm(params["w"]), rtol=1e-12)
  np.testing.assert_array_equal(d["b"], np.zeros(3))
  # normalize=None leaves the Gaussian draw alone: unit variance, not the params' scale
  big = {"w": jnp.full((200, 100), 50.0, jnp.float64)}
  raw = analysis.loss_landscape(lambda p: jnp.sum(p["w"]), big, key=jax.random.key(0), num_points=3,
                                normalize=None).directions[0]["w"]
  assert abs(float(jnp.mean(raw**2)) - 1.0) < 0.05


def test_zero_filter_in_params_gives_zero_direction():
  params = jnp.asarray(np.array([[1.0, 0.0], [2.0, 0.0]]), jnp.float64)  # second output filter is 0
  d = analysis.filter_normalize(jnp.ones((2, 2), jnp.float64), params)
  np.testing.assert_array_equal(np.asarray(d)[:, 1], [0.0, 0.0])
  assert_close(np.asarray(d)[:, 0], np.sqrt([2.5, 2.5]), rtol=1e-12)


def test_one_vmapped_jitted_call_without_retrace():
  traces = []

  def loss(p, x):
    traces.append(1)  # runs once per trace, never per grid point
    return jnp.sum((x @ p) ** 2)

  r = rng(5)
  x = jnp.asarray(r.standard_normal((3, 4)), jnp.float64)
  p1, p2 = (jnp.asarray(r.standard_normal(4), jnp.float64) for _ in range(2))
  res1 = analysis.loss_landscape(loss, p1, x, key=jax.random.key(0), num_points=21, dims=2)
  first = len(traces)
  assert first <= 2  # the centre and the vmapped grid: not 21 * 21 Python calls
  res2 = analysis.loss_landscape(loss, p2, 2 * x, key=jax.random.key(1), num_points=21, dims=2, span=0.3)
  assert len(traces) == first  # new values, same shapes: no retrace
  assert not np.allclose(res1.losses, res2.losses)
  # the user's own jit over the whole call gives the same numbers
  jitted = jax.jit(functools.partial(analysis.loss_landscape, loss, num_points=21, dims=2))
  assert_close(jitted(p2, 2 * x, key=jax.random.key(1), span=0.3).losses, res2.losses, rtol=1e-12)


def test_batched_grid_equals_full_vmap_and_int_leaves_stay_fixed():
  r = rng(6)
  params = {"w": jnp.asarray(r.standard_normal((3, 2)), jnp.float64), "n": jnp.asarray(3, jnp.int32)}
  loss = lambda p: jnp.sum(jnp.sin(p["w"])) * p["n"]  # noqa: E731
  full = analysis.loss_landscape(loss, params, key=jax.random.key(7), num_points=9, dims=2)
  chunked = analysis.loss_landscape(loss, params, key=jax.random.key(7), num_points=9, dims=2,
                                    batch_size=10)
  assert_close(chunked.losses, full.losses, rtol=1e-13)
  assert int(full.directions[0]["n"]) == 0


def test_result_is_a_pytree():
  res = analysis.loss_landscape(lambda w: jnp.sum(w**2), jnp.ones(3), key=jax.random.key(0), num_points=5)
  doubled = jax.tree.map(lambda v: 2 * v, res)
  assert isinstance(doubled, analysis.LandscapeResult) and doubled.dims == 1
  assert_close(doubled.current_loss, 2 * res.current_loss)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_points=10), "num_points"),
    (dict(num_points=1), "num_points"),
    (dict(dims=3), "dims"),
    (dict(normalize="global"), "normalize"),
    (dict(span=0.0), "span"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_options_raise(kwargs, match):
  with pytest.raises(ValueError, match=f"loss_landscape: expected `{match}`"):
    analysis.loss_landscape(lambda w: jnp.sum(w**2), jnp.ones(3), key=jax.random.key(0), **kwargs)


def test_non_scalar_loss_and_integer_params_raise():
  with pytest.raises(ValueError, match="scalar"):
    analysis.loss_landscape(lambda w: w**2, jnp.ones(3), key=jax.random.key(0), num_points=3)
  with pytest.raises(TypeError, match="floating"):
    analysis.loss_landscape(lambda w: jnp.sum(w), jnp.ones(3, jnp.int32), key=jax.random.key(0))


def test_unhashable_loss_callable_still_works():
  class Loss:  # defines __eq__ without __hash__: cannot be a static jit argument
    def __eq__(self, other):
      return isinstance(other, Loss)

    def __call__(self, w):
      return jnp.sum(w**2)

  res = analysis.loss_landscape(Loss(), jnp.array([3.0], jnp.float64), key=jax.random.key(0), num_points=5)
  assert_close(res.losses, 9.0 * (1 + np.linspace(-1, 1, 5)) ** 2 if float(res.directions[0][0]) > 0
               else 9.0 * (1 - np.linspace(-1, 1, 5)) ** 2, rtol=1e-14)

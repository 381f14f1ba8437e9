"""triplet_margin_with_distance_loss: hand values, the default distance, swap, NaN, errors.

torch facts (torch 2.14): the default distance is ``pairwise_distance`` (eps 1e-6 added to the
difference); ``clamp_min`` has gradient 0 at the kink; margin <= 0 raises.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

L = ll.losses
f64 = jnp.float64


def _l1(a, b):
  return jnp.sum(jnp.abs(a - b), axis=-1)


def test_hand_values_with_a_user_distance_and_swap():
  a = jnp.asarray([[0.0, 0.0], [0.0, 0.0]], f64)
  p = jnp.asarray([[0.0, 1.0], [0.0, 3.0]], f64)
  n = jnp.asarray([[1.5, 0.0], [0.0, 3.5]], f64)
  # L1: d(a,p) = 1, 3; d(a,n) = 1.5, 3.5; d(p,n) = 2.5, 0.5
  out = L.triplet_margin_with_distance_loss(a, p, n, distance_function=_l1, reduction="none")
  assert_close(out, [0.5, 0.5])
  swapped = L.triplet_margin_with_distance_loss(a, p, n, distance_function=_l1, swap=True, reduction="none")
  assert_close(swapped, [0.5, 1 + 3 - 0.5])
  assert_close(L.triplet_margin_with_distance_loss(a, p, n, distance_function=_l1, margin=2.0), (1.5 + 1.5) / 2)


def test_default_is_pairwise_distance_with_eps():
  rng = np.random.default_rng(0)
  a, p, n = (jnp.asarray(rng.standard_normal((5, 3))) for _ in range(3))
  d = lambda u, v: np.linalg.norm(np.asarray(u) - np.asarray(v) + 1e-6, axis=-1)
  want = np.maximum(1.0 + d(a, p) - d(a, n), 0.0)
  assert_close(L.triplet_margin_with_distance_loss(a, p, n, reduction="none"), want, rtol=1e-13)
  # identical anchor and positive: distance eps * sqrt(D), gradient finite
  g = jax.grad(lambda x: L.triplet_margin_with_distance_loss(x, x, n))(a)
  assert np.isfinite(g).all()


def test_kink_gradient_zero_and_nan_kept():
  a = jnp.asarray([[0.0]], f64)
  p = jnp.asarray([[1.0]], f64)
  n = jnp.asarray([[2.0]], f64)  # margin + 1 - 2 = 0 with margin 1
  g = jax.grad(lambda x: L.triplet_margin_with_distance_loss(x, p, n, distance_function=_l1))(a)
  assert_close(g, [[0.0]])
  bad = a.at[0, 0].set(jnp.nan)
  v, g = jax.value_and_grad(lambda x: L.triplet_margin_with_distance_loss(x, p, n))(bad)
  assert np.isnan(v) and np.isnan(g).all()
  v, g = jax.value_and_grad(lambda x: L.triplet_margin_with_distance_loss(x, p, n, distance_function=_l1))(bad)
  assert np.isnan(v) and np.isnan(g).all()


def test_jit_vmap_dtypes():
  rng = np.random.default_rng(1)
  a, p, n = (jnp.asarray(rng.standard_normal((3, 4, 2))) for _ in range(3))
  f = lambda a, p, n: L.triplet_margin_with_distance_loss(a, p, n, distance_function=_l1, swap=True)
  assert_close(jax.jit(f)(a[0], p[0], n[0]), f(a[0], p[0], n[0]), rtol=1e-14)
  assert_close(jax.vmap(f)(a, p, n), [f(a[i], p[i], n[i]) for i in range(3)], rtol=1e-14)
  for dt in (jnp.bfloat16, jnp.float32, jnp.float64):
    out = L.triplet_margin_with_distance_loss(a[0].astype(dt), p[0].astype(dt), n[0].astype(dt))
    assert out.dtype == dt


def test_errors():
  x = jnp.zeros((2, 3), f64)
  with pytest.raises(ValueError, match="margin"):
    L.triplet_margin_with_distance_loss(x, x, x, margin=0.0)
  with pytest.raises(ValueError, match="number of dimensions"):
    L.triplet_margin_with_distance_loss(x, x, x[0])
  with pytest.raises(TypeError, match="floating"):
    L.triplet_margin_with_distance_loss(x, x, jnp.zeros((2, 3), jnp.int32))
  with pytest.raises(ValueError, match="reduction"):
    L.triplet_margin_with_distance_loss(x, x, x, reduction="avg")

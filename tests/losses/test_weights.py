"""class_weights against a numpy reference; absent classes, jit, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close, rng

CW = ll.losses.class_weights


def _np_class_weights(labels, k):
  counts = np.bincount(np.ravel(labels), minlength=k).astype(np.float64)
  with np.errstate(divide="ignore"):
    return np.size(labels) / (k * counts)


@pytest.mark.parametrize("shape,k", [((50,), 3), ((4, 25), 7), ((1,), 1)])
def test_matches_numpy_reference(shape, k):
  y = rng(0).integers(0, k, shape)
  assert_close(CW(jnp.asarray(y, jnp.int32), k), _np_class_weights(y, k), rtol=1e-15)


def test_hand_value_and_balance_identity():
  y = jnp.array([0, 1, 2, 2, 3, 3, 3, 3])
  w = CW(y, 4)
  assert_close(w, [2.0, 2.0, 1.0, 0.5])
  assert_close(jnp.sum(w * jnp.array([1, 1, 2, 4])), 8.0)  # sum_k w_k n_k = N
  assert_close(CW(jnp.array([0, 1, 0, 1]), 2), [1.0, 1.0])  # balanced -> ones


def test_absent_class_is_inf():
  w = np.asarray(CW(jnp.array([0, 0, 2]), 4))
  assert_close(w[[0, 2]], [3 / 8, 3 / 4])
  assert np.isposinf(w[[1, 3]]).all()


def test_jit_with_static_num_classes_and_dtype():
  f = jax.jit(CW, static_argnums=1)
  y = jnp.asarray(rng(1).integers(0, 5, 40), jnp.int32)
  assert_close(f(y, 5), _np_class_weights(np.asarray(y), 5), rtol=1e-15)
  assert f(y, 5).dtype == jnp.float64  # tests run with x64: the default float dtype


def test_out_of_range_labels():
  bad = jnp.array([0, 1, 5])
  with pytest.raises(ValueError, match=r"class_weights: expected labels in \[0, 3\)"):
    CW(bad, 3)
  assert np.isnan(np.asarray(jax.jit(CW, static_argnums=1)(bad, 3))).all()
  err, _ = jax.jit(ll.losses.checked(CW), static_argnums=1)(bad, 3)
  with pytest.raises(ValueError, match="class_weights"):
    err.throw()


def test_bad_arguments():
  with pytest.raises(TypeError, match="integer"):
    CW(jnp.array([0.0, 1.0]), 2)
  with pytest.raises(ValueError, match="num_classes"):
    CW(jnp.array([0]), 0)
  with pytest.raises(TypeError, match="num_classes"):
    CW(jnp.array([0]), 2.0)

"""dice_loss: hand math, an independent numpy reference, target forms, edge cases and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close, rng

DICE = ll.losses.dice_loss


def _np_dice(p, t, smooth):
  """Loops over samples and classes; p, t ``(N, *, C)`` float64 -> ``(N,)``."""
  n, c = p.shape[0], p.shape[-1]
  p, t = p.reshape(n, -1, c), t.reshape(n, -1, c)
  out = np.empty(n)
  for i in range(n):
    scores = [(2 * np.dot(p[i, :, k], t[i, :, k]) + smooth) / (p[i, :, k].sum() + t[i, :, k].sum() + smooth)
              for k in range(c)]
    out[i] = 1.0 - np.mean(scores)
  return out


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _data(seed=0, shape=(3, 4, 5), c=4):
  r = rng(seed)
  return r.standard_normal((*shape, c)), r.integers(0, c, shape).astype(np.int32)


def test_hand_value():
  # class 0: (2*1 + 1)/(1.5 + 1 + 1) = 6/7; class 1: (2*0.5 + 1)/(0.5 + 1 + 1) = 4/5
  p = jnp.array([[[1.0, 0.0], [0.5, 0.5]]], jnp.float64)
  assert_close(DICE(p, jnp.array([[0, 1]]), from_logits=False), 1 - (6 / 7 + 4 / 5) / 2)


def test_hand_value_smooth0_and_absent_class():
  # smooth 0, both targets class 0: class 0 dice 2*1/(1+2) = 2/3, class 1 dice 0/(1+0) = 0
  p = jnp.array([[[1.0, 0.0], [0.0, 1.0]]], jnp.float64)
  assert_close(DICE(p, jnp.array([[0, 0]]), from_logits=False, smooth=0.0), 1 - (2 / 3) / 2)
  # class 2 absent from prediction and target: smooth/smooth = 1 with smooth > 0, NaN with smooth 0
  p3 = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], jnp.float64)
  y = jnp.array([[0, 1]])
  assert_close(DICE(p3, y, from_logits=False, smooth=1.0), 0.0)
  assert np.isnan(DICE(p3, y, from_logits=False, smooth=0.0))


@pytest.mark.parametrize("smooth", [0.0, 1e-5, 1.0, 10.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_matches_numpy_reference(smooth, reduction):
  x, y = _data()
  ref = _np_dice(_softmax(x), np.eye(4)[y], smooth)
  ref = {"none": ref, "mean": ref.mean(), "sum": ref.sum()}[reduction]
  assert_close(DICE(x, y, smooth=smooth, reduction=reduction), ref, rtol=1e-12)


def test_integer_one_hot_and_probability_forms_agree():
  x, y = _data(1)
  onehot = np.eye(4)[y]
  p = _softmax(x)
  base = DICE(x, y, reduction="none")
  assert_close(DICE(x, onehot, reduction="none"), base, rtol=1e-13)
  assert_close(DICE(p, y, from_logits=False, reduction="none"), base, rtol=1e-13)


def test_soft_targets():
  x, _ = _data(2)
  t = _softmax(rng(3).standard_normal(x.shape))
  assert_close(DICE(x, t, smooth=0.5), _np_dice(_softmax(x), t, 0.5).mean(), rtol=1e-12)


def test_perfect_prediction_is_zero_and_none_has_batch_shape():
  _, y = _data(4)
  p = np.eye(4)[y]
  out = DICE(p, y, from_logits=False, reduction="none", smooth=0.1)
  assert out.shape == (3,)
  assert_close(out, np.zeros(3), atol=1e-15)


def test_no_spatial_axes_and_2d_spatial():
  x, y = _data(5, shape=(6,))
  assert_close(DICE(x, y), _np_dice(_softmax(x), np.eye(4)[y], 1.0).mean(), rtol=1e-12)
  x, y = _data(6, shape=(2, 3, 4, 5), c=3)
  assert_close(DICE(x, y), _np_dice(_softmax(x), np.eye(3)[y], 1.0).mean(), rtol=1e-12)


def test_axis_moves_the_class_axis():
  x, y = _data(7)
  xt = np.moveaxis(x, -1, 1)  # torch layout (N, C, H, W)
  assert_close(DICE(xt, y, axis=1, reduction="none"), DICE(x, y, reduction="none"), rtol=1e-14)
  assert_close(DICE(xt, np.moveaxis(np.eye(4)[y], -1, 1), axis=1), DICE(x, y), rtol=1e-14)


def test_gradient_finite_at_extreme_logits():
  x = jnp.asarray(np.where(rng(8).random((2, 3, 4, 3)) < 0.4, 1e4, -1e4))
  y = jnp.asarray(rng(9).integers(0, 3, (2, 3, 4)))
  g = jax.grad(lambda a: DICE(a, y))(x)
  assert np.isfinite(np.asarray(g)).all()


def test_gradient_matches_finite_differences():
  x, y = _data(10, shape=(2, 3), c=3)
  f = lambda a: DICE(a, y, smooth=0.5)  # noqa: E731
  g = np.asarray(jax.grad(f)(jnp.asarray(x)))
  h = 1e-6
  for idx in np.ndindex(*x.shape):
    e = np.zeros_like(x)
    e[idx] = h
    # central differences, h = 1e-6: rounding ~ eps |f| / h ~ 1e-10; measured worst 9e-11 abs, 2.1e-8 relative
    assert_close(g[idx], (float(f(x + e)) - float(f(x - e))) / (2 * h), rtol=1e-6, atol=1e-10)


# --- bad input ------------------------------------------------------------------------------------

X = np.zeros((2, 5, 3), np.float32)
Y = np.array([[0, 1, 2, 1, 0], [2, 2, 1, 0, 0]], np.int32)


def test_integer_one_hot_target_raises_with_fix():
  with pytest.raises(TypeError, match=r"one-hot.*pass class indices of shape \(2, 5\), or float"):
    DICE(X, np.eye(3, dtype=np.int32)[Y])


def test_float_labels_raise_with_fix():
  with pytest.raises(TypeError, match=r"class indices stored as floats.*astype"):
    DICE(X, Y.astype(np.float32))


@pytest.mark.parametrize("target", [np.zeros((2, 4), np.int32), np.zeros((2, 5, 4), np.float32)],
                         ids=["labels", "one-hot"])
def test_wrong_target_shape_raises(target):
  with pytest.raises(ValueError, match="dice_loss: expected"):
    DICE(X, target)


def test_static_errors():
  with pytest.raises(ValueError, match="reduction"):
    DICE(X, Y, reduction="batchmean")
  with pytest.raises(ValueError, match="smooth"):
    DICE(X, Y, smooth=-1.0)
  with pytest.raises(ValueError, match="batch and a class axis"):
    DICE(np.zeros(3, np.float32), np.array(1, np.int32))
  with pytest.raises(TypeError, match="floating"):
    DICE(X.astype(np.int32), Y)


BAD = np.array([[0, 1, 3, 1, 0], [2, 2, 1, 0, 0]], np.int32)


def test_out_of_range_label_eager_jit_checked():
  with pytest.raises(ValueError, match=r"expected class indices in \[0, 3\), got \[3\]"):
    DICE(X, BAD)
  out = np.asarray(jax.jit(lambda x, y: DICE(x, y, reduction="none"))(X, BAD))
  assert np.isnan(out[0]) and np.isfinite(out[1])
  err, _ = jax.jit(ll.losses.checked(DICE))(X, BAD)
  with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
    err.throw()

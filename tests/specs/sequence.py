"""Property specs for ctc_loss, linear_cross_entropy and triplet_margin_with_distance_loss."""

import jax.numpy as jnp
import numpy as np

import losslab_jax as ll
from tests.property_specs import LossSpec

SPECS = []

_T, _N, _C = 8, 3, 5


def _ctc(rng, dtype):
  x = rng.standard_normal((_T, _N, _C))
  lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
  tg = rng.integers(1, _C, (_N, 3)).astype(np.int32)
  return lp.astype(dtype), tg, np.array([8, 6, 7], np.int32), np.array([3, 2, 1], np.int32)


def _ctc_extreme(dtype):
  x = np.where(np.random.default_rng(7).random((_T, _N, _C)) < 0.4, 1e4, -1e4)
  lp = x - x.max(-1, keepdims=True)  # log-softmax of +-1e4 logits: 0 and -2e4 (ties ~ -log k)
  lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
  tg = np.array([[1, 2, 3], [2, 2, 0], [4, 0, 0]], np.int32)
  return lp.astype(dtype), tg, np.array([8, 6, 7], np.int32), np.array([3, 2, 1], np.int32)


def _lce(rng, dtype):
  x = rng.standard_normal((6, 4)).astype(dtype)
  w = (rng.standard_normal((5, 4)) / 2).astype(dtype)
  return x, w, rng.integers(0, 5, 6).astype(np.int32)


def _lce_fn(input, linear_weight, target, **kw):
  return ll.losses.linear_cross_entropy(input, linear_weight, target, chunk_size=4, **kw)


def _lce_extreme(dtype):
  x = np.where(np.random.default_rng(3).random((6, 4)) < 0.5, 1e4, -1e4).astype(dtype)
  return x, np.eye(5, 4, dtype=dtype), np.array([0, 1, 2, 3, 4, 0], np.int32)


def _triplet(rng, dtype):
  return tuple(rng.standard_normal((6, 3)).astype(dtype) for _ in range(3))


def _triplet_extreme(dtype):
  a = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]], dtype)
  return a, a.copy(), np.array([[-1e4, 1e4, 0.0], [0.0, 0.0, 0.0]], dtype)  # identical pairs: distance eps


def _l1(a, b):
  return jnp.sum(jnp.abs(a - b), axis=-1)


SPECS += [
    LossSpec("ctc_loss", ll.losses.ctc_loss, _ctc, extreme=_ctc_extreme, mean_is_plain_mean=False),
    LossSpec("ctc_loss-zero_infinity", ll.losses.ctc_loss, _ctc, kwargs={"zero_infinity": True},
             extreme=_ctc_extreme, mean_is_plain_mean=False),
    LossSpec("linear_cross_entropy", _lce_fn, _lce, diff=(0, 1), extreme=_lce_extreme),
    LossSpec("linear_cross_entropy-smoothing", _lce_fn, _lce, kwargs={"label_smoothing": 0.1}, diff=(0, 1),
             extreme=_lce_extreme),
    LossSpec("triplet_margin_with_distance_loss", ll.losses.triplet_margin_with_distance_loss, _triplet,
             diff=(0, 1, 2), extreme=_triplet_extreme),
    LossSpec("triplet_margin_with_distance_loss-l1-swap", ll.losses.triplet_margin_with_distance_loss, _triplet,
             kwargs={"distance_function": _l1, "swap": True}, diff=(0, 1, 2), extreme=_triplet_extreme),
]

"""Property specs for the margin and metric-learning losses."""

import numpy as np

import losslab_jax as ll
from tests.property_specs import LossSpec

_N, _C = 6, 4


def _pm1(rng, shape):
  return rng.choice(np.array([1, -1], np.int64), shape)


def _ranking(rng, dtype):
  x1, x2 = (rng.standard_normal((_N, 3)).astype(dtype) for _ in range(2))
  return x1, x2, _pm1(rng, (_N, 3)).astype(dtype)


def _ranking_extreme(dtype):
  x1 = np.array([1e4, -1e4, 0.0, 1e4], dtype)
  x2 = np.array([-1e4, 1e4, 0.0, 1e4], dtype)  # huge gaps both ways, and two ties at the kink
  return x1, x2, np.array([1.0, 1.0, -1.0, 1.0], dtype)


def _hinge(rng, dtype):
  return np.abs(rng.standard_normal((_N, 3))).astype(dtype), _pm1(rng, (_N, 3))


def _hinge_extreme(dtype):
  return np.array([1e4, -1e4, 1.0, 0.0, 1e4], dtype), np.array([1, -1, -1, -1, 2])


def _multi(rng, dtype):
  return rng.standard_normal((_N, _C)).astype(dtype), rng.integers(0, _C, _N)


def _multi_weighted(rng, dtype):
  return (*_multi(rng, dtype), rng.uniform(0.5, 2.0, _C).astype(dtype))


def _multi_weighted_fn(input, target, weight, **kwargs):
  return ll.losses.multi_margin_loss(input, target, weight=weight, **kwargs)


def _multi_extreme(dtype):
  x = np.array([[1e4, -1e4, 0.0, 0.0], [-1e4, 1e4, 1e4, -1e4], [1.0, 0.0, 0.0, 0.0]], dtype)
  return x, np.array([1, 2, 0])  # a target at -1e4, a tie at +1e4, kinks at z == 0


def _multilabel(rng, dtype):
  y = rng.integers(0, _C, (_N, _C))
  for i in range(_N):
    k = i % (_C + 1)
    if k < _C:
      y[i, k] = -1
  return rng.standard_normal((_N, _C)).astype(dtype), y


def _multilabel_extreme(dtype):
  x = np.array([[1e4, -1e4, 0.0, 0.0], [-1e4, 1e4, 1e4, -1e4], [1.0, 0.0, 0.0, 0.0]], dtype)
  return x, np.array([[1, 1, -1, 3], [0, 2, 3, 1], [-1, 0, 0, 0]])


def _pairs(rng, dtype):
  x1, x2 = (rng.standard_normal((_N, _C)).astype(dtype) for _ in range(2))
  return x1, x2, _pm1(rng, _N)


def _cosine_extreme(dtype):
  x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1e4, -1e4, 3.0], [1.0, 2.0, 3.0], [1e-30, 0.0, 0.0]], dtype)
  x2 = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1e4, 1e4, 0.0], [1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], dtype)
  return x1, x2, np.array([1, -1, 1, -1, 1])  # zero vectors, huge entries, identical, tiny


def _triplet(rng, dtype):
  return tuple(rng.standard_normal((_N, _C)).astype(dtype) for _ in range(3))


def _triplet_extreme(dtype):
  a = np.array([[0.0, 0.0, 0.0], [1e4, -1e4, 0.0], [1.0, 2.0, 3.0]], dtype)
  return a, a.copy(), np.array([[0.0, 0.0, 0.0], [-1e4, 1e4, 0.0], [1.0, 2.0, 3.0 + 1e-3]], dtype)


def _contrastive(rng, dtype):
  x1, x2 = (rng.standard_normal((_N, _C)).astype(dtype) for _ in range(2))
  return x1, x2, rng.integers(0, 2, _N).astype(dtype)


def _contrastive_extreme(dtype):
  x1 = np.array([[0.0, 0.0], [1.0, 2.0], [1e4, -1e4], [0.0, 0.0]], dtype)
  x2 = np.array([[1e-6, 1e-6], [1.0, 2.0], [-1e4, 1e4], [0.0, 0.0]], dtype)  # d == 0, identical, huge
  return x1, x2, np.array([0.0, 1.0, 0.0, 1.0], dtype)


SPECS = [
    LossSpec("margin_ranking_loss", ll.losses.margin_ranking_loss, _ranking, diff=(0, 1),
             extreme=_ranking_extreme),
    LossSpec("hinge_embedding_loss", ll.losses.hinge_embedding_loss, _hinge, extreme=_hinge_extreme),
    LossSpec("multi_margin_loss", ll.losses.multi_margin_loss, _multi, extreme=_multi_extreme),
    LossSpec("multi_margin_loss-p2-weight", _multi_weighted_fn, _multi_weighted, kwargs={"p": 2},
             extreme=lambda dtype: (*_multi_extreme(dtype), np.array([0.5, 1.0, 2.0, 1.5], dtype))),
    LossSpec("multilabel_margin_loss", ll.losses.multilabel_margin_loss, _multilabel,
             extreme=_multilabel_extreme, nan_row=1),  # row 0 lists no target: loss 0 without x
    LossSpec("cosine_embedding_loss", ll.losses.cosine_embedding_loss, _pairs, diff=(0, 1),
             kwargs={"margin": 0.2}, extreme=_cosine_extreme),
    LossSpec("triplet_margin_loss", ll.losses.triplet_margin_loss, _triplet, diff=(0, 1, 2),
             extreme=_triplet_extreme),
    LossSpec("triplet_margin_loss-p1-swap", ll.losses.triplet_margin_loss, _triplet, diff=(0, 1, 2),
             kwargs={"p": 1.0, "swap": True}, extreme=_triplet_extreme),
    LossSpec("contrastive_loss", ll.losses.contrastive_loss, _contrastive, diff=(0, 1),
             extreme=_contrastive_extreme),
]

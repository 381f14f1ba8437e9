"""Property specs for the classification, margin, metric and segmentation losses."""

import numpy as np

import losslab_jax as ll
from tests.property_specs import LossSpec

SPECS = []


# --- multi-class: cross_entropy, nll_loss, focal_loss, dice_loss (losses/_classification.py,
#     losses/_segmentation.py) ---------------------------------------------------------------------

def _mc_logits(rng, dtype, batch=(6,), num_classes=4):
  return rng.standard_normal((*batch, num_classes)).astype(dtype)


def _mc_labels(rng, batch=(6,), num_classes=4, ignore_frac=0.0):
  y = rng.integers(0, num_classes, batch)
  if ignore_frac:
    y = np.where(rng.random(batch) < ignore_frac, -100, y)
    y[(0,) * len(batch)] = 1  # at least one target kept, so the mean is finite
  return y.astype(np.int32)


def _mc_extreme_logits(dtype, batch=(6,), num_classes=4):
  x = np.where(np.random.default_rng(7).random((*batch, num_classes)) < 0.4, 1e4, -1e4)
  return x.astype(dtype)


def _mc_index(rng, dtype):
  return _mc_logits(rng, dtype), _mc_labels(rng)


def _mc_index_extreme(dtype):
  return _mc_extreme_logits(dtype), np.array([0, 1, 2, 3, 0, 1], np.int32)


def _mc_weighted(rng, dtype):
  w = rng.uniform(0.2, 2.0, (4,)).astype(dtype)
  return _mc_logits(rng, dtype), _mc_labels(rng, ignore_frac=0.3), w


def _mc_weighted_all_ignored(dtype):
  w = np.array([0.5, 1.0, 2.0, 1.5], dtype)
  return _mc_extreme_logits(dtype), np.full((6,), -100, np.int32), w


def _mc_probs(rng, dtype):
  z = np.exp(rng.standard_normal((6, 4)))
  return _mc_logits(rng, dtype), (z / z.sum(-1, keepdims=True)).astype(dtype)


def _mc_probs_extreme(dtype):
  return _mc_extreme_logits(dtype), np.eye(4, dtype=dtype)[[0, 1, 2, 3, 0, 1]]


def _mc_spatial(rng, dtype):
  return _mc_logits(rng, dtype, (3, 5)), _mc_labels(rng, (3, 5), ignore_frac=0.2)


def _mc_log_probs(rng, dtype):
  x = rng.standard_normal((6, 4))
  lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
  return lp.astype(dtype), _mc_labels(rng, ignore_frac=0.3), rng.uniform(0.2, 2.0, (4,)).astype(dtype)


def _mc_focal_all_ignored(dtype):
  return _mc_extreme_logits(dtype), np.full((6,), -100, np.int32)


def _dice_int(rng, dtype):
  return _mc_logits(rng, dtype, (2, 4, 5), 3), _mc_labels(rng, (2, 4, 5), 3)


def _dice_int_extreme(dtype):
  labels = np.random.default_rng(3).integers(0, 3, (2, 4, 5)).astype(np.int32)
  return _mc_extreme_logits(dtype, (2, 4, 5), 3), labels


def _dice_soft(rng, dtype):
  z = np.exp(rng.standard_normal((2, 4, 5, 3)))
  return _mc_logits(rng, dtype, (2, 4, 5), 3), (z / z.sum(-1, keepdims=True)).astype(dtype)


SPECS += [
    LossSpec("cross_entropy", ll.losses.cross_entropy, _mc_index, extreme=_mc_index_extreme),
    LossSpec("cross_entropy-weight-ignore-smoothing", ll.losses.cross_entropy, _mc_weighted,
             kwargs={"label_smoothing": 0.1}, extreme=_mc_weighted_all_ignored,
             extreme_reduction="sum", mean_is_plain_mean=False),
    LossSpec("cross_entropy-probs", ll.losses.cross_entropy, _mc_probs, kwargs={"label_smoothing": 0.1},
             diff=(0, 1), extreme=_mc_probs_extreme),
    LossSpec("cross_entropy-spatial-ignore", ll.losses.cross_entropy, _mc_spatial,
             extreme=lambda dt: (_mc_extreme_logits(dt, (3, 5)), np.full((3, 5), -100, np.int32)),
             extreme_reduction="sum", mean_is_plain_mean=False),
    LossSpec("nll_loss-weight-ignore", ll.losses.nll_loss, _mc_log_probs,
             extreme=_mc_weighted_all_ignored, extreme_reduction="sum", mean_is_plain_mean=False),
    LossSpec("focal_loss", ll.losses.focal_loss, _mc_index, kwargs={"alpha": (0.5, 1.0, 2.0, 0.25)},
             extreme=_mc_index_extreme),
    LossSpec("focal_loss-gamma0.5", ll.losses.focal_loss, _mc_index, kwargs={"gamma": 0.5},
             extreme=_mc_index_extreme),
    LossSpec("focal_loss-ignore", ll.losses.focal_loss, _mc_spatial, extreme=_mc_focal_all_ignored,
             extreme_reduction="sum", mean_is_plain_mean=False),
    LossSpec("dice_loss", ll.losses.dice_loss, _dice_int, extreme=_dice_int_extreme),
    LossSpec("dice_loss-soft", ll.losses.dice_loss, _dice_soft, kwargs={"smooth": 0.5}, diff=(0, 1),
             extreme=lambda dt: (_mc_extreme_logits(dt, (2, 4, 5), 3),
                                 np.full((2, 4, 5, 3), 1.0 / 3.0, dt))),
]

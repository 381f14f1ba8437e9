"""Property specs for the regression, probabilistic and binary losses."""

import numpy as np

import losslab_jax as ll
from tests.property_specs import LossSpec


def _pair(rng, dtype):
  return rng.standard_normal((6, 3)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype)


def _pair_extreme(dtype):
  x = np.array([[1e4, -1e4, 0.0], [3.0, -3.0, 1e-30]], dtype=dtype)
  return x, np.zeros_like(x)


# --- probabilistic ----------------------------------------------------------------------------


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _kl(rng, dtype):
  return (_log_softmax(rng.standard_normal((6, 4))).astype(dtype),
          np.exp(_log_softmax(rng.standard_normal((6, 4)))).astype(dtype))


def _kl_extreme(dtype):  # log-probabilities of -1e4 under positive target mass: loss ~1e4, finite
  x = np.array([[0.0, -1e4, -1e4, -1e4], [-1e4, 0.0, -1e4, -1e4]], dtype=dtype)
  t = np.array([[0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]], dtype=dtype)
  return x, t


def _poisson(rng, dtype):
  return rng.standard_normal((6, 3)).astype(dtype), rng.poisson(2.0, (6, 3)).astype(dtype)


def _poisson_extreme(dtype):  # log-rates of +-50 against counts 0, 1 and 1e4 (exp(50) is finite)
  x = np.array([[50.0, -50.0, 0.0], [-50.0, 9.2, 50.0]], dtype=dtype)
  t = np.array([[0.0, 1.0, 1e4], [0.0, 1e4, 1.0]], dtype=dtype)
  return x, t


def _gaussian(rng, dtype):
  return (rng.standard_normal((6, 3)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype),
          rng.uniform(0.5, 2.0, (6, 3)).astype(dtype))


def _gaussian_extreme(dtype):  # errors of 1e4 against variances at and below the eps clamp
  x = np.array([[1e4, -1e4, 0.0], [3.0, 0.0, 1e4]], dtype=dtype)
  v = np.array([[0.0, 1e-12, 1e-6], [1e-30, 1.0, 1e8]], dtype=dtype)
  return x, np.zeros_like(x), v


# --- binary -----------------------------------------------------------------------------------


def _probs(rng, dtype):
  return rng.uniform(0.05, 0.95, (6, 3)).astype(dtype), rng.uniform(0, 1, (6, 3)).astype(dtype)


def _probs_weighted(rng, dtype):
  return (*_probs(rng, dtype), rng.uniform(0.2, 2.0, (6, 3)).astype(dtype))


def _probs_extreme(dtype):  # probabilities exactly 0 and 1: loss 100 (torch's clamp), gradient +-1e12
  x = np.array([[0.0, 1.0, 0.0], [1.0, 0.5, 1e-30]], dtype=dtype)
  t = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=dtype)
  return x, t


def _logits(rng, dtype):
  return (2 * rng.standard_normal((6, 3))).astype(dtype), rng.integers(0, 2, (6, 3)).astype(dtype)


def _logits_weighted(rng, dtype):
  return (*_logits(rng, dtype), rng.uniform(0.2, 2.0, (6, 3)).astype(dtype))


def _logits_extreme(dtype):  # logits of +-1e4 with right and wrong hard targets
  x = np.array([[1e4, -1e4, 1e4], [-1e4, 0.0, 3.0]], dtype=dtype)
  t = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
  return x, t


def _margins(rng, dtype):
  return rng.standard_normal((6, 3)).astype(dtype), np.where(rng.random((6, 3)) < 0.5, -1.0, 1.0).astype(dtype)


def _margins_extreme(dtype):  # |yx| = 500: torch's log1p(exp(500)) is finite in float64
  x = np.array([[500.0, -500.0, 0.0], [500.0, -500.0, 3.0]], dtype=dtype)
  t = np.array([[1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=dtype)
  return x, t


REDUCTIONS_KL = ("none", "mean", "sum", "batchmean")

SPECS = [
    LossSpec("l1_loss", ll.losses.l1_loss, _pair, diff=(0, 1), extreme=_pair_extreme),
    LossSpec("mse_loss", ll.losses.mse_loss, _pair, diff=(0, 1), extreme=_pair_extreme),
    LossSpec("huber_loss", ll.losses.huber_loss, _pair, kwargs={"delta": 0.7}, diff=(0, 1), extreme=_pair_extreme),
    LossSpec("smooth_l1_loss", ll.losses.smooth_l1_loss, _pair, kwargs={"beta": 0.7}, diff=(0, 1),
             extreme=_pair_extreme),
    LossSpec("smooth_l1_loss_beta0", ll.losses.smooth_l1_loss, _pair, kwargs={"beta": 0.0}, diff=(0, 1),
             extreme=_pair_extreme),
    LossSpec("asymmetric_mse_loss", ll.losses.asymmetric_mse_loss, _pair, diff=(0, 1), extreme=_pair_extreme),
    LossSpec("kl_div", ll.losses.kl_div, _kl, diff=(0, 1), extreme=_kl_extreme, reductions=REDUCTIONS_KL),
    LossSpec("kl_div_log_target", ll.losses.kl_div, _kl, kwargs={"log_target": True}, diff=(0, 1),
             reductions=REDUCTIONS_KL),
    LossSpec("poisson_nll_loss", ll.losses.poisson_nll_loss, _poisson, diff=(0, 1), extreme=_poisson_extreme),
    LossSpec("poisson_nll_loss_full", ll.losses.poisson_nll_loss, _poisson, kwargs={"full": True}, diff=(0, 1),
             extreme=_poisson_extreme),
    LossSpec("gaussian_nll_loss", ll.losses.gaussian_nll_loss, _gaussian, kwargs={"full": True},
             diff=(0, 1, 2), extreme=_gaussian_extreme),
    # target gradient at x in {0, 1} is -logit(x) = +-inf in torch too: differentiate the input only
    LossSpec("binary_cross_entropy", ll.losses.binary_cross_entropy, _probs, diff=(0,), extreme=_probs_extreme),
    LossSpec("binary_cross_entropy_weighted", ll.losses.binary_cross_entropy, _probs_weighted, diff=(0,)),
    LossSpec("binary_cross_entropy_with_logits", ll.losses.binary_cross_entropy_with_logits, _logits,
             diff=(0, 1), extreme=_logits_extreme),
    LossSpec("binary_cross_entropy_with_logits_weighted", ll.losses.binary_cross_entropy_with_logits,
             _logits_weighted, diff=(0, 1)),
    LossSpec("sigmoid_focal_loss", ll.losses.sigmoid_focal_loss, _logits, diff=(0, 1), extreme=_logits_extreme),
    LossSpec("sigmoid_focal_loss_gamma0", ll.losses.sigmoid_focal_loss, _logits, kwargs={"gamma": 0.0},
             diff=(0, 1), extreme=_logits_extreme),
    LossSpec("soft_margin_loss", ll.losses.soft_margin_loss, _margins, diff=(0,), extreme=_margins_extreme),
    LossSpec("multilabel_soft_margin_loss", ll.losses.multilabel_soft_margin_loss, _logits, diff=(0, 1),
             extreme=_logits_extreme),
    LossSpec("multilabel_soft_margin_loss_weighted", ll.losses.multilabel_soft_margin_loss, _logits_weighted,
             diff=(0, 1, 2)),
]

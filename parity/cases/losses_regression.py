"""Parity cases for the regression losses: l1, mse, huber, smooth l1, asymmetric mse."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

import losslab_jax as ll
from parity._case import Config, FunctionCase, register
from parity.cases import _gen
from parity.reference.asymmetric_mse import AsymmetricMSELoss

SHAPES = [Config("vec-mean", {"reduction": "mean"}, {"shape": (7,)}),
          Config("mat-sum", {"reduction": "sum"}, {"shape": (5, 4)}),
          Config("3d-none", {"reduction": "none"}, {"shape": (3, 4, 5)})]


def _pair(rng, dtype, shape, scale=1.0, ties=()):
  """``(input, target)``; ``ties`` are residuals placed exactly (0 and +-threshold) in row 0."""
  x, t = _gen.normal(rng, shape, dtype, scale), _gen.normal(rng, shape, dtype)
  if ties:
    flat_x, flat_t = x.reshape(-1), t.reshape(-1)
    flat_x[: len(ties)] = np.asarray(ties, dtype)
    flat_t[: len(ties)] = 0
  return x, t


register(FunctionCase("l1_loss", "losses", ll.losses.l1_loss, F.l1_loss, _pair, SHAPES, grad_argnums=(0, 1)))
register(FunctionCase("mse_loss", "losses", ll.losses.mse_loss, F.mse_loss, _pair, SHAPES, grad_argnums=(0, 1)))

# residuals of scale 2 hit both branches of huber / smooth l1; `ties` puts residuals exactly at 0
# and at +-threshold, where the branches meet and the gradient must still be torch's.
register(FunctionCase(
    "huber_loss", "losses", ll.losses.huber_loss, F.huber_loss, _pair,
    [Config("vec-mean", {"reduction": "mean"}, {"shape": (9,), "scale": 2.0}),
     Config("mat-sum-delta0.5", {"reduction": "sum", "delta": 0.5}, {"shape": (6, 4), "scale": 2.0}),
     Config("3d-none-delta2", {"reduction": "none", "delta": 2.0}, {"shape": (3, 4, 5), "scale": 2.0}),
     Config("ties-delta1.5", {"reduction": "sum", "delta": 1.5},
            {"shape": (4, 5), "scale": 2.0, "ties": (0.0, 1.5, -1.5, 0.0)})],
    grad_argnums=(0, 1)))

register(FunctionCase(
    "smooth_l1_loss", "losses", ll.losses.smooth_l1_loss, F.smooth_l1_loss, _pair,
    [Config("vec-mean", {"reduction": "mean"}, {"shape": (9,), "scale": 2.0}),
     Config("mat-sum-beta0.5", {"reduction": "sum", "beta": 0.5}, {"shape": (6, 4), "scale": 2.0}),
     Config("3d-none-beta2", {"reduction": "none", "beta": 2.0}, {"shape": (3, 4, 5), "scale": 2.0}),
     Config("beta0-mean", {"reduction": "mean", "beta": 0.0}, {"shape": (6, 4)}),
     Config("beta0-ties-none", {"reduction": "none", "beta": 0.0}, {"shape": (8,), "ties": (0.0, 0.0)}),
     Config("ties-beta1.5", {"reduction": "sum", "beta": 1.5},
            {"shape": (4, 5), "scale": 2.0, "ties": (0.0, 1.5, -1.5)})],
    grad_argnums=(0, 1)))


def _asymmetric_torch(input, target, *, under_penalty=2.0, over_penalty=1.0, reduction="mean"):
  return AsymmetricMSELoss(under_penalty, over_penalty, reduction)(input, target)


register(FunctionCase(
    "asymmetric_mse_loss", "losses", ll.losses.asymmetric_mse_loss, _asymmetric_torch, _pair,
    [Config("defaults-mean", {}, {"shape": (9,)}),
     Config("mat-sum-over3", {"reduction": "sum", "under_penalty": 1.0, "over_penalty": 3.0}, {"shape": (6, 4)}),
     Config("3d-none", {"reduction": "none", "under_penalty": 0.5, "over_penalty": 0.0},
            {"shape": (3, 4, 5)}),
     Config("ties-mean", {"reduction": "mean"}, {"shape": (8,), "ties": (0.0, 0.0)})],
    grad_argnums=(0, 1)))

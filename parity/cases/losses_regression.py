"""Parity cases for the regression and probabilistic losses."""

from __future__ import annotations

import torch.nn.functional as F

import losslab_jax as ll
from parity._case import Config, FunctionCase, register
from parity.cases import _gen

SHAPES = [Config("vec-mean", {"reduction": "mean"}, {"shape": (7,)}),
          Config("mat-sum", {"reduction": "sum"}, {"shape": (5, 4)}),
          Config("3d-none", {"reduction": "none"}, {"shape": (3, 4, 5)})]


def _pair(rng, dtype, shape):
  return _gen.normal(rng, shape, dtype), _gen.normal(rng, shape, dtype)


register(FunctionCase("l1_loss", "losses", ll.losses.l1_loss, F.l1_loss, _pair, SHAPES, grad_argnums=(0, 1)))
register(FunctionCase("mse_loss", "losses", ll.losses.mse_loss, F.mse_loss, _pair, SHAPES, grad_argnums=(0, 1)))

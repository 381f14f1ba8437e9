"""Parity cases for the binary and multi-label losses.

BCE on probabilities, BCE on logits (weight and pos_weight broadcasts), torchvision's sigmoid
focal loss, soft margin and multi-label soft margin. These are elementwise over any shape, so both
sides take the same layout; extra dims are checked as they are.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

import losslab_jax as ll
from parity._case import Config, FunctionCase, register
from parity.cases import _gen


def _with_extras(fn):
  """``fn(x, t, *arrays, extras=("weight", ...), **kw)`` -> ``fn(x, t, weight=..., **kw)``."""

  def call(input, target, *arrays, extras=(), **kwargs):
    return fn(input, target, **dict(zip(extras, arrays)), **kwargs)

  return call


def _targets(rng, dtype, shape, soft):
  return _gen.uniform(rng, shape, dtype) if soft else rng.integers(0, 2, shape).astype(dtype)


def _extras(rng, dtype, weight_shape, pos_weight_shape):
  out = []
  if weight_shape is not None:
    out.append(_gen.uniform(rng, weight_shape, dtype, 0.2, 2.0))
  if pos_weight_shape is not None:
    out.append(_gen.uniform(rng, pos_weight_shape, dtype, 0.5, 4.0))
  return tuple(out)


# --- binary_cross_entropy ---------------------------------------------------------------------


def _bce_inputs(rng, dtype, shape, soft=True, edges=False, weight_shape=None):
  """Probabilities in (0, 1); ``edges`` sets a third of them to exactly 0 or 1 (gradient +-1e12)."""
  x = _gen.uniform(rng, shape, dtype, 0.02, 0.98)
  if edges:
    x = np.where(rng.random(shape) < 0.35, rng.integers(0, 2, shape), x).astype(dtype)
  return (x, _targets(rng, dtype, shape, soft), *_extras(rng, dtype, weight_shape, None))


register(FunctionCase(
    "binary_cross_entropy", "losses", _with_extras(ll.losses.binary_cross_entropy),
    _with_extras(F.binary_cross_entropy), _bce_inputs,
    [Config("vec-mean", {"reduction": "mean"}, {"shape": (9,)}),
     Config("mat-sum-hard", {"reduction": "sum"}, {"shape": (6, 4), "soft": False}),
     Config("3d-none", {"reduction": "none"}, {"shape": (3, 4, 5)}),
     Config("weight-C-mean", {"reduction": "mean", "extras": ("weight",)}, {"shape": (6, 4), "weight_shape": (4,)}),
     Config("weight-N1-none", {"reduction": "none", "extras": ("weight",)}, {"shape": (6, 4), "weight_shape": (6, 1)}),
     Config("edges-hard-none", {"reduction": "none"}, {"shape": (6, 5), "soft": False, "edges": True}),
     Config("edges-soft-sum", {"reduction": "sum"}, {"shape": (6, 5), "edges": True}),
     Config("edges-weight-mean", {"reduction": "mean", "extras": ("weight",)},
            {"shape": (6, 5), "soft": False, "edges": True, "weight_shape": (5,)})],
    grad_argnums=(0, 1)))


# --- binary_cross_entropy_with_logits ---------------------------------------------------------


def _logit_inputs(rng, dtype, shape, soft=True, scale=2.0, extreme=None, weight_shape=None,
                  pos_weight_shape=None):
  """Logits; ``extreme=L`` makes a third of them +-L (an O(1) rest), targets then hard 0/1."""
  x = _gen.normal(rng, shape, dtype, scale)
  if extreme:
    x = np.where(rng.random(shape) < 0.35, np.where(rng.random(shape) < 0.5, extreme, -extreme), x).astype(dtype)
  t = _targets(rng, dtype, shape, soft and not extreme)
  return (x, t, *_extras(rng, dtype, weight_shape, pos_weight_shape))


register(FunctionCase(
    "binary_cross_entropy_with_logits", "losses", _with_extras(ll.losses.binary_cross_entropy_with_logits),
    _with_extras(F.binary_cross_entropy_with_logits), _logit_inputs,
    [Config("vec-mean", {"reduction": "mean"}, {"shape": (9,)}),
     Config("mat-sum-hard", {"reduction": "sum"}, {"shape": (6, 4), "soft": False}),
     Config("3d-none", {"reduction": "none"}, {"shape": (3, 4, 5)}),
     Config("weight-C-sum", {"reduction": "sum", "extras": ("weight",)}, {"shape": (6, 4), "weight_shape": (4,)}),
     Config("pos_weight-C-none", {"reduction": "none", "extras": ("pos_weight",)},
            {"shape": (6, 4), "pos_weight_shape": (4,)}),
     Config("pos_weight-N1-mean", {"reduction": "mean", "extras": ("pos_weight",)},
            {"shape": (6, 4), "pos_weight_shape": (6, 1)}),
     Config("weight-and-pos_weight-mean", {"reduction": "mean", "extras": ("weight", "pos_weight")},
            {"shape": (6, 4), "weight_shape": (6, 4), "pos_weight_shape": (4,)}),
     Config("3d-pos_weight-C-sum", {"reduction": "sum", "extras": ("pos_weight",)},
            {"shape": (2, 3, 4), "pos_weight_shape": (4,)}),
     Config("extreme-800-none", {"reduction": "none"}, {"shape": (6, 5), "extreme": 800.0}),
     Config("extreme-1e4-pos_weight-sum", {"reduction": "sum", "extras": ("pos_weight",)},
            {"shape": (6, 5), "extreme": 1e4, "pos_weight_shape": (5,)})],
    grad_argnums=(0, 1), rtol={"float32": 5e-5},
    tolerance_reason=(
        "float32 target gradient -x + (pos_weight - 1) softplus(-x) is a difference of O(1) terms;"
        " over 16 seeds of every config (jitted): losslab vs torch 1.7e-5, each vs a float64 evaluation 4.0e-5 (losslab) and"
        " 4.9e-5 (torch). Registered seeds 8.0e-6; float64 3.1e-14.")))


# --- sigmoid_focal_loss -----------------------------------------------------------------------


def _focal_torch(input, target, *, alpha=0.25, gamma=2.0, reduction="none"):
  import torchvision.ops  # imported here: torchvision costs 1 s at start-up and only this case needs it

  return torchvision.ops.sigmoid_focal_loss(input, target, alpha=alpha, gamma=gamma, reduction=reduction)


register(FunctionCase(
    "sigmoid_focal_loss", "losses", ll.losses.sigmoid_focal_loss, _focal_torch, _logit_inputs,
    [Config("defaults-none", {}, {"shape": (6, 4), "soft": False}),
     Config("mean-alpha0.5-gamma1", {"reduction": "mean", "alpha": 0.5, "gamma": 1.0}, {"shape": (9,), "soft": False}),
     Config("sum-no-alpha", {"reduction": "sum", "alpha": -1.0}, {"shape": (6, 4), "soft": False}),
     Config("gamma0-mean", {"reduction": "mean", "gamma": 0.0}, {"shape": (6, 4), "soft": False}),
     Config("soft-3d-none", {"gamma": 3.0}, {"shape": (2, 3, 4)}),
     Config("extreme-60-none", {}, {"shape": (6, 5), "extreme": 60.0}),
     Config("extreme-1e4-gamma0-sum", {"reduction": "sum", "gamma": 0.0}, {"shape": (6, 5), "extreme": 1e4})],
    grad_argnums=(0, 1), rtol={"float32": 5e-5},
    tolerance_reason=(
        "float32 soft-target gradient: it sums O(1) terms of both signs (alpha_t, (1 - p_t)^gamma and the"
        " cross-entropy all depend on the target); over 16 seeds of every config (jitted): losslab vs torch 1.8e-5, each vs"
        " a float64 evaluation 7.5e-6 (losslab) and 1.0e-5 (torch). Registered seeds 4.5e-6.")))


# --- soft margin --------------------------------------------------------------------------------


def _margin_inputs(rng, dtype, shape, scale=2.0):
  return _gen.normal(rng, shape, dtype, scale), np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(dtype)


register(FunctionCase(
    "soft_margin_loss", "losses", ll.losses.soft_margin_loss, F.soft_margin_loss, _margin_inputs,
    [Config("vec-mean", {"reduction": "mean"}, {"shape": (9,)}),
     Config("mat-sum", {"reduction": "sum"}, {"shape": (6, 4)}),
     Config("3d-none", {"reduction": "none"}, {"shape": (3, 4, 5)}),
     Config("large-margins-none", {"reduction": "none"}, {"shape": (6, 5), "scale": 30.0})],
    grad_argnums=(0,)))  # torch does not differentiate the target


def _multilabel_inputs(rng, dtype, shape, soft=False, weight_shape=None):
  return (_gen.normal(rng, shape, dtype, 2.0), _targets(rng, dtype, shape, soft),
          *_extras(rng, dtype, weight_shape, None))


register(FunctionCase(
    "multilabel_soft_margin_loss", "losses", ll.losses.multilabel_soft_margin_loss,
    F.multilabel_soft_margin_loss, _multilabel_inputs,
    [Config("mat-mean", {"reduction": "mean"}, {"shape": (6, 4)}),
     Config("mat-sum-soft", {"reduction": "sum"}, {"shape": (6, 4), "soft": True}),
     Config("mat-none", {"reduction": "none"}, {"shape": (6, 4)}),
     Config("3d-none", {"reduction": "none"}, {"shape": (2, 3, 4)}),
     Config("vec-mean", {"reduction": "mean"}, {"shape": (5,)})],
    grad_argnums=(0, 1)))

register(FunctionCase(
    "multilabel_soft_margin_loss_weighted", "losses", ll.losses.multilabel_soft_margin_loss,
    F.multilabel_soft_margin_loss, _multilabel_inputs,
    [Config("weight-C-mean", {"reduction": "mean"}, {"shape": (6, 4), "weight_shape": (4,)}),
     Config("weight-NC-none", {"reduction": "none"}, {"shape": (6, 4), "weight_shape": (6, 4)}),
     Config("weight-N1-sum", {"reduction": "sum"}, {"shape": (6, 4), "weight_shape": (6, 1)})],
    grad_argnums=(0, 1, 2)))

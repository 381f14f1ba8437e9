"""Parity cases for the multi-class losses: cross_entropy, nll_loss, focal_loss, dice_loss.

losslab_jax takes the class axis last; the torch side moves it to dim 1 (``axis=1`` configs hand
torch's layout to both sides). focal and dice are checked against the reference modules in
``parity.reference``, written from the formulas.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import losslab_jax as ll
from parity._case import Config, FunctionCase, register
from parity.cases import _gen
from parity.reference.dice import DiceLoss
from parity.reference.focal import FocalLoss

# --- inputs ---------------------------------------------------------------------------------------


def _logits(rng, dtype, batch, num_classes, axis, scale, extreme):
  """Logits of shape ``(*batch, C)`` (``axis=-1``) or ``(N, C, *spatial)`` (``axis=1``)."""
  x = _gen.normal(rng, (*batch, num_classes), dtype, scale)
  if extreme:  # logits of +-1e4 (several classes tie at +1e4), plus O(1) noise
    x = (np.where(rng.random(x.shape) < 0.3, 1e4, -1e4) + rng.standard_normal(x.shape)).astype(dtype)
  return x if axis == -1 else np.moveaxis(x, -1, axis)


def _labels(rng, batch, num_classes, ignore_frac, ignore_index):
  y = _gen.labels(rng, batch, num_classes)
  if ignore_frac:
    y = np.where(rng.random(batch) < ignore_frac, ignore_index, y).astype(np.int64)
  return y


def _index_inputs(rng, dtype, batch=(8,), num_classes=5, ignore_frac=0.0, ignore_index=-100,
                  weight=False, axis=-1, scale=1.0, extreme=False, log_probs=False, confident=None,
                  offset=0.0):
  """``(logits, labels[, weight])``; ``ignore_frac=1`` ignores every target.

  ``confident``: add this to the target's logit, so every -log p is tiny (~C e^-confident) and the
  float32 digits of a confident row are visible to the comparator; ``offset``: added to every
  logit (|logit| 1e4 rows). Class axis last only.
  """
  x = _logits(rng, dtype, batch, num_classes, axis, scale, extreme)
  y = _labels(rng, batch, num_classes, ignore_frac, ignore_index)
  if confident is not None:
    np.put_along_axis(x, y[..., None], np.take_along_axis(x, y[..., None], -1) + confident, -1)
    x = (x + offset).astype(dtype)
  if log_probs:
    x = torch.log_softmax(torch.from_numpy(x), dim=axis).numpy()
  if not weight:
    return x, y
  return x, y, _gen.uniform(rng, (num_classes,), dtype, 0.2, 2.0)


def _prob_inputs(rng, dtype, batch=(8,), num_classes=5, one_hot=False, weight=False, axis=-1):
  """``(logits, probabilities[, weight])``, probabilities soft or one-hot, same layout as logits."""
  x = _logits(rng, dtype, batch, num_classes, axis, 1.0, False)
  if one_hot:
    t = np.eye(num_classes, dtype=dtype)[_gen.labels(rng, batch, num_classes)]
  else:
    z = rng.standard_normal((*batch, num_classes))
    t = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(dtype)
  t = t if axis == -1 else np.moveaxis(t, -1, axis)
  if not weight:
    return x, t
  return x, t, _gen.uniform(rng, (num_classes,), dtype, 0.2, 2.0)


# --- torch side: move the class axis to dim 1 -----------------------------------------------------


def _torch_layout(t, axis):
  """Class axis to dim 1, contiguous (torch's nll_loss backward rejects a strided grad_input)."""
  return t if t.ndim == 1 else t.movedim(axis, 1).contiguous()


def _torch_cross_entropy(x, t, w=None, *, axis=-1, **kw):
  t = _torch_layout(t, axis) if t.is_floating_point() else t
  return F.cross_entropy(_torch_layout(x, axis), t, w, **kw)


def _torch_nll_loss(x, t, w=None, *, axis=-1, **kw):
  return F.nll_loss(_torch_layout(x, axis), t, w, **kw)


def _torch_focal_loss(x, t, *, axis=-1, **kw):
  return FocalLoss(**kw)(_torch_layout(x, axis), t)


def _torch_dice_loss(x, t, *, axis=-1, **kw):
  t = _torch_layout(t, axis) if t.is_floating_point() else t
  return DiceLoss(**kw)(_torch_layout(x, axis), t)


# --- cases ----------------------------------------------------------------------------------------

IGN = {"ignore_frac": 0.3}
ALL_IGN = {"ignore_frac": 1.0}
W = {"weight": True}
SPATIAL3 = {"batch": (3, 4)}
SPATIAL4 = {"batch": (2, 3, 4)}
EXTREME = {"extreme": True}

INDEX_CONFIGS = [
    Config("mean", {}, {}),
    Config("sum", {"reduction": "sum"}, {}),
    Config("none", {"reduction": "none"}, {}),
    Config("weight-mean", {}, W),
    Config("weight-sum", {"reduction": "sum"}, W),
    Config("weight-none", {"reduction": "none"}, W),
    Config("ignore-mean", {}, IGN),
    Config("ignore-weight-mean", {}, {**IGN, **W}),
    Config("ignore-none", {"reduction": "none"}, IGN),
    Config("all-ignored-mean", {}, ALL_IGN),
    Config("all-ignored-sum", {"reduction": "sum"}, ALL_IGN),
    Config("all-ignored-weight-mean", {}, {**ALL_IGN, **W}),
    Config("ignore-valid-class", {"ignore_index": 1}, {}),
    Config("ignore-valid-class-weight", {"ignore_index": 1}, W),
    Config("3d-mean", {}, SPATIAL3),
    Config("3d-ignore-weight-none", {"reduction": "none"}, {**SPATIAL3, **IGN, **W}),
    Config("4d-weight-mean", {}, {**SPATIAL4, **W}),
    Config("4d-ignore-sum", {"reduction": "sum"}, {**SPATIAL4, **IGN}),
    Config("axis1-3d", {"axis": 1}, {**SPATIAL3, "axis": 1, **W}),
    Config("axis1-4d-none", {"axis": 1, "reduction": "none"}, {**SPATIAL4, "axis": 1, **IGN}),
    Config("unbatched", {}, {"batch": ()}),
]

SMOOTH_CONFIGS = [
    Config("smooth-mean", {"label_smoothing": 0.1}, {}),
    Config("smooth-weight-mean", {"label_smoothing": 0.2}, W),
    Config("smooth-weight-sum", {"label_smoothing": 0.2, "reduction": "sum"}, W),
    Config("smooth-weight-none", {"label_smoothing": 0.2, "reduction": "none"}, W),
    Config("smooth-ignore-weight-mean", {"label_smoothing": 0.3}, {**IGN, **W}),
    Config("smooth-ignore-none", {"label_smoothing": 0.3, "reduction": "none"}, IGN),
    Config("smooth-all-ignored-weight-mean", {"label_smoothing": 0.1}, {**ALL_IGN, **W}),
    Config("smooth-one", {"label_smoothing": 1.0}, W),
    Config("smooth-negative", {"label_smoothing": -0.5}, W),
    Config("smooth-4d-ignore-weight-mean", {"label_smoothing": 0.1}, {**SPATIAL4, **IGN, **W}),
    Config("extreme-mean", {}, EXTREME),
    Config("extreme-smooth-weight-none", {"label_smoothing": 0.1, "reduction": "none"},
           {**EXTREME, **W, **IGN}),
]

register(FunctionCase("cross_entropy", "losses", ll.losses.cross_entropy, _torch_cross_entropy,
                      _index_inputs, INDEX_CONFIGS + SMOOTH_CONFIGS, rtol={"float32": 3e-5},
                      tolerance_reason=(
                          "float32 label smoothing: the input gradient p - (1 - eps) onehot - eps / C cancels"
                          " where p nears the smoothed target; over 16 seeds of the smoothing configs"
                          " (jitted): losslab vs torch 1.2e-5, each vs a float64 evaluation 3.1e-5"
                          " (losslab) and 3.3e-5 (torch); the other configs <= 4e-6 over 4 seeds. Registered"
                          " seeds 4.1e-6.")))

# Confident rows (-log p ~ 1e-4) and |logits| ~ 1e4: the float32 value keeps torch's digits only if
# it is computed in torch's order, (x_t - m) - log(sum(exp(x - m))) (x_t - logsumexp(x) was 0.8% off
# at [[50, 40]] and 3e-4 absolute at 1e4). Own case for the gradient's tolerance (reason below).
CONFIDENT_CONFIGS = [
    Config("confident-none", {"reduction": "none"}, {"confident": 10.0}),
    Config("confident-sum", {"reduction": "sum"}, {"confident": 10.0, "batch": (64,)}),
    Config("confident-offset1e4-none", {"reduction": "none"}, {"confident": 3.0, "offset": 1e4}),
    Config("confident-offset-neg1e4-mean", {}, {"confident": 12.0, "offset": -1e4}),
]
# Values only: the float32 gradient there is p_t - 1 ~ -1e-4, which cancels in torch as here (exp(lp_t)
# has float32 resolution 6e-8 near 1, and XLA fuses exp(lp) * g - g into one multiply-add where torch
# rounds twice). Measured over 10 seeds of these configs: losslab vs torch 8.7e-3, each vs the float64
# truth 2.2e-2 (losslab) and 2.1e-2 (torch); no tolerance would make that comparison meaningful. In
# float64 the gradients of these configs agree with torch to 8.7e-13 (measured, not part of the case).
register(FunctionCase("cross_entropy_confident", "losses", ll.losses.cross_entropy, _torch_cross_entropy,
                      _index_inputs, CONFIDENT_CONFIGS, grad_argnums=()))


PROB_CONFIGS = [
    Config("soft-mean", {}, {}),
    Config("soft-sum", {"reduction": "sum"}, {}),
    Config("soft-none", {"reduction": "none"}, {}),
    Config("onehot-mean", {}, {"one_hot": True}),
    Config("soft-weight-mean", {}, W),
    Config("soft-weight-none", {"reduction": "none"}, W),
    Config("soft-smooth-mean", {"label_smoothing": 0.2}, {}),
    Config("soft-smooth-weight-sum", {"label_smoothing": 0.2, "reduction": "sum"}, W),
    Config("soft-3d-smooth-weight-mean", {"label_smoothing": 0.1}, {**SPATIAL3, **W}),
    Config("soft-4d-none", {"reduction": "none"}, SPATIAL4),
    Config("soft-axis1-4d-weight-mean", {"axis": 1}, {**SPATIAL4, "axis": 1, **W}),
    Config("soft-unbatched", {}, {"batch": ()}),
]

# float32 input gradients of soft targets are t * sum(g) ... - p * sum(t g): two O(1) terms that
# cancel, so entries near the comparison floor (1e-3 of the largest) carry 1 ulp of the O(1) terms,
# ~6e-8 / 1e-3 = 6e-5 relative, in torch as much as here. Measured over 15 seeds per config:
# losslab vs torch worst 5.1e-5; against a float64 evaluation losslab 4.8e-5 and torch 9.9e-5
# (torch's own log_softmax backward vs a torch-formula custom VJP in JAX: 1.8e-5 over 200 seeds).
PROB_REASON = ("float32 gradient cancellation (p*sum(t g) - t g): 1 ulp of O(1) terms at the 1e-3 floor;"
               " measured losslab-vs-torch 5.1e-5, each vs float64 truth 4.8e-5 (losslab) and 9.9e-5 (torch)")

register(FunctionCase("cross_entropy_probs", "losses", ll.losses.cross_entropy, _torch_cross_entropy,
                      _prob_inputs, PROB_CONFIGS, grad_argnums=(0, 1), rtol={"float32": 1e-4},
                      tolerance_reason=PROB_REASON))

register(FunctionCase(
    "nll_loss", "losses", ll.losses.nll_loss, _torch_nll_loss,
    lambda rng, dtype, **p: _index_inputs(rng, dtype, **{"log_probs": True, **p}),
    INDEX_CONFIGS + [Config("raw-values-weight-ignore-sum", {"reduction": "sum"},
                            {**W, **IGN, "log_probs": False, "scale": 3.0})]))

FOCAL_CONFIGS = [
    Config("gamma0", {"gamma": 0.0}, {}),
    Config("gamma0.5", {"gamma": 0.5}, {}),
    Config("gamma2-mean", {}, {}),
    Config("gamma2-sum", {"reduction": "sum"}, {}),
    Config("gamma5-none", {"gamma": 5.0, "reduction": "none"}, {}),
    Config("alpha-scalar", {"alpha": 0.25}, {}),
    Config("alpha-per-class", {"alpha": (0.25, 1.0, 2.0, 0.5, 0.75)}, {}),
    Config("alpha-per-class-ignore-mean", {"alpha": (0.25, 1.0, 2.0, 0.5, 0.75)}, IGN),
    Config("gamma0.5-ignore-none", {"gamma": 0.5, "reduction": "none"}, IGN),
    Config("ignore-valid-class", {"ignore_index": 2}, {}),
    Config("all-ignored-mean", {}, ALL_IGN),
    Config("3d-gamma2-alpha-mean", {"alpha": 0.5}, {**SPATIAL3, **IGN}),
    Config("4d-gamma1-none", {"gamma": 1.0, "reduction": "none"}, SPATIAL4),
    Config("axis1-4d", {"axis": 1, "gamma": 1.5}, {**SPATIAL4, "axis": 1}),
    Config("confident-gamma0.5", {"gamma": 0.5, "reduction": "none"}, {"scale": 4.0}),
]

register(FunctionCase("focal_loss", "losses", ll.losses.focal_loss, _torch_focal_loss,
                      _index_inputs, FOCAL_CONFIGS))


def _dice_inputs(rng, dtype, batch=(3, 4, 5), num_classes=4, target="int", probs=False, axis=-1):
  """``(input, target)``: logits or probabilities, and int labels / one-hot / soft targets."""
  x = _gen.normal(rng, (*batch, num_classes), dtype)
  if probs:
    x = (np.exp(x) / np.exp(x).sum(-1, keepdims=True)).astype(dtype)
  y = _gen.labels(rng, batch, num_classes)
  if target == "onehot":
    y = np.eye(num_classes, dtype=dtype)[y]
  elif target == "soft":
    z = np.exp(rng.standard_normal((*batch, num_classes)))
    y = (z / z.sum(-1, keepdims=True)).astype(dtype)
  if axis != -1:
    x = np.moveaxis(x, -1, axis)
    y = np.moveaxis(y, -1, axis) if y.ndim == x.ndim else y
  return x, y


DICE_CONFIGS = [
    Config("logits-int-mean", {}, {}),
    Config("logits-int-none", {"reduction": "none"}, {}),
    Config("logits-onehot-sum", {"reduction": "sum"}, {"target": "onehot"}),
    Config("logits-soft-mean", {}, {"target": "soft"}),
    Config("probs-int-mean", {"from_logits": False}, {"probs": True}),
    Config("probs-onehot-none", {"from_logits": False, "reduction": "none"},
           {"probs": True, "target": "onehot"}),
    Config("smooth0-mean", {"smooth": 0.0}, {"batch": (2, 30)}),
    Config("smooth1e-5-none", {"smooth": 1e-5, "reduction": "none"}, {"batch": (2, 40)}),
    Config("smooth10-mean", {"smooth": 10.0}, {}),
    Config("2d-spatial-int-mean", {}, {"batch": (2, 5, 6), "num_classes": 3}),
    Config("2d-spatial-soft-none", {"reduction": "none"}, {"batch": (2, 5, 6), "target": "soft"}),
    Config("no-spatial", {}, {"batch": (6,)}),
    Config("axis1-2d-onehot", {"axis": 1}, {"batch": (2, 5, 6), "target": "onehot", "axis": 1}),
]

# The dice gradient 2t/den - num/den^2, then the softmax backward p * (g - sum(p g)), cancels twice;
# float32 entries near the comparison floor carry a few ulps of O(1) terms. Measured over 15 seeds
# per config: losslab vs torch worst 1.5e-4 (smooth10-mean); against a float64 evaluation losslab
# 8.9e-5 and the torch reference 5.9e-5 (logits-soft-mean: 3.3e-5 and 3.4e-5).
DICE_REASON = ("float32 gradient cancellation (dice quotient rule, then softmax backward); measured"
               " losslab-vs-torch 1.5e-4 worst over 15 seeds, each vs float64 truth <= 8.9e-5")

register(FunctionCase("dice_loss", "losses", ll.losses.dice_loss, _torch_dice_loss, _dice_inputs,
                      DICE_CONFIGS, rtol={"float32": 3e-4}, tolerance_reason=DICE_REASON))

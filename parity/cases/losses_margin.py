"""Parity cases for the margin and metric-learning losses.

For the 2-D ``(N, C)`` inputs of the class-index losses the class axis is already last, so no axis
moves between the two layouts.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

import losslab_jax as ll
from parity._case import Config, FunctionCase, register
from parity.cases import _gen
from parity.reference.contrastive import ContrastiveLoss


def _signs(rng, shape, dtype, kind="pm1"):
  """Labels: ``pm1`` random +-1; ``mixed`` also 0, 2, 0.5 (torch's formulas still apply)."""
  values = {"pm1": [1.0, -1.0], "mixed": [1.0, -1.0, 0.0, 2.0, 0.5], "mixed-int": [1, -1, 0, 2]}[kind]
  y = rng.choice(values, size=shape)
  return y.astype(np.int64 if kind == "mixed-int" else dtype)


# --- margin_ranking_loss ------------------------------------------------------------------------

def _ranking(rng, dtype, shape, target="float", ties=False):
  x1 = _gen.normal(rng, shape, dtype)
  x2 = x1.copy() if ties else _gen.normal(rng, shape, dtype)
  y = _signs(rng, shape, np.int64 if target == "int" else dtype)
  return x1, x2, y


register(FunctionCase(
    "margin_ranking_loss", "losses", ll.losses.margin_ranking_loss, F.margin_ranking_loss, _ranking,
    [Config("1d-mean", {}, {"shape": (9,)}),
     Config("2d-sum-margin", {"margin": 0.5, "reduction": "sum"}, {"shape": (5, 4)}),
     Config("none-negative-margin", {"margin": -0.3, "reduction": "none"}, {"shape": (8,)}),
     Config("int-target", {"margin": 0.2, "reduction": "none"}, {"shape": (3, 4), "target": "int"}),
     Config("equal-inputs-kink", {"reduction": "sum"}, {"shape": (6,), "ties": True}),
     Config("0d", {"margin": 1.0, "reduction": "none"}, {"shape": ()})],
    grad_argnums=(0, 1)))


# --- hinge_embedding_loss -----------------------------------------------------------------------

def _hinge(rng, dtype, shape, target="pm1", kink=None):
  x = np.abs(_gen.normal(rng, shape, dtype, scale=1.5))
  if kink is not None:  # some entries exactly at the margin
    x.reshape(-1)[::2] = kink
  return x, _signs(rng, shape, dtype, target)


register(FunctionCase(
    "hinge_embedding_loss", "losses", ll.losses.hinge_embedding_loss, F.hinge_embedding_loss, _hinge,
    [Config("mean", {}, {"shape": (10,)}),
     Config("sum-margin2", {"margin": 2.0, "reduction": "sum"}, {"shape": (4, 5)}),
     Config("none-negative-margin", {"margin": -0.5, "reduction": "none"}, {"shape": (3, 4)}),
     Config("targets-outside-pm1", {"reduction": "none"}, {"shape": (12,), "target": "mixed"}),
     Config("int-targets", {"reduction": "mean"}, {"shape": (12,), "target": "mixed-int"}),
     Config("input-at-margin", {"margin": 1.0, "reduction": "sum"}, {"shape": (8,), "kink": 1.0})]))


# --- multi_margin_loss --------------------------------------------------------------------------

def _multi(rng, dtype, n, c, target_shape=None, integer_scores=False, weight=False, scalar=False):
  """``scalar``: a 0-d input (torch: one sample of one class, so ``c`` must be 1)."""
  shape = () if scalar else (c,) if n is None else (n, c)
  x = (rng.integers(-2, 3, shape).astype(dtype) if integer_scores else _gen.normal(rng, shape, dtype))
  y = _gen.labels(rng, (n,) if n is not None else (target_shape or ()), c)
  if not weight:
    return x, y
  return x, y, _gen.uniform(rng, (c,), dtype, 0.2, 2.0)


def _multi_jax(x, y, w=None, **kw):
  return ll.losses.multi_margin_loss(x, y, weight=w, **kw)


def _multi_torch(x, y, w=None, **kw):
  return F.multi_margin_loss(x, y, weight=w, **kw)


register(FunctionCase(
    "multi_margin_loss", "losses", _multi_jax, _multi_torch, _multi,
    [Config("p1-mean", {}, {"n": 6, "c": 5}),
     Config("p2-sum", {"p": 2, "reduction": "sum"}, {"n": 6, "c": 5}),
     Config("p1-weight-none", {"reduction": "none"}, {"n": 7, "c": 4, "weight": True}),
     Config("p2-weight-mean-margin", {"p": 2, "margin": 0.5}, {"n": 5, "c": 6, "weight": True}),
     Config("negative-margin", {"margin": -0.5, "reduction": "none"}, {"n": 6, "c": 3}),
     Config("kinks-integer-scores", {"reduction": "sum"}, {"n": 8, "c": 5, "integer_scores": True}),
     Config("1d-0d-target", {"reduction": "none"}, {"n": None, "c": 5}),
     Config("1d-1d-target-p2", {"p": 2, "reduction": "none"}, {"n": None, "c": 5, "target_shape": (1,)}),
     Config("0d-input-0d-target", {"reduction": "none"}, {"n": None, "c": 1, "scalar": True}),
     Config("0d-input-1d-target-p2-weight", {"p": 2, "reduction": "mean", "margin": 2.0},
            {"n": None, "c": 1, "scalar": True, "target_shape": (1,), "weight": True})]))


# --- multilabel_margin_loss ---------------------------------------------------------------------

def _multilabel_targets(rng, n, c, pattern):
  """Rows of class lists: a prefix of targets, then -1, then junk in [-1, C) that torch ignores."""
  y = rng.integers(-1, c, (n, c))
  for i in range(n):
    row = ["random", "start-neg", "full"][i % 3] if pattern == "mixed" else pattern
    k = {"random": rng.integers(0, c + 1), "start-neg": 0, "full": c}[row]
    y[i, :k] = rng.integers(0, c, k)  # duplicates allowed, and they count
    if k < c:
      y[i, k] = -1
  return y.astype(np.int64)


def _multilabel(rng, dtype, n, c, pattern="random", integer_scores=False, scalar_target=None):
  """``scalar_target``: a 0-d input (one class, torch accepts it) with this target array."""
  if scalar_target is not None:
    return _gen.normal(rng, (), dtype), np.asarray(scalar_target, np.int64)
  x = (rng.integers(-1, 2, (n or 1, c)).astype(dtype) if integer_scores
       else _gen.normal(rng, (n or 1, c), dtype))
  y = _multilabel_targets(rng, n or 1, c, pattern)
  return (x, y) if n else (x[0], y[0])


register(FunctionCase(
    "multilabel_margin_loss", "losses", ll.losses.multilabel_margin_loss,
    F.multilabel_margin_loss, _multilabel,
    [Config("random-mean", {}, {"n": 8, "c": 5}),
     Config("mixed-none", {"reduction": "none"}, {"n": 9, "c": 6, "pattern": "mixed"}),
     Config("all-rows-start-neg", {"reduction": "sum"}, {"n": 4, "c": 5, "pattern": "start-neg"}),
     Config("full-rows-duplicates", {"reduction": "none"}, {"n": 5, "c": 4, "pattern": "full"}),
     Config("kinks-integer-scores", {"reduction": "sum"}, {"n": 8, "c": 5, "integer_scores": True}),
     Config("1d", {"reduction": "none"}, {"n": None, "c": 7}),
     Config("0d-target0-none", {"reduction": "none"}, {"n": None, "c": 1, "scalar_target": 0}),
     Config("0d-target-neg-mean", {}, {"n": None, "c": 1, "scalar_target": -1}),
     Config("0d-target-1d-sum", {"reduction": "sum"}, {"n": None, "c": 1, "scalar_target": [0]})]))


# --- cosine_embedding_loss ----------------------------------------------------------------------

def _cosine(rng, dtype, n, d, target="pm1", zero_rows=False, identical=False):
  shape = (d,) if n is None else (n, d)
  x1 = _gen.normal(rng, shape, dtype)
  x2 = x1.copy() if identical else _gen.normal(rng, shape, dtype)
  if zero_rows:  # x1 zero, x2 zero, both zero, for each label
    x1[0::3] = 0
    x2[1::3] = 0
    x1[2::6] = 0
    x2[2::6] = 0
  y = _signs(rng, () if n is None else (n,), dtype, target)
  return x1, x2, y


register(FunctionCase(
    "cosine_embedding_loss", "losses", ll.losses.cosine_embedding_loss, F.cosine_embedding_loss, _cosine,
    [Config("mean", {}, {"n": 8, "d": 5}),
     Config("sum-margin", {"margin": 0.3, "reduction": "sum"}, {"n": 8, "d": 5}),
     Config("none-negative-margin", {"margin": -0.2, "reduction": "none"}, {"n": 8, "d": 3}),
     Config("zero-vectors", {"reduction": "none"}, {"n": 12, "d": 4, "zero_rows": True}),
     Config("target-mixture-int", {"reduction": "mean"}, {"n": 10, "d": 4, "target": "mixed-int"}),
     Config("target-mixture-float", {"reduction": "none"}, {"n": 10, "d": 4, "target": "mixed"}),
     Config("1d-0d-target", {"reduction": "none"}, {"n": None, "d": 6})],
    grad_argnums=(0, 1),
    rtol={"float32": 3e-4},
    tolerance_reason=(
        "float32 gradients only. d cos/dx = x2/den - cos * x1/m1 cancels between O(1) terms, and"
        " torch's float32 sqrt is not correctly rounded (17% of 1e5 uniform samples differ by 1 ulp from"
        " IEEE sqrt, which jnp.sqrt and numpy give), so the two sides differ by an ulp of those terms;"
        " the comparator judges entries down to 1e-3 of the largest. Worst measured over 100 seeds x 7"
        " configs: 1.1e-4; the registered seeds: 5.1e-5. Values and float64 meet the defaults.")))

# At x1 == x2 the true gradient of cos is 0 and both sides return rounding noise (~1e-8 in float32),
# so only the values are compared; tests/losses/test_metric.py checks that the gradient is finite and ~0.
# The values are 1 - cos and cos - margin with cos = 1 up to rounding: their precision is absolute, one
# ulp of 1, so they are judged relative to 1 (value_floor). Under jit XLA computes prod / sqrt(q) as
# prod * rsqrt(q), one ulp from torch's division: cos(x, x) = 0.99999994 where torch gives 1.
register(FunctionCase(
    "cosine_embedding_loss_identical", "losses", ll.losses.cosine_embedding_loss, F.cosine_embedding_loss,
    _cosine,
    [Config("identical-inputs", {"margin": 0.5, "reduction": "none"}, {"n": 6, "d": 4, "identical": True}),
     Config("identical-1d-sum", {"margin": -0.5, "reduction": "sum"}, {"n": None, "d": 5, "identical": True})],
    grad_argnums=(), value_floor=1.0,
    tolerance_reason=("values 1 - cos and cos - margin at cos = 1 +- 1 ulp are judged relative to 1: under jit"
                      " XLA's rsqrt puts cos(x, x) one ulp (1.2e-7 float32, 1.1e-16 float64) from torch's")))


# --- triplet_margin_loss ------------------------------------------------------------------------

def _triplet(rng, dtype, shape, same=None):
  a, p, n = (_gen.normal(rng, shape, dtype) for _ in range(3))
  if same == "all":
    p, n = a.copy(), a.copy()
  elif same == "anchor-positive":  # d(a, n) == d(p, n): a tie under swap
    p = a.copy()
  return a, p, n


register(FunctionCase(
    "triplet_margin_loss", "losses", ll.losses.triplet_margin_loss, F.triplet_margin_loss, _triplet,
    [Config("p2-mean", {}, {"shape": (8, 5)}),
     Config("p1-sum", {"p": 1.0, "reduction": "sum"}, {"shape": (8, 5)}),
     Config("p3-none", {"p": 3.0, "reduction": "none"}, {"shape": (8, 5)}),
     Config("p-inf-none", {"p": float("inf"), "reduction": "none"}, {"shape": (6, 4)}),
     Config("swap-p2-margin", {"swap": True, "margin": 2.0, "reduction": "none"}, {"shape": (8, 5)}),
     Config("swap-p1", {"swap": True, "p": 1.0, "margin": 3.0}, {"shape": (8, 5)}),
     Config("swap-tie", {"swap": True, "margin": 5.0, "reduction": "none"},
            {"shape": (5, 3), "same": "anchor-positive"}),
     Config("identical-inputs", {"reduction": "none"}, {"shape": (4, 3), "same": "all"}),
     Config("identical-eps0-p1", {"p": 1.0, "eps": 0.0, "reduction": "sum"}, {"shape": (4, 3), "same": "all"}),
     Config("identical-eps0-p3", {"p": 3.0, "eps": 0.0, "reduction": "sum"}, {"shape": (4, 3), "same": "all"}),
     Config("small-margin-eps", {"margin": 0.1, "eps": 1e-3}, {"shape": (8, 5)}),
     Config("1d", {"reduction": "none"}, {"shape": (6,)}),
     Config("3d", {"p": 2.0, "reduction": "none"}, {"shape": (2, 3, 4)})],
    grad_argnums=(0, 1, 2),
    rtol={"float32": 3e-4},
    tolerance_reason=(
        "float32 gradients only. The anchor's gradient is a difference of unit vectors"
        " (a-p)/|a-p| - (a-n)/|a-n|, which cancels; torch and XLA sum the squares in different (equally"
        " valid) orders, so the norms differ in the last bit in 15-25% of rows (measured, D=3..64), and"
        " the comparator judges entries down to 1e-3 of the largest. Worst measured over 100 seeds x 13"
        " configs: 9.7e-5; the registered seeds: 1.4e-5 (torch's own float32 gradient is up to 3.8e-5"
        " from the float64 one)."
        " Values and float64 meet the defaults.")))


# --- contrastive_loss ---------------------------------------------------------------------------

def _contrastive(rng, dtype, shape, target="01", same=None):
  x1 = _gen.normal(rng, shape, dtype)
  x2 = _gen.normal(rng, shape, dtype, scale=0.5)
  if same == "identical":
    x2 = x1.copy()
  elif same == "zero-distance":  # x1 - x2 + 1e-6 == 0 exactly: d == 0
    x1 = np.zeros(shape, dtype)
    x2 = np.full(shape, 1e-6, dtype)
  lead = shape[:-1]
  if target == "01":
    y = rng.integers(0, 2, lead).astype(dtype)
  elif target == "int":
    y = rng.integers(0, 2, lead).astype(np.int64)
  else:  # soft labels in [0, 1]
    y = _gen.uniform(rng, lead, dtype)
  return x1, x2, y


def _contrastive_torch(x1, x2, y, margin=1.0, reduction="mean"):
  return ContrastiveLoss(margin, reduction)(x1, x2, y)


register(FunctionCase(
    "contrastive_loss", "losses", ll.losses.contrastive_loss, _contrastive_torch, _contrastive,
    [Config("mean", {}, {"shape": (8, 4)}),
     Config("sum-margin2", {"margin": 2.0, "reduction": "sum"}, {"shape": (8, 4)}),
     Config("none-margin0.5", {"margin": 0.5, "reduction": "none"}, {"shape": (8, 4)}),
     Config("int-target", {"reduction": "none"}, {"shape": (8, 4), "target": "int"}),
     Config("soft-target", {"reduction": "none"}, {"shape": (8, 4), "target": "soft"}),
     Config("identical-inputs", {"reduction": "none"}, {"shape": (6, 3), "same": "identical"}),
     Config("zero-distance", {"reduction": "none"}, {"shape": (6, 3), "same": "zero-distance"}),
     Config("1d", {"reduction": "none"}, {"shape": (5,)}),
     Config("3d", {"margin": 1.5, "reduction": "none"}, {"shape": (2, 3, 4)})],
    grad_argnums=(0, 1)))

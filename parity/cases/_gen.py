"""Seeded input generators shared by the case modules."""

from __future__ import annotations

import numpy as np


def normal(rng: np.random.Generator, shape, dtype, scale: float = 1.0) -> np.ndarray:
  return (scale * rng.standard_normal(shape)).astype(dtype)


def uniform(rng: np.random.Generator, shape, dtype, low: float = 0.0, high: float = 1.0) -> np.ndarray:
  return rng.uniform(low, high, shape).astype(dtype)


def labels(rng: np.random.Generator, shape, num_classes: int) -> np.ndarray:
  return rng.integers(0, num_classes, shape).astype(np.int64)


def pair(shape):
  """An input generator of two same-shape normal arrays (input, target)."""

  def make(rng, dtype, shape=shape):
    return normal(rng, shape, dtype), normal(rng, shape, dtype)

  return make

"""What ``test_properties.py`` needs to know about each public loss."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """A loss and how to feed it.

  Attributes:
    id: test id.
    fn: the public loss.
    make: ``make(rng, dtype) -> tuple`` of inputs; floating inputs in ``dtype``, leading axis a batch.
    kwargs: extra keywords (never ``reduction``; the tests set it).
    diff: positions of the inputs to differentiate.
    extreme: ``extreme(dtype) -> tuple`` of inputs at the edge (logits +-1e4, probabilities 0 and 1,
      every target ignored) where torch's loss and gradient are finite; None to skip.
    extreme_reduction: the reduction to use at the extreme (``"sum"`` where mean is NaN by design).
    mean_is_plain_mean: ``reduction="mean"`` equals ``mean(reduction="none")`` (False for weighted
      means, ``batchmean`` etc.).
    sum_of_none: ``reduction="sum"`` equals ``sum(reduction="none")``.
    vmap_ok: vmapping over the leading axis is meaningful (the per-example call is valid).
    low_precision: bf16/f16 inputs are accepted.
    nan_row: the batch entry (index on the leading axis) that the NaN test fills with NaN in each
      differentiated input; pick one whose loss depends on it (not an all-ignored row).
  """

  id: str
  fn: Callable[..., Any]
  make: Callable[[np.random.Generator, Any], tuple]
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  diff: tuple[int, ...] = (0,)
  extreme: Callable[[Any], tuple] | None = None
  extreme_reduction: str = "mean"
  mean_is_plain_mean: bool = True
  sum_of_none: bool = True
  vmap_ok: bool = True
  low_precision: bool = True
  reductions: tuple[str, ...] = ("none", "mean", "sum")
  nan_row: int = 0

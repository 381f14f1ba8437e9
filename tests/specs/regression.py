"""Property specs for the regression/probabilistic losses and activations' users."""

import numpy as np

import losslab_jax as ll
from tests.property_specs import LossSpec


def _pair(rng, dtype):
  return rng.standard_normal((6, 3)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype)


def _pair_extreme(dtype):
  x = np.array([[1e4, -1e4, 0.0], [3.0, -3.0, 1e-30]], dtype=dtype)
  return x, np.zeros_like(x)


SPECS = [
    LossSpec("l1_loss", ll.losses.l1_loss, _pair, diff=(0, 1), extreme=_pair_extreme),
    LossSpec("mse_loss", ll.losses.mse_loss, _pair, diff=(0, 1), extreme=_pair_extreme),
]

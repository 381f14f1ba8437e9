"""Shared test helpers."""

from __future__ import annotations

import numpy as np


def assert_close(actual, expected, rtol=1e-10, atol=0.0, err_msg=""):
  np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                             rtol=rtol, atol=atol, err_msg=err_msg)


def rng(seed: int = 0) -> np.random.Generator:
  return np.random.default_rng(seed)

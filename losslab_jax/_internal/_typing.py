"""Type aliases used across losslab_jax."""

from typing import Literal

Reduction = Literal["none", "mean", "sum"]
KLReduction = Literal["none", "mean", "sum", "batchmean"]

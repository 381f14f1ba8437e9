"""The parity suite: losslab_jax against its PyTorch twins, in float32 and float64.

``python -m parity`` runs every registered case; ``python -m parity bench`` times them.
Cases live in ``parity.cases``; torch references for what torch lacks in ``parity.reference``.
"""

from parity._case import REGISTRY as REGISTRY
from parity._case import Config as Config
from parity._case import FunctionCase as FunctionCase
from parity._case import TrajectoryCase as TrajectoryCase
from parity._case import register as register

__all__ = ["REGISTRY", "Config", "FunctionCase", "TrajectoryCase", "register"]

"""The parity suite: losslab_jax against its PyTorch twins, in float32 and float64.

``python -m parity`` runs every registered case; ``python -m parity bench`` times them.
Cases live in ``parity.cases``; torch references for what torch lacks in ``parity.reference``.

For your own port: :func:`copy_weights` (torch weights into an nnx model), :func:`compare_forward`
(submodule by submodule, the first divergence, named flax-vs-torch traps),
:func:`compare_training` (step by step: loss, every gradient, update and new value) and
``python -m parity compare MODULE:FACTORY``.
"""

from parity._case import REGISTRY as REGISTRY
from parity._case import Config as Config
from parity._case import FunctionCase as FunctionCase
from parity._case import TrajectoryCase as TrajectoryCase
from parity._case import register as register
from parity._port import Divergence as Divergence
from parity._port import ForwardReport as ForwardReport
from parity._port import TrainingReport as TrainingReport
from parity._port import Trap as Trap
from parity._port import compare_forward as compare_forward
from parity._port import compare_training as compare_training

__all__ = ["REGISTRY", "Config", "Divergence", "ForwardReport", "FunctionCase", "TrainingReport", "TrajectoryCase",
           "Trap", "compare_forward", "compare_training", "copy_weights", "register"]


def __getattr__(name: str):
  """``parity.copy_weights`` is ``losslab_jax.interop.torch.copy_weights`` (imported on first use, so that
  ``import parity`` stays light)."""
  if name == "copy_weights":
    from losslab_jax.interop.torch import copy_weights

    return copy_weights
  raise AttributeError(f"module 'parity' has no attribute {name!r}")

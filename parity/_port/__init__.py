"""Parity for the user's own port: compare a torch model and its flax.nnx port, forward and in training."""

from parity._port._forward import compare_forward as compare_forward
from parity._port._training import compare_training as compare_training
from parity._port._report import Divergence as Divergence
from parity._port._report import ForwardReport as ForwardReport
from parity._port._report import StepRecord as StepRecord
from parity._port._report import TrainingReport as TrainingReport
from parity._port._report import Trap as Trap

__all__ = ["Divergence", "ForwardReport", "StepRecord", "TrainingReport", "Trap", "compare_forward", "compare_training"]

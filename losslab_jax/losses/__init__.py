"""Losses with ``torch.nn.functional`` semantics; the class axis is the last axis.

Every function is pure and jit/vmap/grad-safe. See ``API.md`` §1 for the contract.
"""

from losslab_jax.losses._checked import checked as checked
from losslab_jax.losses._regression import l1_loss as l1_loss
from losslab_jax.losses._regression import mse_loss as mse_loss

__all__ = [
    "checked",
    "l1_loss",
    "mse_loss",
]

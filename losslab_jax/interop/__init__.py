"""Interoperability with other frameworks.

``losslab_jax.interop.torch`` moves a PyTorch training run to losslab_jax (and its optimizer state
back): optimizers, their per-parameter state and LR schedulers. It imports ``torch`` only when one
of its functions runs, so importing this package never imports torch.
"""

from losslab_jax.interop import torch as torch

__all__ = ["torch"]

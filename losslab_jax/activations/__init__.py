"""Activations with torch-equal values and gradients."""

from losslab_jax.activations._activations import log_softmax as log_softmax
from losslab_jax.activations._activations import relu as relu
from losslab_jax.activations._activations import sigmoid as sigmoid
from losslab_jax.activations._activations import softmax as softmax
from losslab_jax.activations._activations import tanh as tanh

__all__ = ["log_softmax", "relu", "sigmoid", "softmax", "tanh"]

"""Twin models for whole-model parity: the same small MLP and CNN in flax.nnx and in torch.

Both frameworks hold the *same* weights: :func:`build_pair` initialises the torch model with
torch's default initialisation from one seed, builds the nnx model and copies every parameter
across with :func:`parity.copy_weights` (``ll.interop.torch.copy_weights``), which returns the
weight map the comparisons use: they happen in torch's layout, by torch's parameter names
(``fc1.weight``, ``conv1.bias``, ...), through ``weight_map.tree_to_torch``.

Layouts (torch -> nnx; the standard layers' rules of ``copy_weights``, plus one rule here):

* ``nn.Linear`` weight ``(out, in)`` -> ``nnx.Linear`` kernel ``(in, out)``: a transpose.
* ``nn.Conv2d`` weight ``(out, in, kh, kw)`` -> ``nnx.Conv`` kernel ``(kh, kw, in, out)``.
* The CNN's dense layer after ``flatten``: torch flattens ``NCHW`` activations in ``(C, H, W)``
  order, nnx flattens ``NHWC`` ones in ``(H, W, C)`` order, so the weight's input axis is
  permuted as well as transposed. Each model stays idiomatic in its framework (no transposes in
  the nnx forward pass); only the weights move.
* Biases are the same arrays.

Models:

* ``"mlp"``: ``Linear(20, 32) -> relu -> Linear(32, 10)``; input ``(N, 20)``.
* ``"cnn"``: ``Conv(1 -> 4, 3x3, valid) -> relu -> Conv(4 -> 8, 3x3, valid) -> relu -> flatten
  -> Linear(128, 10)``; input ``(N, 1, 8, 8)`` in torch, ``(N, 8, 8, 1)`` in nnx.
"""

from __future__ import annotations

import numpy as np

MODELS = ("mlp", "cnn")
IN_FEATURES = 20  # MLP input width
HIDDEN = 32  # MLP hidden width
NUM_OUT = 10  # outputs (classes, or regression targets) of both models
IMAGE = 8  # CNN input images are IMAGE x IMAGE x 1
CHANNELS = (4, 8)  # CNN conv channels
_FEAT = IMAGE - 4  # spatial size after two valid 3x3 convolutions


# --- torch ------------------------------------------------------------------------------------


def _torch_classes():
  import torch
  from torch import nn

  class TorchMLP(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc1 = nn.Linear(IN_FEATURES, HIDDEN)
      self.fc2 = nn.Linear(HIDDEN, NUM_OUT)

    def forward(self, x):
      return self.fc2(torch.relu(self.fc1(x)))

  class TorchCNN(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(1, CHANNELS[0], 3)
      self.conv2 = nn.Conv2d(CHANNELS[0], CHANNELS[1], 3)
      self.fc = nn.Linear(CHANNELS[1] * _FEAT * _FEAT, NUM_OUT)

    def forward(self, x):
      h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
      return self.fc(torch.flatten(h, 1))

  return {"mlp": TorchMLP, "cnn": TorchCNN}


def build_torch(kind: str, seed: int, dtype: str):
  """The torch model ``kind`` with torch's default initialisation from ``torch.manual_seed(seed)``.

  The weights are drawn in float32 (torch's default) and then cast to ``dtype``, so the float32
  and float64 models start from the same numbers.
  """
  import torch

  from parity._convert import torch_dtype

  _check_kind(kind)
  torch.manual_seed(seed)
  return _torch_classes()[kind]().to(torch_dtype(dtype))


def torch_named_params(model) -> dict[str, np.ndarray]:
  """``{name: numpy copy}`` of a torch model's parameters."""
  return {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}


# --- flax.nnx ---------------------------------------------------------------------------------


def _nnx_classes():
  import jax.numpy as jnp
  from flax import nnx

  class MLP(nnx.Module):
    def __init__(self, *, dtype, rngs: nnx.Rngs):
      self.fc1 = nnx.Linear(IN_FEATURES, HIDDEN, dtype=dtype, param_dtype=dtype, rngs=rngs)
      self.fc2 = nnx.Linear(HIDDEN, NUM_OUT, dtype=dtype, param_dtype=dtype, rngs=rngs)

    def __call__(self, x):
      return self.fc2(nnx.relu(self.fc1(x)))

  class CNN(nnx.Module):
    def __init__(self, *, dtype, rngs: nnx.Rngs):
      kw = dict(kernel_size=(3, 3), padding="VALID", dtype=dtype, param_dtype=dtype, rngs=rngs)
      self.conv1 = nnx.Conv(1, CHANNELS[0], **kw)
      self.conv2 = nnx.Conv(CHANNELS[0], CHANNELS[1], **kw)
      self.fc = nnx.Linear(_FEAT * _FEAT * CHANNELS[1], NUM_OUT, dtype=dtype, param_dtype=dtype,
                           rngs=rngs)

    def __call__(self, x):
      h = nnx.relu(self.conv2(nnx.relu(self.conv1(x))))
      return self.fc(jnp.reshape(h, (h.shape[0], -1)))

  return {"mlp": MLP, "cnn": CNN}


def build_nnx(kind: str, dtype: str, seed: int = 0):
  """The nnx model ``kind`` with flax's own initialisation (overwrite it with :func:`copy_weights`)."""
  import jax.numpy as jnp
  from flax import nnx

  _check_kind(kind)
  return _nnx_classes()[kind](dtype=jnp.dtype(dtype), rngs=nnx.Rngs(seed))


# --- weights: parity.copy_weights, with one rule for the CNN's flattened dense layer --------------


def _flat_dense_to_nnx(w):  # (out, C*H*W) -> (H*W*C, out)
  c = CHANNELS[1]
  return w.reshape(NUM_OUT, c, _FEAT, _FEAT).transpose(2, 3, 1, 0).reshape(_FEAT * _FEAT * c, NUM_OUT)


def _flat_dense_to_torch(k):  # (H*W*C, out) -> (out, C*H*W)
  c = CHANNELS[1]
  return k.reshape(_FEAT, _FEAT, c, NUM_OUT).transpose(3, 2, 0, 1).reshape(NUM_OUT, c * _FEAT * _FEAT)


def _rules(kind: str):
  """``copy_weights`` rules: the standard layers need none; the CNN's ``fc`` reads NCHW-flattened features."""
  if kind != "cnn":
    return None
  from losslab_jax.interop.torch import Placement

  return {"fc": {"weight": Placement("kernel", to_flax=_flat_dense_to_nnx, to_torch=_flat_dense_to_torch),
                 "bias": "bias"}}


def _check_kind(kind: str) -> None:
  if kind not in MODELS:
    raise ValueError(f"parity models: expected kind in {MODELS}, got {kind!r}")


def copy_weights(kind: str, torch_model, nnx_model):
  """Copy ``torch_model``'s parameters into ``nnx_model`` (in place, exact) with :func:`parity.copy_weights`;
  returns the weight map, which converts any per-parameter tree (gradients, moments) between layouts."""
  from parity._port._weights import copy_weights as _copy

  _check_kind(kind)
  rules = _rules(kind)
  return _copy(torch_model, nnx_model, **({"rules": rules} if rules else {}))


def nnx_params(nnx_model) -> dict:
  """The nnx model's parameters as a pure dict of arrays (``{"fc1": {"kernel": ..., "bias": ...}}``)."""
  from flax import nnx

  return nnx.to_pure_dict(nnx.state(nnx_model, nnx.Param))


def build_pair(kind: str, seed: int, dtype: str):
  """``(torch_model, nnx_model, weight_map)``: torch's default init from ``seed``, copied into the nnx model."""
  torch_model = build_torch(kind, seed, dtype)
  nnx_model = build_nnx(kind, dtype)
  return torch_model, nnx_model, copy_weights(kind, torch_model, nnx_model)


def input_shape(kind: str, batch: int, layout: str) -> tuple[int, ...]:
  """Input shape for ``batch`` examples; ``layout`` is ``"torch"`` (NCHW) or ``"nnx"`` (NHWC)."""
  _check_kind(kind)
  if kind == "mlp":
    return (batch, IN_FEATURES)
  return (batch, 1, IMAGE, IMAGE) if layout == "torch" else (batch, IMAGE, IMAGE, 1)


def to_nnx_input(kind: str, x: np.ndarray) -> np.ndarray:
  """A torch-layout input batch -> the nnx layout (NCHW -> NHWC for the CNN)."""
  return x if kind == "mlp" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))

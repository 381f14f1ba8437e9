"""Twin models for whole-model parity: the same small MLP and CNN in flax.nnx and in torch.

Both frameworks hold the *same* weights: :func:`build_pair` initialises the torch model with
torch's default initialisation from one seed, builds the nnx model and copies every parameter
across with the layout change it needs. Comparisons happen in torch's layout, by torch's
parameter names (``fc1.weight``, ``conv1.bias``, ...): :func:`nnx_to_torch_layout` turns the nnx
parameter state (a pure dict, as ``nnx.to_pure_dict`` gives it) into that form.

Layouts (torch -> nnx):

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

from collections.abc import Callable
from typing import Any

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
  """The nnx model ``kind`` with flax's own initialisation (overwrite it with :func:`copy_torch_to_nnx`)."""
  import jax.numpy as jnp
  from flax import nnx

  _check_kind(kind)
  return _nnx_classes()[kind](dtype=jnp.dtype(dtype), rngs=nnx.Rngs(seed))


# --- layouts ----------------------------------------------------------------------------------


def _t(a):
  return a.T


def _conv_to_nnx(w):  # (out, in, kh, kw) -> (kh, kw, in, out)
  return w.transpose(2, 3, 1, 0)


def _conv_to_torch(k):  # (kh, kw, in, out) -> (out, in, kh, kw)
  return k.transpose(3, 2, 0, 1)


def _flat_dense_to_nnx(w):  # (out, C*H*W) -> (H*W*C, out)
  c = CHANNELS[1]
  return w.reshape(NUM_OUT, c, _FEAT, _FEAT).transpose(2, 3, 1, 0).reshape(_FEAT * _FEAT * c, NUM_OUT)


def _flat_dense_to_torch(k):  # (H*W*C, out) -> (out, C*H*W)
  c = CHANNELS[1]
  return k.reshape(_FEAT, _FEAT, c, NUM_OUT).transpose(3, 2, 0, 1).reshape(NUM_OUT, c * _FEAT * _FEAT)


def _same(a):
  return a


# torch name -> (nnx path, torch->nnx, nnx->torch)
_Layout = dict[str, tuple[tuple[str, str], Callable[[Any], Any], Callable[[Any], Any]]]

LAYOUTS: dict[str, _Layout] = {
    "mlp": {
        "fc1.weight": (("fc1", "kernel"), _t, _t),
        "fc1.bias": (("fc1", "bias"), _same, _same),
        "fc2.weight": (("fc2", "kernel"), _t, _t),
        "fc2.bias": (("fc2", "bias"), _same, _same),
    },
    "cnn": {
        "conv1.weight": (("conv1", "kernel"), _conv_to_nnx, _conv_to_torch),
        "conv1.bias": (("conv1", "bias"), _same, _same),
        "conv2.weight": (("conv2", "kernel"), _conv_to_nnx, _conv_to_torch),
        "conv2.bias": (("conv2", "bias"), _same, _same),
        "fc.weight": (("fc", "kernel"), _flat_dense_to_nnx, _flat_dense_to_torch),
        "fc.bias": (("fc", "bias"), _same, _same),
    },
}


def _check_kind(kind: str) -> None:
  if kind not in MODELS:
    raise ValueError(f"parity models: expected kind in {MODELS}, got {kind!r}")


def nnx_to_torch_layout(kind: str, pure: dict) -> dict[str, Any]:
  """An nnx parameter pure dict (``{"fc1": {"kernel": ...}}``) -> ``{torch name: array}`` in torch's layout.

  Works on numpy and on JAX arrays (also traced ones), and on any pytree of the same structure
  (gradients, optimizer moments).
  """
  _check_kind(kind)
  return {name: to_torch(pure[path[0]][path[1]]) for name, (path, _, to_torch) in LAYOUTS[kind].items()}


def torch_layout_to_nnx(kind: str, named: dict[str, Any]) -> dict:
  """The inverse of :func:`nnx_to_torch_layout`: ``{torch name: array}`` -> nnx pure dict."""
  _check_kind(kind)
  pure: dict[str, dict[str, Any]] = {}
  for name, (path, to_nnx, _) in LAYOUTS[kind].items():
    pure.setdefault(path[0], {})[path[1]] = to_nnx(named[name])
  return pure


def copy_torch_to_nnx(kind: str, torch_model, nnx_model) -> None:
  """Overwrite ``nnx_model``'s parameters with ``torch_model``'s (in place, exact copies)."""
  import jax.numpy as jnp
  from flax import nnx

  named = torch_named_params(torch_model)
  if set(named) != set(LAYOUTS[kind]):
    raise ValueError(f"parity models: torch {kind} has parameters {sorted(named)}, "
                     f"expected {sorted(LAYOUTS[kind])}")
  pure = torch_layout_to_nnx(kind, named)
  state = nnx.state(nnx_model, nnx.Param)
  nnx.replace_by_pure_dict(state, {m: {p: jnp.asarray(np.ascontiguousarray(v)) for p, v in d.items()}
                                   for m, d in pure.items()})
  nnx.update(nnx_model, state)


def nnx_params(nnx_model) -> dict:
  """The nnx model's parameters as a pure dict of arrays (``{"fc1": {"kernel": ..., "bias": ...}}``)."""
  from flax import nnx

  return nnx.to_pure_dict(nnx.state(nnx_model, nnx.Param))


def build_pair(kind: str, seed: int, dtype: str):
  """``(torch_model, nnx_model)``: torch's default init from ``seed``, copied into the nnx model."""
  torch_model = build_torch(kind, seed, dtype)
  nnx_model = build_nnx(kind, dtype)
  copy_torch_to_nnx(kind, torch_model, nnx_model)
  return torch_model, nnx_model


def input_shape(kind: str, batch: int, layout: str) -> tuple[int, ...]:
  """Input shape for ``batch`` examples; ``layout`` is ``"torch"`` (NCHW) or ``"nnx"`` (NHWC)."""
  _check_kind(kind)
  if kind == "mlp":
    return (batch, IN_FEATURES)
  return (batch, 1, IMAGE, IMAGE) if layout == "torch" else (batch, IMAGE, IMAGE, 1)


def to_nnx_input(kind: str, x: np.ndarray) -> np.ndarray:
  """A torch-layout input batch -> the nnx layout (NCHW -> NHWC for the CNN)."""
  return x if kind == "mlp" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))

"""Twin models for the port tests: each in torch and in flax.nnx, written independently, tiny shapes.

* ``block``: a transformer block (Embedding, LayerNorm, multi-head attention built from Linear
  layers, the key without bias, GELU feed-forward, mean-pooled Linear head); input token ids ``(B, T)``.
* ``cnn``: Conv -> BatchNorm -> relu -> Conv(stride 2) -> BatchNorm -> relu -> global mean ->
  Linear; input ``(N, 1, 6, 6)`` in torch, ``(N, 6, 6, 1)`` in nnx.
* ``mlp``: Linear -> tanh -> Linear(square) -> tanh -> Linear.

Every option of the nnx side that a plant changes is a keyword (``ln_eps``, ``gelu_exact``,
``mid_bias``, ...), defaulting to the correct port. torch is imported inside the functions.
"""

from __future__ import annotations

import functools
import math

import numpy as np

VOCAB, D, HEADS, T, CLASSES = 11, 8, 2, 5, 3
IMAGE, C1, C2 = 6, 3, 4
IN, HID = 4, 6


def torch_block(key_bias=False):
  import torch
  import torch.nn.functional as F
  from torch import nn

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.emb = nn.Embedding(VOCAB, D)
      self.ln1 = nn.LayerNorm(D)
      # no key bias: softmax ignores a per-query constant, so its gradient is zero in exact
      # arithmetic (only rounding noise, which Adam scales up to ~lr * noise / eps)
      self.q, self.k, self.v, self.o = nn.Linear(D, D), nn.Linear(D, D, bias=key_bias), nn.Linear(D, D), nn.Linear(D, D)
      self.ln2 = nn.LayerNorm(D)
      self.ff1 = nn.Linear(D, 2 * D)
      self.ff2 = nn.Linear(2 * D, D)
      self.head = nn.Linear(D, CLASSES)

    def forward(self, ids):
      h = self.emb(ids)
      x = self.ln1(h)
      b, t, d = x.shape
      split = lambda z: z.view(b, t, HEADS, d // HEADS).transpose(1, 2)  # noqa: E731
      q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
      att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // HEADS), dim=-1) @ v
      h = h + self.o(att.transpose(1, 2).reshape(b, t, d))
      h = h + self.ff2(F.gelu(self.ff1(self.ln2(h))))
      return self.head(h.mean(1))

  return Block()


def nnx_block(dtype, key_bias=False):
  import jax
  import jax.numpy as jnp
  from flax import nnx

  class Block(nnx.Module):
    def __init__(self, rngs):
      kw = dict(param_dtype=dtype, dtype=dtype, rngs=rngs)
      self.gelu_exact = True
      self.emb = nnx.Embed(VOCAB, D, **kw)
      self.ln1 = nnx.LayerNorm(D, epsilon=1e-5, **kw)
      self.q, self.v, self.o = (nnx.Linear(D, D, **kw) for _ in range(3))
      self.k = nnx.Linear(D, D, use_bias=key_bias, **kw)
      self.ln2 = nnx.LayerNorm(D, epsilon=1e-5, **kw)
      self.ff1 = nnx.Linear(D, 2 * D, **kw)
      self.ff2 = nnx.Linear(2 * D, D, **kw)
      self.head = nnx.Linear(D, CLASSES, **kw)

    def __call__(self, ids):
      h = self.emb(ids)
      x = self.ln1(h)
      b, t, d = x.shape
      split = lambda z: z.reshape(b, t, HEADS, d // HEADS).transpose(0, 2, 1, 3)  # noqa: E731
      q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
      att = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / math.sqrt(d // HEADS), axis=-1) @ v
      h = h + self.o(att.transpose(0, 2, 1, 3).reshape(b, t, d))
      h = h + self.ff2(nnx.gelu(self.ff1(self.ln2(h)), approximate=not self.gelu_exact))
      return self.head(h.mean(1))

  return Block(nnx.Rngs(0))


def torch_cnn(momentum=0.1):
  import torch
  from torch import nn

  class CNN(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(1, C1, 3, padding=1)
      self.bn1 = nn.BatchNorm2d(C1, momentum=momentum)
      self.conv2 = nn.Conv2d(C1, C2, 3, stride=2, padding=1)
      self.bn2 = nn.BatchNorm2d(C2, momentum=momentum)
      self.fc = nn.Linear(C2, CLASSES)

    def forward(self, x):
      h = torch.relu(self.bn1(self.conv1(x)))
      h = torch.relu(self.bn2(self.conv2(h)))
      return self.fc(h.mean((2, 3)))

  return CNN()


def nnx_cnn(dtype):
  import jax.numpy as jnp
  from flax import nnx

  class CNN(nnx.Module):
    def __init__(self, rngs):
      kw = dict(param_dtype=dtype, dtype=dtype, rngs=rngs)
      bn = dict(momentum=0.9, epsilon=1e-5, use_running_average=False, **kw)
      self.conv1 = nnx.Conv(1, C1, (3, 3), padding=1, **kw)
      self.bn1 = nnx.BatchNorm(C1, **bn)
      self.conv2 = nnx.Conv(C1, C2, (3, 3), strides=2, padding=1, **kw)
      self.bn2 = nnx.BatchNorm(C2, **bn)
      self.fc = nnx.Linear(C2, CLASSES, **kw)

    def __call__(self, x):
      h = nnx.relu(self.bn1(self.conv1(x)))
      h = nnx.relu(self.bn2(self.conv2(h)))
      return self.fc(jnp.mean(h, axis=(1, 2)))

  return CNN(nnx.Rngs(0))


def torch_mlp():
  import torch
  from torch import nn

  class MLP(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc1, self.fc2, self.fc3 = nn.Linear(IN, HID), nn.Linear(HID, HID), nn.Linear(HID, CLASSES)

    def forward(self, x):
      return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))

  return MLP()


def nnx_mlp(dtype, *, mid_bias=True):
  import jax.numpy as jnp
  from flax import nnx

  class MLP(nnx.Module):
    def __init__(self, rngs):
      kw = dict(param_dtype=dtype, dtype=dtype, rngs=rngs)
      self.fc1 = nnx.Linear(IN, HID, **kw)
      self.fc2 = nnx.Linear(HID, HID, use_bias=mid_bias, **kw)
      self.fc3 = nnx.Linear(HID, CLASSES, **kw)

    def __call__(self, x):
      return self.fc3(jnp.tanh(self.fc2(jnp.tanh(self.fc1(x)))))

  return MLP(nnx.Rngs(0))


def torch_model(kind: str, dtype: str, seed: int = 0, **kw):
  import torch

  torch.manual_seed(seed)
  return {"block": torch_block, "cnn": torch_cnn, "mlp": torch_mlp}[kind](**kw).to(getattr(torch, dtype))


@functools.lru_cache(maxsize=None)
def _nnx_base(kind: str, dtype: str, mid_bias: bool = True, key_bias: bool = False):
  if kind == "mlp":
    return nnx_mlp(np.dtype(dtype), mid_bias=mid_bias)
  if kind == "block":
    return nnx_block(np.dtype(dtype), key_bias=key_bias)
  return nnx_cnn(np.dtype(dtype))


def nnx_model(kind: str, dtype: str, *, mid_bias: bool = True, key_bias: bool = False, ln_eps: float | None = None,
              gelu_exact: bool | None = None, momentum: float | None = None, padding2=None,
              train: bool | None = None):
  """A fresh nnx twin (a clone of one built once per kind and dtype: nnx initialisation compiles),
  with the plants given as keywords: the block's LayerNorm ``ln_eps`` and ``gelu_exact``; the CNN's
  BatchNorm ``momentum`` (flax's convention), ``train`` mode and ``padding2`` of its strided conv;
  the MLP's ``mid_bias``."""
  from flax import nnx

  m = nnx.clone(_nnx_base(kind, dtype, mid_bias, key_bias))
  if ln_eps is not None:
    m.ln1.epsilon = m.ln2.epsilon = ln_eps
  if gelu_exact is not None:
    m.gelu_exact = gelu_exact
  for bn in (getattr(m, "bn1", None), getattr(m, "bn2", None)):
    if bn is not None and momentum is not None:
      bn.momentum = momentum
    if bn is not None and train is not None:
      bn.use_running_average = not train
  if padding2 is not None:
    m.conv2.padding = padding2
  return m


def inputs(kind: str, n: int, rng, dtype: str = "float64"):
  """``(x, y)`` in torch's layout: token ids / images / features, and class labels."""
  if kind == "block":
    x = rng.integers(0, VOCAB, (n, T))
  elif kind == "cnn":
    x = rng.standard_normal((n, 1, IMAGE, IMAGE)).astype(dtype)
  else:
    x = rng.standard_normal((n, IN)).astype(dtype)
  return x, rng.integers(0, CLASSES, (n,))


def hand_copy_mlp(t, n, *, transpose_fc2=True):
  """Copy the MLP's weights by hand (the kernel transposed, unless a plant says otherwise)."""
  for name in ("fc1", "fc2", "fc3"):
    tl, nl = getattr(t, name), getattr(n, name)
    w = tl.weight.detach().numpy()
    nl.kernel[...] = w if (name == "fc2" and not transpose_fc2) else w.T
    if nl.bias is not None:
      nl.bias[...] = tl.bias.detach().numpy()

"""Factories for ``python -m parity compare tests.port.factories:<name>`` (the CLI tests)."""

import numpy as np

from tests.port import twins


def forward_ok(dtype="float64"):
  """A correct MLP port: one forward comparison."""
  import parity

  t, n = twins.torch_model("mlp", dtype), twins.nnx_model("mlp", dtype)
  parity.copy_weights(t, n)
  return {"name": "mlp forward", "torch": t, "nnx": n, "inputs": np.ones((2, twins.IN), dtype)}


def both():
  """A correct forward comparison and a training comparison with a planted optimizer (Adam eps inside sqrt)."""
  import optax
  import torch
  import torch.nn.functional as F

  import losslab_jax as ll

  t, n = twins.torch_model("mlp", "float64"), twins.nnx_model("mlp", "float64")
  rng = np.random.default_rng(0)
  training = {"name": "mlp training", "torch": t, "nnx": n,
              "torch_optimizer": torch.optim.Adam(t.parameters(), lr=1e-2),
              "torch_loss_fn": lambda m, b: F.cross_entropy(m(b[0]), b[1]),
              "jax_loss_fn": lambda m, b: ll.losses.cross_entropy(m(b[0]), b[1]),
              "batches": [twins.inputs("mlp", 4, rng) for _ in range(2)],
              "tx": optax.chain(optax.scale_by_adam(eps=0.0, eps_root=1e-8), optax.scale(-1e-2))}
  return [forward_ok(), training]


def not_a_comparison():
  return {"torch": None}

"""Port the pytorch/examples MNIST recipe to flax.nnx and check it step by step with ``parity``.

The recipe (``pytorch/examples/mnist/main.py``, shrunk to 8x8 synthetic images so it runs in
seconds): a small CNN ending in ``log_softmax``, the NLL loss, ``Adadelta(lr=1.0)`` and
``StepLR(step_size=1, gamma=0.7)`` stepped **once per epoch**. The port:

==============================================  ==============================================
PyTorch                                         flax.nnx + losslab_jax
==============================================  ==============================================
``nn.Conv2d(1, 4, 3)`` on NCHW                  ``nnx.Conv(1, 4, (3, 3), padding="VALID")`` on NHWC
``torch.flatten(x, 1)`` (C, H, W order)         ``x.transpose(0, 3, 1, 2).reshape(n, -1)`` (same order,
                                                so ``copy_weights`` needs no rule for ``fc1``)
``F.log_softmax(x, dim=1)``, ``F.nll_loss``     ``jax.nn.log_softmax``, ``ll.losses.nll_loss``
``Adadelta`` + ``StepLR`` per epoch             ``ll.interop.torch.from_torch_optimizer(opt, sched,
                                                steps_per_epoch=N)`` (``compare_training`` does it)
==============================================  ==============================================

Dropout is left out: it is random, so no two frameworks agree on it step by step.

``parity.compare_training`` copies torch's weights into the nnx model, builds the optimizer and
the per-epoch schedule from torch's, runs both loops on the same batches and prints a table per
step (loss, worst gradient / update / parameter error); float64 must agree to 1e-10.

It also shows the silent failure this recipe used to hit: the same StepLR converted as if it
were stepped after every batch. ``compare_training`` finds the step where the learning rates
part and names it (``schedule_shift``).

Needs PyTorch. Run: ``python examples/port_epoch_schedule.py [--fast]``.
"""

from __future__ import annotations

import sys

import jax

jax.config.update("jax_enable_x64", True)  # float64 comparison; the float32 run stays float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import losslab_jax as ll  # noqa: E402


def torch_net():
  import torch
  import torch.nn.functional as F
  from torch import nn

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(1, 4, 3)
      self.conv2 = nn.Conv2d(4, 8, 3)
      self.fc1 = nn.Linear(8 * 2 * 2, 16)
      self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
      x = F.relu(self.conv1(x))
      x = F.max_pool2d(F.relu(self.conv2(x)), 2)
      x = F.relu(self.fc1(torch.flatten(x, 1)))
      return F.log_softmax(self.fc2(x), dim=1)

  return Net()


class Net(nnx.Module):
  def __init__(self, dtype, *, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.conv1 = nnx.Conv(1, 4, (3, 3), padding="VALID", **kw)
    self.conv2 = nnx.Conv(4, 8, (3, 3), padding="VALID", **kw)
    self.fc1 = nnx.Linear(8 * 2 * 2, 16, **kw)
    self.fc2 = nnx.Linear(16, 10, **kw)

  def __call__(self, x):  # x: NHWC
    x = nnx.relu(self.conv1(x))
    x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))
    x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # flatten in torch's (C, H, W) order
    return jax.nn.log_softmax(self.fc2(nnx.relu(self.fc1(x))), axis=-1)


def make_batches(n_batches: int, batch: int = 8, seed: int = 0):
  """Synthetic 8x8 "digits": a class-dependent blob plus noise; one (images NCHW, labels) per step."""
  rng = np.random.default_rng(seed)
  protos = rng.normal(size=(10, 1, 8, 8))
  out = []
  for _ in range(n_batches):
    y = rng.integers(0, 10, batch)
    out.append(((protos[y] + 0.5 * rng.normal(size=(batch, 1, 8, 8))).astype(np.float32), y))
  return out


def run(dtype: str, batches, steps_per_epoch: int, tx=None):
  import torch
  import torch.nn.functional as F

  import parity

  torch.manual_seed(1)
  model = torch_net().to(getattr(torch, dtype))
  opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
  sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
  port = Net(jnp.dtype(dtype), rngs=nnx.Rngs(0))
  return parity.compare_training(
      model, opt, lambda m, b: F.nll_loss(m(b[0]), b[1]),
      port, lambda m, b: ll.losses.nll_loss(m(b[0].transpose(0, 2, 3, 1)), b[1]),  # NCHW -> NHWC
      batches, scheduler=sched, scheduler_interval="epoch", steps_per_epoch=steps_per_epoch, tx=tx)


def main(fast: bool = False, out: str | None = None) -> dict:
  del out  # this example writes no files
  try:
    import torch  # noqa: F401
  except ImportError:
    print("port_epoch_schedule: PyTorch is not installed (pip install torch); nothing to compare, skipping.")
    return {}
  steps_per_epoch, epochs = (3, 2) if fast else (5, 4)
  batches = make_batches(steps_per_epoch * epochs)
  reports = {}
  for dtype in ("float64", "float32"):
    print(f"\n=== {dtype}: Adadelta + StepLR stepped once per epoch ({steps_per_epoch} batches per epoch) ===")
    reports[dtype] = run(dtype, batches, steps_per_epoch)
    print(reports[dtype])
  print("\n=== the silent failure: the same StepLR converted as if stepped after every batch ===")
  per_batch = ll.optim.adadelta(lr=ll.schedules.step_lr(1.0, step_size=1, gamma=0.7))
  wrong = run("float64", batches, steps_per_epoch, tx=per_batch)
  print(wrong)
  if not all(r.passed for r in reports.values()):
    raise SystemExit("port_epoch_schedule: the port does not match torch")
  if wrong.passed or wrong.first_divergence.step != 1 or wrong.first_divergence.trap != "schedule_shift":
    raise SystemExit("port_epoch_schedule: the per-batch schedule was not caught at step 1")
  print(f"\nport_epoch_schedule: PASSED in float64 and float32; the per-batch conversion is caught at step "
        f"{wrong.first_divergence.step} ({wrong.first_divergence.trap}).")
  return {d: r.passed for d, r in reports.items()}


if __name__ == "__main__":
  main(fast="--fast" in sys.argv)

"""Continue a torch training run in flax.nnx from its checkpoint, and check the continuation step by step.

A torchvision-style CNN with BatchNorm, trained with ``SGD(momentum=0.9, nesterov=True)`` and
warmup then cosine decay (``SequentialLR(LinearLR -> CosineAnnealingLR)``), runs some steps in
torch and is checkpointed (``model``, ``optimizer`` and ``scheduler`` state dicts, as a training
script saves them). The checkpoint is loaded back, and the run continues twice from it: in torch,
and in flax, where ``parity.compare_training`` copies the weights and BatchNorm statistics
(``parity.copy_weights``), converts the optimizer state (momentum buffers, in flax layouts) and the
scheduler's position (``ll.interop.torch``), and compares every step of the two continuations.

Two flax ports of the same network:

* with ``nnx.BatchNorm(momentum=0.9)`` (flax's momentum is ``1 - torch's``): everything agrees to
  float64 rounding except the BatchNorm running variances, which ``compare_training`` reports as
  the ``batchnorm_running_var`` trap: torch averages the *unbiased* batch variance, flax the biased
  one (training outputs are unaffected; evaluation after training is not);
* with a 20-line ``TorchBatchNorm`` that stores the unbiased variance as torch does: everything
  agrees, running statistics included.

The convolutions use explicit symmetric ``padding=1``: flax's ``padding="SAME"`` with stride 2 pads
asymmetrically and would not match torch's ``padding=1`` (``compare_forward`` names that trap).

Needs PyTorch. Run: ``python examples/port_cnn_checkpoint.py [--fast]``.
"""

from __future__ import annotations

import io
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import losslab_jax as ll  # noqa: E402

C1, C2, CLASSES, IMAGE = 8, 16, 5, 8


def torch_cnn():
  import torch
  from torch import nn

  class CNN(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1, self.bn1 = nn.Conv2d(3, C1, 3, padding=1, bias=False), nn.BatchNorm2d(C1)
      self.conv2, self.bn2 = nn.Conv2d(C1, C2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C2)
      self.fc = nn.Linear(C2, CLASSES)

    def forward(self, x):
      x = torch.relu(self.bn1(self.conv1(x)))
      x = torch.relu(self.bn2(self.conv2(x)))
      return self.fc(x.mean((2, 3)))

  return CNN()


class TorchBatchNorm(nnx.Module):
  """BatchNorm over the last axis that keeps torch's running statistics: momentum in torch's convention,
  and the *unbiased* batch variance in the running average (the batch itself is normalised with the
  biased one, as in both frameworks)."""

  def __init__(self, num_features: int, *, momentum: float = 0.1, epsilon: float = 1e-5, dtype=jnp.float32):
    self.scale = nnx.Param(jnp.ones(num_features, dtype))
    self.bias = nnx.Param(jnp.zeros(num_features, dtype))
    self.mean = nnx.BatchStat(jnp.zeros(num_features, dtype))
    self.var = nnx.BatchStat(jnp.ones(num_features, dtype))
    self.momentum, self.epsilon = momentum, epsilon

  def __call__(self, x):
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axes, keepdims=True)
    n = x.size // x.shape[-1]
    m = self.momentum
    self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean.reshape(-1))
    self.var[...] = (1 - m) * self.var[...] + m * jax.lax.stop_gradient(var.reshape(-1) * n / (n - 1))
    shape = (1,) * (x.ndim - 1) + (-1,)
    return (x - mean) / jnp.sqrt(var + self.epsilon) * self.scale[...].reshape(shape) + self.bias[...].reshape(shape)


class CNN(nnx.Module):
  def __init__(self, dtype, *, torch_batchnorm: bool, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.conv1 = nnx.Conv(3, C1, (3, 3), padding=1, use_bias=False, **kw)  # not "SAME": see the docstring
    self.conv2 = nnx.Conv(C1, C2, (3, 3), strides=2, padding=1, use_bias=False, **kw)
    if torch_batchnorm:
      self.bn1, self.bn2 = TorchBatchNorm(C1, dtype=dtype), TorchBatchNorm(C2, dtype=dtype)
    else:  # flax's momentum keeps that fraction of the old average: 1 - torch's 0.1
      self.bn1 = nnx.BatchNorm(C1, momentum=0.9, epsilon=1e-5, **kw)
      self.bn2 = nnx.BatchNorm(C2, momentum=0.9, epsilon=1e-5, **kw)
    self.fc = nnx.Linear(C2, CLASSES, **kw)

  def __call__(self, x):  # NHWC
    x = nnx.relu(self.bn1(self.conv1(x)))
    x = nnx.relu(self.bn2(self.conv2(x)))
    return self.fc(x.mean((1, 2)))


def make_torch_run(dtype: str, total: int):
  import torch

  torch.manual_seed(0)
  model = torch_cnn().to(getattr(torch, dtype))
  opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
  s = torch.optim.lr_scheduler
  warmup = 3
  sched = s.SequentialLR(opt, [s.LinearLR(opt, start_factor=0.1, total_iters=warmup),
                               s.CosineAnnealingLR(opt, T_max=total - warmup)], milestones=[warmup])
  return model, opt, sched


def main(fast: bool = False, out: str | None = None) -> dict:
  del out  # the checkpoint lives in memory; this example writes no files
  try:
    import torch
    import torch.nn.functional as F
  except ImportError:
    print("port_cnn_checkpoint: PyTorch is not installed (pip install torch); nothing to compare, skipping.")
    return {}
  import parity

  before, after = (4, 4) if fast else (20, 20)
  rng = np.random.default_rng(0)
  batches = [(rng.normal(size=(8, 3, IMAGE, IMAGE)), rng.integers(0, CLASSES, 8)) for _ in range(before + after)]
  t_loss = lambda m, b: F.cross_entropy(m(b[0]), b[1])  # noqa: E731
  j_loss = lambda m, b: ll.losses.cross_entropy(m(b[0].transpose(0, 2, 3, 1)), b[1])  # noqa: E731 NCHW -> NHWC

  # 1. torch trains `before` steps and saves a checkpoint
  model, opt, sched = make_torch_run("float64", before + after)
  for x, y in batches[:before]:
    opt.zero_grad()
    t_loss(model, (torch.from_numpy(x), torch.from_numpy(y))).backward()
    opt.step()
    sched.step()
  buf = io.BytesIO()
  torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
              "step": before}, buf)

  results = {}
  for torch_bn in (False, True):
    # 2. load the checkpoint (what a new process would do) ...
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    model, opt, sched = make_torch_run("float64", before + after)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    # 3. ... and continue it in torch and in flax, step by step
    port = CNN(jnp.float64, torch_batchnorm=torch_bn, rngs=nnx.Rngs(0))
    rules = {torch.nn.BatchNorm2d: {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var",
                                    "num_batches_tracked": None}} if torch_bn else None
    wm = parity.copy_weights(model, port, **({"rules": rules} if rules else {}))
    title = "TorchBatchNorm (torch's running variance)" if torch_bn else "nnx.BatchNorm"
    print(f"\n=== continued from torch's step {ckpt['step']} in flax, {after} steps, {title} ===")
    report = parity.compare_training(model, opt, t_loss, port, j_loss, batches[before:], scheduler=sched,
                                     weight_map=wm, step_count=ckpt["step"])
    print(report)
    results[title] = report
  flax_bn, torch_bn = results.values()
  everything_else = all(max(s.worst(q)[1] for q in ("grad", "update", "param")) <= 1e-10 and s.loss_rel <= 1e-10
                        for s in flax_bn.steps)
  if not (torch_bn.passed and everything_else and flax_bn.first_divergence.trap == "batchnorm_running_var"):
    raise SystemExit("port_cnn_checkpoint: the continuation does not match torch")
  print("\nport_cnn_checkpoint: PASSED: the continuation matches torch to float64 1e-10 (nnx.BatchNorm: all but its "
        "running variance, reported as the batchnorm_running_var trap; TorchBatchNorm: everything).")
  return {k: r.passed for k, r in results.items()}


if __name__ == "__main__":
  main(fast="--fast" in sys.argv)

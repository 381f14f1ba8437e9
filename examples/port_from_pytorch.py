"""Porting a PyTorch training loop to JAX with losslab_jax, and checking it step by step.

The same MLP, loss, optimizer, schedule and gradient clipping, written once in PyTorch and once in
JAX (flax.nnx + losslab_jax), started from the same weights and fed the same batches:

==========================================================  ==============================================
PyTorch                                                     losslab_jax
==========================================================  ==============================================
``F.cross_entropy(logits, y, label_smoothing=0.1)``         ``ll.losses.cross_entropy(logits, y, label_smoothing=0.1)``
``torch.optim.AdamW(params, lr, weight_decay=0.01)``        ``ll.optim.adamw(lr=schedule, betas=(momentum, 0.999), weight_decay=0.01)``
``OneCycleLR(opt, max_lr, total_steps)``                    ``ll.schedules.one_cycle_lr(max_lr, total_steps)``
  (also cycles Adam's beta1 by default)                     ``ll.schedules.one_cycle_momentum(total_steps)``
``clip_grad_norm_(params, 1.0)`` before ``step()``          ``ll.optim.clip_grad_norm(1.0)`` first in the chain
``opt.zero_grad(); loss.backward(); opt.step();             ``nnx.value_and_grad`` + ``optimizer.update(model, grads)``
sched.step()``                                              (the schedule advances with the optimizer's step count)
==========================================================  ==============================================

Two details of the port: torch's ``nn.Linear`` stores its weight as ``[out, in]`` and flax's as
``[in, out]`` (copy the transpose), and torch's class axis is axis 1 while losslab_jax's is the last
axis (the same for ``[N, C]`` logits).

The script prints the first losses of both runs side by side and the largest relative difference
over all steps, in float64 (agreement to rounding, ~1e-15) and float32 (~1e-6), and fails loudly if
they drift apart. Then it does the same check in one call, ``parity.compare_training`` (weights
copied by ``parity.copy_weights`` with a ``rename`` from torch's ``0, 2, 4`` to ``l1, l2, l3``; the
optimizer and scheduler converted by ``ll.interop.torch``), and prints its per-step report.

Needs PyTorch (``pip install torch``); without it the script says so and exits.
Run: ``python examples/port_from_pytorch.py [--fast]``.
"""

from __future__ import annotations

import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # for the float64 comparison; float32 arrays stay float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import losslab_jax as ll  # noqa: E402

MAX_LR, WEIGHT_DECAY, MAX_NORM, SMOOTHING = 0.05, 0.01, 1.0, 0.1
# Tolerances for the largest relative loss difference over the run.
TOL = {"float64": 1e-10, "float32": 1e-5}


def make_batches(steps: int, batch: int, seed: int = 0):
  """A teacher network labels Gaussian inputs; one batch per step."""
  rng = np.random.default_rng(seed)
  teacher = rng.normal(size=(10, 3))
  x = rng.normal(size=(steps, batch, 10))
  y = np.argmax(x @ teacher + 0.5 * rng.normal(size=(steps, batch, 3)), axis=-1)
  return x, y


# ---- PyTorch ------------------------------------------------------------------------------------


def torch_run(x, y, dtype: str):
  import torch
  import torch.nn.functional as F

  torch.manual_seed(0)
  tdtype = getattr(torch, dtype)
  model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                              torch.nn.Tanh(), torch.nn.Linear(32, 3)).to(tdtype)
  init = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
          for m in model if isinstance(m, torch.nn.Linear)]
  opt = torch.optim.AdamW(model.parameters(), lr=MAX_LR, weight_decay=WEIGHT_DECAY)
  sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, total_steps=len(x))
  losses = []
  for xb, yb in zip(x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(torch.as_tensor(xb, dtype=tdtype)), torch.as_tensor(yb),
                           label_smoothing=SMOOTHING)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    opt.step()
    sched.step()
    losses.append(loss.item())
  return init, np.array(losses)


# ---- JAX / losslab_jax --------------------------------------------------------------------------


class MLP(nnx.Module):

  def __init__(self, dtype, *, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.l1, self.l2, self.l3 = nnx.Linear(10, 32, **kw), nnx.Linear(32, 32, **kw), nnx.Linear(32, 3, **kw)

  def __call__(self, x):
    return self.l3(jnp.tanh(self.l2(jnp.tanh(self.l1(x)))))


def jax_run(x, y, init, dtype: str):
  dtype = jnp.dtype(dtype)
  model = MLP(dtype, rngs=nnx.Rngs(0))
  for layer, (w, b) in zip((model.l1, model.l2, model.l3), init):
    layer.kernel[...] = jnp.asarray(w.T, dtype)  # torch stores [out, in]
    layer.bias[...] = jnp.asarray(b, dtype)
  total = len(x)
  tx = optax.chain(
      ll.optim.clip_grad_norm(MAX_NORM),
      ll.optim.adamw(lr=ll.schedules.one_cycle_lr(MAX_LR, total_steps=total),
                     betas=(ll.schedules.one_cycle_momentum(total_steps=total), 0.999),
                     weight_decay=WEIGHT_DECAY),
  )
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, xb, yb):
    def loss_fn(model):
      return ll.losses.cross_entropy(model(xb), yb, label_smoothing=SMOOTHING)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  return np.array([float(step(model, optimizer, jnp.asarray(xb, dtype), jnp.asarray(yb)))
                   for xb, yb in zip(x, y)])


def compare_with_parity(x, y):
  """``parity.compare_training`` on the same recipe: the porter's one-call check."""
  import torch
  import torch.nn.functional as F

  import parity

  torch.manual_seed(0)
  model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                              torch.nn.Tanh(), torch.nn.Linear(32, 3)).double()
  opt = torch.optim.AdamW(model.parameters(), lr=MAX_LR, weight_decay=WEIGHT_DECAY)
  sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, total_steps=len(x))
  port = MLP(jnp.float64, rngs=nnx.Rngs(0))
  # torch's Sequential names its layers "0", "2", "4"; the port calls them l1, l2, l3
  wm = parity.copy_weights(model, port, rename={"0": "l1", "2": "l2", "4": "l3"})
  return parity.compare_training(
      model, opt, lambda m, b: F.cross_entropy(m(b[0]), b[1], label_smoothing=SMOOTHING),
      port, lambda m, b: ll.losses.cross_entropy(m(b[0]), b[1], label_smoothing=SMOOTHING),
      list(zip(x, y)), scheduler=sched, clip_grad_norm=MAX_NORM, weight_map=wm)


def main(fast: bool = False, out: str | None = None) -> dict[str, float]:
  del out  # this example writes no files
  try:
    import torch  # noqa: F401
  except ImportError:
    print("port_from_pytorch: PyTorch is not installed (pip install torch); nothing to compare, skipping.")
    return {}
  t0 = time.perf_counter()
  steps = 12 if fast else 100
  x, y = make_batches(steps, batch=64)
  worst = {}
  for dtype in ("float64", "float32"):
    init, torch_losses = torch_run(x, y, dtype)
    jax_losses = jax_run(x, y, init, dtype)
    rel = np.abs(jax_losses - torch_losses) / np.abs(torch_losses)
    worst[dtype] = float(rel.max())
    print(f"\n{dtype}: loss per step, PyTorch vs losslab_jax")
    print(f"{'step':>6}{'torch':>22}{'losslab_jax':>22}{'rel. diff':>12}")
    for k in list(range(min(6, steps))) + ([steps - 1] if steps > 6 else []):
      print(f"{k:>6}{torch_losses[k]:>22.15f}{jax_losses[k]:>22.15f}{rel[k]:>12.1e}")
    print(f"largest relative difference over all {steps} steps: {rel.max():.2e} (step {int(rel.argmax())});"
          f" loss went {torch_losses[0]:.4f} -> {torch_losses[-1]:.4f}")
  print("\nThe same check, done by parity.compare_training (weights copied by parity.copy_weights; AdamW and\n"
        "OneCycleLR, with its beta1 cycling, converted by ll.interop.torch; every gradient, update and parameter\n"
        "compared at every step, float64):")
  report = compare_with_parity(x, y)
  print(report)
  print(f"\n({time.perf_counter() - t0:.1f}s)")
  if not report.passed:
    raise SystemExit(f"port_from_pytorch: parity.compare_training: {report.first_divergence}")
  for dtype, value in worst.items():
    if not value <= TOL[dtype]:
      raise SystemExit(f"port_from_pytorch: {dtype} losses differ by {value:.2e} > {TOL[dtype]:.0e}")
  print(f"The two loops agree: float64 within {worst['float64']:.1e}, float32 within {worst['float32']:.1e}.")
  return worst


if __name__ == "__main__":
  main(fast="--fast" in sys.argv)

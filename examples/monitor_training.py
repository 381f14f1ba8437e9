"""Training monitoring: time per step, throughput, compile time, memory and logged values of an nnx loop.

A flax.nnx MLP learns a noisy regression problem with AdamW and a Hugging Face style schedule
(``ll.schedules.cosine_schedule_with_warmup``), one jitted step per batch. ``ll.monitor.Monitor``
records each step's loss, learning rate (read from the optimizer state with
``ll.monitor.learning_rate``) and gradient norm as device arrays, and waits for the device only
once every ``sync_every`` steps, so the loop keeps JAX's asynchronous dispatch. It draws a live
progress line while it runs, prints a summary at the end (first step with compilation, time per
step, steps and examples per second, peak device memory where the backend reports it, peak host
RSS), and the run is exported to ``monitor.json``, ``monitor.csv`` and ``monitor.png``.

Run: ``python examples/monitor_training.py [--fast] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import losslab_jax as ll


def output_dir(out: str | None) -> pathlib.Path:
  path = pathlib.Path(out or os.environ.get("LOSSLAB_EXAMPLES_OUT") or "example-output")
  path.mkdir(parents=True, exist_ok=True)
  return path


class MLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.l1 = nnx.Linear(16, 128, rngs=rngs)
    self.l2 = nnx.Linear(128, 128, rngs=rngs)
    self.l3 = nnx.Linear(128, 1, rngs=rngs)

  def __call__(self, x):
    return self.l3(jax.nn.gelu(self.l2(jax.nn.gelu(self.l1(x)))))


def data(n: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 16)).astype(np.float32)
  y = np.sin(x[:, :4].sum(1, keepdims=True)) + 0.1 * rng.normal(size=(n, 1)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(y.astype(np.float32))


def main(fast: bool, out: str | None) -> None:
  steps, batch = (60, 64) if fast else (2000, 256)
  x, y = data(batch * 16)
  schedule = ll.schedules.cosine_schedule_with_warmup(3e-3, num_warmup_steps=steps // 10, num_training_steps=steps)
  model = MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, ll.optim.adamw(lr=schedule, weight_decay=1e-2), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, xb, yb):
    def loss_fn(m):
      return ll.losses.mse_loss(m(xb), yb)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    lr = ll.monitor.learning_rate(optimizer.opt_state, schedule)  # the lr this update uses
    optimizer.update(model, grads)
    return loss, lr, optax.tree.norm(grads)

  n_batches = x.shape[0] // batch
  mon = ll.monitor.Monitor(steps, items_per_step=batch, sync_every=10 if fast else 50, name="mlp")
  for k in range(steps):
    i = k % n_batches
    loss, lr, grad_norm = train_step(model, optimizer, x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
    mon.step(loss=loss, lr=lr, grad_norm=grad_norm)
  summary = mon.close()

  path = output_dir(out)
  mon.to_json(path / "monitor.json")
  mon.to_csv(path / "monitor.csv")
  try:
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed: no plot")
  else:
    plt.close(mon.plot(path / "monitor.png"))
  print(f"steps: {summary['steps']}, waits for the device: {summary['syncs']}")
  print(f"first step (compile + run): {summary['first_step_s'] * 1e3:.1f} ms;"
        f" time per step afterwards: {summary['step_time_s'] * 1e3:.3f} ms;"
        f" {summary['items_per_s']:.0f} examples/s")
  print(f"loss: {summary['values']['loss']['max']:.4f} at most -> {summary['values']['loss']['last']:.4f} at the end")
  print(f"wrote {path / 'monitor.json'}, {path / 'monitor.csv'}")


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description="Monitor an nnx training loop.")
  parser.add_argument("--fast", action="store_true", help="a quick smoke run")
  parser.add_argument("--out", default=None, help="directory for the exports and the plot")
  args = parser.parse_args()
  main(args.fast, args.out)

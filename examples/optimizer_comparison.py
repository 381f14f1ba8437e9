"""Optimizer comparison: SGD, SGD with momentum, Adam, AdamW and Lion on the same problem.

A flax.nnx MLP learns the two-spirals problem (2-D points, 2 classes) with cross entropy. Every
optimizer starts from the same weights and sees the same mini-batches; only the update rule and
its learning rate differ (each at a value commonly used for it). The training runs as one jitted
``lax.scan`` per optimizer, in the functional style (``nnx.split`` once, then plain pytrees and
``optax.apply_updates``), which is how losslab_jax optimizers compose with any JAX code.

Prints the final training loss and accuracy per optimizer and writes the loss curves to
``optimizer_comparison.png``.

Run: ``python examples/optimizer_comparison.py [--fast] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import losslab_jax as ll

try:
  from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
  tqdm = None


def output_dir(out: str | None) -> pathlib.Path:
  path = pathlib.Path(out or os.environ.get("LOSSLAB_EXAMPLES_OUT") or "example-output")
  path.mkdir(parents=True, exist_ok=True)
  return path


def two_spirals(n: int, seed: int):
  rng = np.random.default_rng(seed)
  t = np.sqrt(rng.random(n)) * 3 * np.pi
  label = rng.integers(0, 2, n)
  sign = np.where(label == 0, 1.0, -1.0)
  x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * np.pi)
  x += 0.03 * rng.normal(size=x.shape)
  return x.astype(np.float32), label.astype(np.int32)


class MLP(nnx.Module):

  def __init__(self, *, rngs: nnx.Rngs):
    self.l1 = nnx.Linear(2, 64, rngs=rngs)
    self.l2 = nnx.Linear(64, 64, rngs=rngs)
    self.l3 = nnx.Linear(64, 2, rngs=rngs)

  def __call__(self, x):
    return self.l3(jnp.tanh(self.l2(jnp.tanh(self.l1(x)))))


OPTIMIZERS = {
    "SGD (lr=0.1)": lambda: ll.optim.sgd(lr=0.1),
    "SGD momentum (lr=0.05, 0.9)": lambda: ll.optim.sgd(lr=0.05, momentum=0.9),
    "Adam (lr=3e-3)": lambda: ll.optim.adam(lr=3e-3),
    "AdamW (lr=3e-3, wd=1e-2)": lambda: ll.optim.adamw(lr=3e-3, weight_decay=1e-2),
    "Lion (lr=1e-3, wd=0.03)": lambda: ll.optim.lion(lr=1e-3, weight_decay=0.03),
}


def train(tx: optax.GradientTransformation, graphdef, params, x, y, batches):
  """All steps in one jitted scan; returns the per-step training losses and the final params."""

  def loss_fn(params, xb, yb):
    return ll.losses.cross_entropy(nnx.merge(graphdef, params)(xb), yb)

  @jax.jit
  def run(params, batches):
    def step(carry, idx):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), batches)
    return params, losses

  return run(params, batches)


def main(fast: bool = False, out: str | None = None) -> dict[str, tuple[float, float]]:
  t0 = time.perf_counter()
  steps = 60 if fast else 3000
  x, y = two_spirals(2000, seed=0)
  x, y = jnp.asarray(x), jnp.asarray(y)
  graphdef, params = nnx.split(MLP(rngs=nnx.Rngs(0)))  # the same initial weights for everyone
  batches = jnp.asarray(np.random.default_rng(1).integers(0, len(y), size=(steps, 128)))

  curves, results = {}, {}
  items = list(OPTIMIZERS.items())
  for name, make in (tqdm(items, desc="optimizers", leave=False) if tqdm else items):
    final, losses = train(make(), graphdef, params, x, y, batches)
    logits = nnx.merge(graphdef, final)(x)
    acc = float(jnp.mean(jnp.argmax(logits, -1) == y))
    curves[name] = np.asarray(losses)
    results[name] = (float(ll.losses.cross_entropy(logits, y)), acc)

  print(f"two spirals, {len(y)} points, MLP 2-64-64-2 (tanh), {steps} steps of batch 128\n")
  print(f"{'optimizer':<30}{'final train loss':>17}{'train accuracy':>16}")
  for name, (loss, acc) in results.items():
    print(f"{name:<30}{loss:>17.4f}{acc:>16.3f}")
  best = min(results, key=lambda k: results[k][0])
  print(f"\nLowest final loss: {best}.")

  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed; skipping the plot")
  else:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    window = max(1, steps // 60)
    for name, c in curves.items():
      smooth = np.convolve(c, np.ones(window) / window, mode="valid")
      ax.plot(np.arange(len(smooth)) + window - 1, smooth, lw=1.6, label=name)
    ax.set(yscale="log", xlabel="step", ylabel=f"training loss (moving average of {window})",
           title="Two spirals: the same MLP, batches and initial weights")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = output_dir(out) / "optimizer_comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")
  print(f"({time.perf_counter() - t0:.1f}s)")
  return results


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description="Compare SGD, momentum, Adam, AdamW and Lion.")
  parser.add_argument("--fast", action="store_true", help="a quick smoke run")
  parser.add_argument("--out", default=None, help="directory for the plot")
  args = parser.parse_args()
  main(fast=args.fast, out=args.out)

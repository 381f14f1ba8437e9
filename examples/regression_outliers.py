"""Regression with outliers: MSE vs Huber vs L1.

Fit a line to ``y = 2 x + 1 + noise`` where 15% of the targets were corrupted upwards by 8 to 15
units. The same flax.nnx linear model is trained with ``ll.schemes.regression(loss_type)`` for
``mse``, ``huber`` and ``l1``. MSE is the maximum-likelihood fit for Gaussian noise, so the
outliers drag its line up; Huber's and L1's gradients are bounded, so the outliers pull with a
fixed force and the line stays close to the clean data (L1 fits the conditional median).

Prints the fitted slope and intercept and the RMSE on clean test data; writes a plot of the fits.

Run: ``python examples/regression_outliers.py [--fast] [--out DIR]``; the plot goes to ``DIR``
(default ``$LOSSLAB_EXAMPLES_OUT`` or ``./example-output``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax.numpy as jnp
import numpy as np
from flax import nnx

from losslab_jax import schemes

TRUE_SLOPE, TRUE_INTERCEPT = 2.0, 1.0


def output_dir(out: str | None) -> pathlib.Path:
  path = pathlib.Path(out or os.environ.get("LOSSLAB_EXAMPLES_OUT") or "example-output")
  path.mkdir(parents=True, exist_ok=True)
  return path


def make_data(n: int, outlier_fraction: float, seed: int):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
  y = TRUE_SLOPE * x + TRUE_INTERCEPT + 0.3 * rng.normal(size=(n, 1)).astype(np.float32)
  outlier = rng.random(n) < outlier_fraction
  y[outlier] += rng.uniform(8, 15, size=(outlier.sum(), 1)).astype(np.float32)
  return x, y, outlier


def fit(loss_type: str, x, y, steps: int):
  scheme = schemes.regression(loss_type, lr=0.05, total_steps=steps)
  model = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, scheme.optimizer, wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda m: scheme.loss_fn(m(x), y))(model)
    optimizer.update(model, grads)
    return loss

  x, y = jnp.asarray(x), jnp.asarray(y)
  for _ in range(steps):
    step(model, optimizer, x, y)
  return float(model.kernel[...][0, 0]), float(model.bias[...][0])


def main(fast: bool = False, out: str | None = None) -> dict[str, tuple[float, float, float]]:
  t0 = time.perf_counter()
  steps = 100 if fast else 1500
  x, y, outlier = make_data(400, 0.15, seed=0)
  x_test = np.linspace(-2, 2, 200, dtype=np.float32)[:, None]
  y_test = TRUE_SLOPE * x_test + TRUE_INTERCEPT
  print(f"{len(y)} points, {outlier.sum()} of them outliers (targets raised by 8 to 15); true line"
        f" y = {TRUE_SLOPE:g} x + {TRUE_INTERCEPT:g}\n")
  print(f"{'loss':<8}{'slope':>8}{'intercept':>11}{'clean RMSE':>12}")
  results = {}
  for loss_type in ("mse", "huber", "l1"):
    w, b = fit(loss_type, x, y, steps)
    rmse = float(np.sqrt(np.mean((w * x_test + b - y_test) ** 2)))
    results[loss_type] = (w, b, rmse)
    print(f"{loss_type:<8}{w:>8.3f}{b:>11.3f}{rmse:>12.3f}")
  mean_shift = float(np.mean(y[outlier] - (TRUE_SLOPE * x[outlier] + TRUE_INTERCEPT)))
  print(f"\nThe outliers (15% of points, {mean_shift:.1f} units high on average) lift the MSE intercept by"
        f" {results['mse'][1] - TRUE_INTERCEPT:.2f}; Huber's by {results['huber'][1] - TRUE_INTERCEPT:.2f} and"
        f" L1's by {results['l1'][1] - TRUE_INTERCEPT:.2f}.")

  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed; skipping the plot")
  else:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(x[~outlier, 0], y[~outlier, 0], s=8, c="0.6", label="data")
    ax.scatter(x[outlier, 0], y[outlier, 0], s=10, c="tab:red", marker="x", label="outliers")
    ax.plot(x_test[:, 0], y_test[:, 0], "k--", lw=1.5, label="true line", zorder=5)
    for (loss_type, (w, b, rmse)), color in zip(results.items(), ("tab:blue", "tab:orange", "tab:green")):
      ax.plot(x_test[:, 0], w * x_test[:, 0] + b, color=color, lw=2, label=f"{loss_type} (clean RMSE {rmse:.2f})")
    ax.set(xlabel="x", ylabel="y", title="Line fits with 15% outliers: MSE vs Huber vs L1")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = output_dir(out) / "regression_outliers.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")
  print(f"({steps} full-batch AdamW steps per loss; {time.perf_counter() - t0:.1f}s)")
  return results


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description="Regression with outliers: MSE vs Huber vs L1.")
  parser.add_argument("--fast", action="store_true", help="a quick smoke run")
  parser.add_argument("--out", default=None, help="directory for the plot")
  args = parser.parse_args()
  main(fast=args.fast, out=args.out)

"""Imbalanced classification (1:100): cross entropy vs weighted cross entropy vs focal loss.

A two-class problem where the minority class is 100 times rarer than the majority class, and the
classes overlap. The same small flax.nnx MLP is trained three times, from the same initial weights
on the same batches, with three losses:

* cross entropy, which learns the prior and rarely predicts the minority class;
* cross entropy weighted by inverse class frequency;
* focal loss with the same class weights as alpha (what ``ll.schemes.classification`` picks for
  a 1:100 imbalance).

It prints recall on each class and the balanced accuracy on a held-out set drawn with the same
1:100 ratio. Minority recall is what the weighting buys; majority recall is what it costs.

Run: ``python examples/imbalanced_classification.py`` (``--fast`` for a quick smoke run).
"""

from __future__ import annotations

import sys
import textwrap
import time

import jax.numpy as jnp
import numpy as np
from flax import nnx

from losslab_jax import schemes

try:
  from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - progress bars are optional
  tqdm = None


def make_data(n_major: int, n_minor: int, seed: int):
  """Two overlapping Gaussian blobs in 8 dimensions; label 1 is the rare class."""
  rng = np.random.default_rng(seed)
  dim = 8
  mean_minor = np.zeros(dim, np.float32)
  mean_minor[:2] = 2.0  # the classes overlap: the Bayes error is far from 0
  x0 = rng.normal(size=(n_major, dim)).astype(np.float32)
  x1 = (rng.normal(size=(n_minor, dim)) + mean_minor).astype(np.float32)
  x = np.concatenate([x0, x1])
  y = np.concatenate([np.zeros(n_major, np.int32), np.ones(n_minor, np.int32)])
  perm = rng.permutation(len(y))
  return x[perm], y[perm]


class MLP(nnx.Module):

  def __init__(self, din: int, dhidden: int, dout: int, *, rngs: nnx.Rngs):
    self.l1 = nnx.Linear(din, dhidden, rngs=rngs)
    self.l2 = nnx.Linear(dhidden, dhidden, rngs=rngs)
    self.out = nnx.Linear(dhidden, dout, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.l2(nnx.relu(self.l1(x)))))


def train(scheme: schemes.Scheme, x, y, *, steps: int, batch_size: int, seed: int, label: str):
  """Train a fresh MLP (same init for every scheme) with ``scheme``; returns the model."""
  model = MLP(x.shape[1], 32, 2, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, scheme.optimizer, wrt=nnx.Param)
  loss_fn = scheme.loss_fn

  @nnx.jit
  def step(model, optimizer, xb, yb):
    loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(xb), yb))(model)
    optimizer.update(model, grads)
    return loss

  x, y = jnp.asarray(x), jnp.asarray(y)
  batches = np.random.default_rng(seed + 1).integers(0, len(y), size=(steps, batch_size))
  bar = tqdm(range(steps), desc=f"{label:>22}", leave=False, mininterval=0.5) if tqdm else range(steps)
  for k in bar:
    loss = step(model, optimizer, x[batches[k]], y[batches[k]])
    if tqdm and k % 100 == 0:
      bar.set_postfix(loss=f"{float(loss):.4f}")
  return model


def recalls(model, x, y):
  pred = np.asarray(jnp.argmax(model(jnp.asarray(x)), axis=-1))
  r = [float(np.mean(pred[y == k] == k)) for k in (0, 1)]
  return r[0], r[1], 0.5 * (r[0] + r[1])


def main(fast: bool = False, out: str | None = None) -> dict[str, tuple[float, float, float]]:
  del out  # this example writes no files
  t0 = time.perf_counter()
  n_major, ratio = (2000, 100) if fast else (20000, 100)
  steps = 60 if fast else 1000
  x, y = make_data(n_major, n_major // ratio, seed=0)
  x_test, y_test = make_data(20000, 20000 // ratio, seed=1)  # 200 minority examples to measure recall
  counts = np.bincount(y, minlength=2)
  print(f"train: {counts[0]} majority / {counts[1]} minority examples (1:{counts[0] / counts[1]:.0f});"
        f" test: {np.bincount(y_test)[0]} / {np.bincount(y_test)[1]}")

  common = dict(total_steps=steps, lr=3e-3)
  auto = schemes.classification(2, class_counts=counts, **common)
  print(f"\nll.schemes.classification(2, class_counts={counts.tolist()}) chose {auto.spec['loss']['name']}:")
  print(textwrap.fill(auto.rationale.splitlines()[1], width=100, initial_indent="  ", subsequent_indent="  "))
  print()
  runs = {
      "cross entropy": schemes.classification(2, class_counts=counts, loss="cross_entropy", **common),
      "weighted cross entropy": schemes.classification(2, class_counts=counts, loss="weighted_cross_entropy",
                                                       **common),
      "focal + class weights": auto,
  }
  results = {}
  for label, scheme in runs.items():
    model = train(scheme, x, y, steps=steps, batch_size=256, seed=0, label=label)
    results[label] = recalls(model, x_test, y_test)

  print(f"{'loss':<24}{'majority recall':>16}{'minority recall':>16}{'balanced acc':>14}")
  for label, (r0, r1, bal) in results.items():
    print(f"{label:<24}{r0:>16.3f}{r1:>16.3f}{bal:>14.3f}")
  print(f"\n({steps} AdamW steps of batch 256 each; {time.perf_counter() - t0:.1f}s)")
  (ce0, ce1, _), (w0, w1, _), (f0, f1, _) = results.values()
  print(f"Against plain cross entropy, weighting changes minority recall by {w1 - ce1:+.2f} (weighted CE) and"
        f" {f1 - ce1:+.2f} (focal), majority recall by {w0 - ce0:+.2f} and {f0 - ce0:+.2f}.")
  return results


if __name__ == "__main__":
  main(fast="--fast" in sys.argv)

"""Task schemes and YAML configs: how ``ll.schemes`` chooses, and what ``ll.config.build`` builds.

1. ``schemes.classification`` for four class-count profiles, from balanced to 1:250: which loss it
   picks and the first line of its rationale.
2. Every example config shipped with losslab_jax (``ll.config.examples()``): what it builds, and
   its ``loss_fn`` called on arrays of the shapes it expects.
3. Parameter groups from ``finetune_param_groups.yaml`` on a flax.nnx model with an embedding, a
   backbone and a head: after a few steps the embedding has not moved and the backbone moved about
   a tenth as far as the head (its lr is a tenth).
4. What a typo in a config says.

Run: ``python examples/schemes_and_config.py [--fast]``.
"""

from __future__ import annotations

import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from losslab_jax import config, schemes


def show_choices() -> None:
  print("1. schemes.classification(num_classes, class_counts) picks the loss from the imbalance")
  profiles = {"balanced": [1000, 950, 1020], "1:5": [1000, 400, 200], "1:30": [3000, 900, 100],
              "1:250": [5000, 2000, 20]}
  for label, counts in profiles.items():
    scheme = schemes.classification(3, class_counts=counts, total_steps=1000)
    loss = scheme.spec["loss"]
    extra = {k: [round(w, 3) for w in v] if isinstance(v, list) else v for k, v in loss.items() if k != "name"}
    print(f"   {label:>9} {str(counts):<20} -> {loss['name']} {extra if extra else ''}")
  print("\n   Rationale of the 1:250 choice:")
  print(textwrap.indent(textwrap.fill(scheme.rationale.splitlines()[1], 96), "     "))


def example_inputs(name: str):
  """Arrays of the shapes each example config's loss_fn takes (see the YAML comments)."""
  rng = np.random.default_rng(0)
  f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
  if name in ("classification", "finetune_param_groups"):
    return f(8, 3), jnp.asarray(rng.integers(0, 3, 8))
  if name == "regression":
    return f(8, 1), f(8, 1)
  if name == "segmentation":
    return f(2, 16, 16, 4), jnp.asarray(rng.integers(0, 4, (2, 16, 16)))
  if name == "metric_learning":
    return f(8, 16), f(8, 16), f(8, 16)
  raise KeyError(name)


def show_configs() -> None:
  print("\n2. The example configs shipped with losslab_jax (ll.config.examples())")
  for name, path in config.examples().items():
    scheme = config.build(path)
    loss = scheme.loss_fn(*example_inputs(name))
    lr0 = f", lr(0) = {float(scheme.schedule(0)):.3g}" if scheme.schedule is not None else ""
    print(f"   {path.name}: {scheme!r}")
    print(f"      loss_fn on example arrays = {float(loss):.4f}{lr0}")


class Net(nnx.Module):
  """Token ids -> mean embedding -> backbone -> head."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.embed = nnx.Embed(50, 8, rngs=rngs)
    self.backbone = nnx.Linear(8, 16, rngs=rngs)
    self.head = nnx.Linear(16, 3, rngs=rngs)

  def __call__(self, tokens):
    return self.head(nnx.relu(self.backbone(self.embed(tokens).mean(axis=1))))


def show_param_groups(steps: int) -> None:
  print("\n3. Param groups (finetune_param_groups.yaml) on an nnx model")
  scheme = config.build(config.examples()["finetune_param_groups"])
  model = Net(rngs=nnx.Rngs(0))
  print(f"   parameter paths: {config.param_paths(nnx.state(model, nnx.Param))}")
  before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  optimizer = nnx.Optimizer(model, scheme.optimizer, wrt=nnx.Param)
  rng = np.random.default_rng(0)
  tokens, labels = jnp.asarray(rng.integers(0, 50, (64, 5))), jnp.asarray(rng.integers(0, 3, 64))

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(lambda m: scheme.loss_fn(m(tokens), labels))(model)
    optimizer.update(model, grads)
    return loss

  for _ in range(steps):
    step(model, optimizer)
  after = nnx.state(model, nnx.Param)
  moved = {config.param_paths(after)[i]: float(jnp.mean(jnp.abs(a - b)))
           for i, (a, b) in enumerate(zip(jax.tree.leaves(after), jax.tree.leaves(before)))}
  print(f"   mean |change| per parameter after {steps} steps:")
  for path, value in moved.items():
    print(f"     {path:<18}{value:.3e}")
  ratio = moved["backbone/kernel"] / moved["head/kernel"]
  print(f"   backbone/kernel moved {ratio:.3f} x as far as head/kernel (lr 1e-4 vs 1e-3); embed/embedding"
        f" {'did not move' if moved['embed/embedding'] == 0.0 else 'MOVED'} (frozen)")


def show_errors() -> None:
  print("\n4. Errors name the key and the allowed values")
  bad = [
      {"loss": {"name": "cross_entropy"}, "optimizer": {"name": "adamw", "beta": [0.9, 0.99]}},
      {"loss": {"name": "crossentropy"}, "optimizer": {"name": "adamw"}},
      {"loss": {"name": "cross_entropy"}, "optimizer": {"name": "adamw"}, "shedule": {"name": "step_lr"}},
      {"loss": {"name": "cross_entropy"}, "optimizer": {"name": "adam", "betas": [1.5, 0.999]}},
  ]
  for cfg in bad:
    try:
      config.build(cfg)
    except ValueError as e:
      print(textwrap.fill(f"{type(e).__name__}: {e}", 100, initial_indent="   ", subsequent_indent="     "))


def main(fast: bool = False, out: str | None = None) -> None:
  del out  # this example writes no files
  show_choices()
  show_configs()
  show_param_groups(steps=3 if fast else 20)
  show_errors()


if __name__ == "__main__":
  main(fast="--fast" in sys.argv)

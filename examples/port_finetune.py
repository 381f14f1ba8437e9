"""Port a Hugging Face-style fine-tune to flax.nnx and check it with ``parity``, forward and step by step.

The recipe, as ``transformers.Trainer`` runs it, on a tiny transformer classifier (Embedding,
LayerNorm, multi-head attention built from Linear layers, GELU feed-forward):

* ``AdamW`` with two param groups: weight decay on the weight matrices, **none on biases and
  LayerNorm weights** (the usual ``no_decay = ["bias", "LayerNorm.weight"]`` split);
* warmup then linear decay: ``transformers.get_linear_schedule_with_warmup`` when transformers is
  installed, else the same schedule as a ``LambdaLR`` whose lambda is written without Python
  branches (so ``ll.interop.torch`` can trace it);
* ``clip_grad_norm_(model.parameters(), 1.0)`` before every step;
* cross entropy with ``label_smoothing=0.1``.

The nnx port uses ``nnx.LayerNorm(epsilon=1e-5)`` (flax defaults to 1e-6) and
``nnx.gelu(approximate=False)`` (flax defaults to the tanh form): ``parity.compare_forward``
would name either trap if it were left at flax's default (``--show-trap`` shows it).
``parity.compare_training`` then converts the optimizer, both param groups and the schedule from
torch (``ll.interop.torch.from_torch_optimizer``), adds ``ll.optim.clip_grad_norm(1.0)``, and
compares loss, every gradient, update and parameter at every step. The attention's key bias is
left out of the verdict (``ignore=``): its gradient is zero in exact arithmetic, so both
frameworks hold rounding noise there, which AdamW amplifies differently (the ``noise_gradient``
trap ``compare_training`` names when it is not ignored).

Needs PyTorch. Run: ``python examples/port_finetune.py [--fast] [--show-trap]``.
"""

from __future__ import annotations

import math
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import losslab_jax as ll  # noqa: E402

VOCAB, D, HEADS, T, CLASSES = 50, 16, 2, 6, 3
SMOOTHING, MAX_NORM, LR, DECAY, WARMUP = 0.1, 1.0, 5e-3, 0.01, 2


def torch_model():
  import torch
  import torch.nn.functional as F
  from torch import nn

  class Classifier(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(VOCAB, D)
      self.LayerNorm = nn.LayerNorm(D)
      self.query, self.key, self.value, self.out = (nn.Linear(D, D) for _ in range(4))
      self.ffn_norm = nn.LayerNorm(D)
      self.ffn_in, self.ffn_out = nn.Linear(D, 2 * D), nn.Linear(2 * D, D)
      self.classifier = nn.Linear(D, CLASSES)

    def forward(self, ids):
      h = self.embed(ids)
      x = self.LayerNorm(h)
      b, t, d = x.shape
      heads = lambda z: z.view(b, t, HEADS, d // HEADS).transpose(1, 2)  # noqa: E731
      att = torch.softmax(heads(self.query(x)) @ heads(self.key(x)).transpose(-1, -2) / math.sqrt(d // HEADS), -1)
      h = h + self.out((att @ heads(self.value(x))).transpose(1, 2).reshape(b, t, d))
      h = h + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(h))))
      return self.classifier(h[:, 0])  # the first token's state, as BERT's [CLS]

  return Classifier()


class Classifier(nnx.Module):
  def __init__(self, dtype, *, rngs: nnx.Rngs, ln_eps: float = 1e-5):
    kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.embed = nnx.Embed(VOCAB, D, **kw)
    self.LayerNorm = nnx.LayerNorm(D, epsilon=ln_eps, **kw)  # flax's default epsilon is 1e-6
    self.query, self.key, self.value, self.out = (nnx.Linear(D, D, **kw) for _ in range(4))
    self.ffn_norm = nnx.LayerNorm(D, epsilon=ln_eps, **kw)
    self.ffn_in, self.ffn_out = nnx.Linear(D, 2 * D, **kw), nnx.Linear(2 * D, D, **kw)
    self.classifier = nnx.Linear(D, CLASSES, **kw)

  def __call__(self, ids):
    h = self.embed(ids)
    x = self.LayerNorm(h)
    b, t, d = x.shape
    heads = lambda z: z.reshape(b, t, HEADS, d // HEADS).transpose(0, 2, 1, 3)  # noqa: E731
    scores = heads(self.query(x)) @ jnp.swapaxes(heads(self.key(x)), -1, -2) / math.sqrt(d // HEADS)
    att = jax.nn.softmax(scores, axis=-1) @ heads(self.value(x))
    h = h + self.out(att.transpose(0, 2, 1, 3).reshape(b, t, d))
    h = h + self.ffn_out(nnx.gelu(self.ffn_in(self.ffn_norm(h)), approximate=False))  # torch's exact GELU
    return self.classifier(h[:, 0])


def linear_warmup_lambda(warmup: int, total: int):
  """transformers' linear warmup/decay factor without Python branches (traceable by ll.interop.torch)."""
  def factor(step):
    up = step / max(1, warmup)
    down = (total - step) / max(1, total - warmup)
    f = up + (down - up) * (step >= warmup)
    return 0.5 * (f + abs(f))  # max(f, 0)
  return factor


def torch_side(dtype: str, total: int):
  import torch

  torch.manual_seed(0)
  model = torch_model().to(getattr(torch, dtype))
  no_decay = ("bias", "LayerNorm.weight", "ffn_norm.weight")
  groups = [
      {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": DECAY},
      {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
  ]
  opt = torch.optim.AdamW(groups, lr=LR)
  try:
    from transformers import get_linear_schedule_with_warmup

    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=WARMUP, num_training_steps=total)
  except ImportError:
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_lambda(WARMUP, total))
  return model, opt, sched


def main(fast: bool = False, out: str | None = None, show_trap: bool = False) -> dict:
  del out  # this example writes no files
  try:
    import torch
    import torch.nn.functional as F
  except ImportError:
    print("port_finetune: PyTorch is not installed (pip install torch); nothing to compare, skipping.")
    return {}
  import parity

  steps = 6 if fast else 20
  rng = np.random.default_rng(0)
  batches = [(rng.integers(0, VOCAB, (8, T)), rng.integers(0, CLASSES, 8)) for _ in range(steps)]
  results = {}
  for dtype in ("float64", "float32"):
    model, opt, sched = torch_side(dtype, steps)
    port = Classifier(jnp.dtype(dtype), rngs=nnx.Rngs(0))
    parity.copy_weights(model, port)
    print(f"\n=== {dtype}: forward pass, submodule by submodule ===")
    fwd = parity.compare_forward(model, port, batches[0][0])
    print(fwd)
    print(f"=== {dtype}: {steps} fine-tuning steps (AdamW param groups, warmup + linear decay, clipping, "
          "label smoothing) ===")
    train = parity.compare_training(
        model, opt, lambda m, b: F.cross_entropy(m(b[0]), b[1], label_smoothing=SMOOTHING),
        port, lambda m, b: ll.losses.cross_entropy(m(b[0]), b[1], label_smoothing=SMOOTHING),
        batches, scheduler=sched, clip_grad_norm=MAX_NORM,
        # softmax ignores a per-query constant, so the key bias's gradient is zero in exact arithmetic:
        # torch and JAX each give rounding noise (~1e-18) there, which Adam scales up to ~lr * noise / eps.
        # Left in, compare_training stops at it and names the trap ("noise_gradient").
        ignore=["key.bias"])
    print(train)
    results[dtype] = fwd.passed and train.passed
  if show_trap:
    model, _, _ = torch_side("float64", steps)
    port = Classifier(jnp.float64, rngs=nnx.Rngs(0), ln_eps=1e-6)  # flax's default epsilon: the trap
    parity.copy_weights(model, port)
    print("\n=== the LayerNorm epsilon trap (flax's default 1e-6) ===")
    print(parity.compare_forward(model, port, batches[0][0]))
  if not all(results.values()):
    raise SystemExit(f"port_finetune: the port does not match torch: {results}")
  print("port_finetune: PASSED forward and training in float64 and float32.")
  return results


if __name__ == "__main__":
  main(fast="--fast" in sys.argv, show_trap="--show-trap" in sys.argv)

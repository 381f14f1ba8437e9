"""Forward + backward of the hot losses: losslab_jax (jitted) vs optax (jitted) vs torch eager.

Each side computes the mean loss and its gradient with respect to the input, in float32, on the
same data. JAX functions are jitted once (compile time excluded); torch runs eagerly with autograd,
its default CPU/GPU path.
"""

from __future__ import annotations

import numpy as np

from parity._bench import jax_sync, time_fn


def _torch_time(fn, repeats):
  import torch

  def run():
    x = fn()
    return x

  sync = (lambda _: torch.cuda.synchronize()) if torch.cuda.is_available() else None
  return time_fn(run, repeats=repeats, sync=sync)


def run(quick: bool = False) -> list[dict]:
  import jax
  import jax.numpy as jnp
  import optax
  import torch
  import torch.nn.functional as F

  import losslab_jax as ll
  from parity.reference.focal import FocalLoss

  torch.set_num_threads(max(1, torch.get_num_threads()))
  rng = np.random.default_rng(0)
  repeats = 3 if quick else 10
  s = 16 if quick else 1
  rows = []

  def grad_of(loss):
    return jax.jit(jax.value_and_grad(loss))

  def torch_fb(loss_fn, x, *rest):
    def f():
      xt = x.detach().requires_grad_(True)
      out = loss_fn(xt, *rest)
      out.backward()
      return xt.grad
    return f

  # cross entropy
  for n, c in [(8192, 1000), (2048, 32000)]:
    n = n // s
    x = rng.standard_normal((n, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    xj, yj = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    ours = grad_of(lambda a: ll.losses.cross_entropy(a, yj))
    theirs = grad_of(lambda a: optax.losses.softmax_cross_entropy_with_integer_labels(a, yj).mean())
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rows.append({"bench": "cross_entropy fwd+bwd", "size": f"({n}, {c})",
                 "losslab_ms": time_fn(lambda: ours(xj), repeats=repeats, sync=jax_sync),
                 "optax_ms": time_fn(lambda: theirs(xj), repeats=repeats, sync=jax_sync),
                 "torch_ms": _torch_time(torch_fb(F.cross_entropy, xt, yt), repeats)})

  # elementwise losses on 16M elements
  m = (16 * 1024 * 1024) // s
  x = rng.standard_normal(m).astype(np.float32)
  t = rng.standard_normal(m).astype(np.float32)
  tb = (rng.random(m) < 0.5).astype(np.float32)
  xj, tj, tbj = jnp.asarray(x), jnp.asarray(t), jnp.asarray(tb)
  xt, tt, tbt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(tb)
  ours = grad_of(lambda a: ll.losses.mse_loss(a, tj))
  theirs = grad_of(lambda a: 2.0 * optax.losses.l2_loss(a, tj).mean())
  rows.append({"bench": "mse_loss fwd+bwd", "size": f"{m:,}",
               "losslab_ms": time_fn(lambda: ours(xj), repeats=repeats, sync=jax_sync),
               "optax_ms": time_fn(lambda: theirs(xj), repeats=repeats, sync=jax_sync),
               "torch_ms": _torch_time(torch_fb(F.mse_loss, xt, tt), repeats)})
  ours = grad_of(lambda a: ll.losses.binary_cross_entropy_with_logits(a, tbj))
  theirs = grad_of(lambda a: optax.losses.sigmoid_binary_cross_entropy(a, tbj).mean())
  rows.append({"bench": "bce_with_logits fwd+bwd", "size": f"{m:,}",
               "losslab_ms": time_fn(lambda: ours(xj), repeats=repeats, sync=jax_sync),
               "optax_ms": time_fn(lambda: theirs(xj), repeats=repeats, sync=jax_sync),
               "torch_ms": _torch_time(torch_fb(F.binary_cross_entropy_with_logits, xt, tbt), repeats)})

  # softmax focal loss: optax has no softmax focal loss; torch side is the parity reference module
  n, c = 8192 // s, 1000
  x = rng.standard_normal((n, c)).astype(np.float32)
  y = rng.integers(0, c, n)
  xj, yj = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
  ours = grad_of(lambda a: ll.losses.focal_loss(a, yj, gamma=2.0))
  ref = FocalLoss(gamma=2.0)
  rows.append({"bench": "focal_loss fwd+bwd", "size": f"({n}, {c})",
               "losslab_ms": time_fn(lambda: ours(xj), repeats=repeats, sync=jax_sync),
               "optax_ms": None,
               "torch_ms": _torch_time(torch_fb(ref, torch.from_numpy(x), torch.from_numpy(y)), repeats)})
  return rows

"""Forward + backward of the hot losses: losslab_jax (jitted) vs optax (jitted) vs torch eager.

Each side computes the mean loss and its gradient with respect to the input, in float32, on the
same data. JAX functions are jitted once (compile time excluded) and timed in alternation with
optax's (median of the repeats); torch runs eagerly with autograd, its default CPU/GPU path.
"""

from __future__ import annotations

import numpy as np

from parity._bench import time_fn


def _torch_time(fn, repeats):
  import torch

  def run():
    x = fn()
    return x

  sync = (lambda _: torch.cuda.synchronize()) if torch.cuda.is_available() else None
  return time_fn(run, repeats=repeats, sync=sync)


def _interleaved(fns: list, repeats: int) -> list[float]:
  """Median ms of each JAX function, timed in alternation so load on a shared machine hits all alike."""
  import statistics
  import time

  import jax

  for fn in fns:   # warm-up (compilation excluded)
    jax.block_until_ready(fn())
    jax.block_until_ready(fn())
  times: list[list[float]] = [[] for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      t0 = time.perf_counter()
      jax.block_until_ready(fn())
      times[i].append((time.perf_counter() - t0) * 1e3)
  return [statistics.median(t) for t in times]


def _row(bench: str, size: str, ours, theirs, x, torch_f, repeats: int) -> dict:
  """One bench row: our jitted value-and-grad against optax's (None: none exists) and torch's."""
  fns = [lambda: ours(x)] + ([lambda: theirs(x)] if theirs is not None else [])
  ms = _interleaved(fns, repeats)
  return {"bench": bench, "size": size, "losslab_ms": ms[0], "optax_ms": ms[1] if theirs is not None else None,
          "torch_ms": _torch_time(torch_f, repeats)}


def _grad_of(loss):
  import jax

  return jax.jit(jax.value_and_grad(loss))


def _torch_fb(loss_fn, x, *rest):
  def f():
    xt = x.detach().requires_grad_(True)
    out = loss_fn(xt, *rest)
    out.backward()
    return xt.grad
  return f


def _cross_entropy_rows(rng, s: int, repeats: int) -> list[dict]:
  import jax.numpy as jnp
  import optax
  import torch
  import torch.nn.functional as F

  import losslab_jax as ll

  rows = []
  for n, c in [(8192, 1000), (2048, 32000)]:
    n = n // s
    x = rng.standard_normal((n, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    xj, yj = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    ours = _grad_of(lambda a: ll.losses.cross_entropy(a, yj))
    theirs = _grad_of(lambda a: optax.losses.softmax_cross_entropy_with_integer_labels(a, yj).mean())
    rows.append(_row("cross_entropy fwd+bwd", f"({n}, {c})", ours, theirs, xj,
                     _torch_fb(F.cross_entropy, torch.from_numpy(x), torch.from_numpy(y)), repeats))
  return rows


def _elementwise_rows(rng, s: int, repeats: int) -> list[dict]:
  """mse and BCE-with-logits on 16M elements."""
  import jax.numpy as jnp
  import optax
  import torch
  import torch.nn.functional as F

  import losslab_jax as ll

  m = (16 * 1024 * 1024) // s
  x = rng.standard_normal(m).astype(np.float32)
  t = rng.standard_normal(m).astype(np.float32)
  tb = (rng.random(m) < 0.5).astype(np.float32)
  xj, tj, tbj = jnp.asarray(x), jnp.asarray(t), jnp.asarray(tb)
  xt, tt, tbt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(tb)
  return [
      _row("mse_loss fwd+bwd", f"{m:,}", _grad_of(lambda a: ll.losses.mse_loss(a, tj)),
           _grad_of(lambda a: 2.0 * optax.losses.l2_loss(a, tj).mean()), xj, _torch_fb(F.mse_loss, xt, tt), repeats),
      _row("bce_with_logits fwd+bwd", f"{m:,}", _grad_of(lambda a: ll.losses.binary_cross_entropy_with_logits(a, tbj)),
           _grad_of(lambda a: optax.losses.sigmoid_binary_cross_entropy(a, tbj).mean()), xj,
           _torch_fb(F.binary_cross_entropy_with_logits, xt, tbt), repeats),
  ]


def _focal_row(rng, s: int, repeats: int) -> dict:
  """Softmax focal loss: optax has none; the torch side is the parity reference module."""
  import jax.numpy as jnp
  import torch

  import losslab_jax as ll
  from parity.reference.focal import FocalLoss

  n, c = 8192 // s, 1000
  x = rng.standard_normal((n, c)).astype(np.float32)
  y = rng.integers(0, c, n)
  xj, yj = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
  return _row("focal_loss fwd+bwd", f"({n}, {c})", _grad_of(lambda a: ll.losses.focal_loss(a, yj, gamma=2.0)),
              None, xj, _torch_fb(FocalLoss(gamma=2.0), torch.from_numpy(x), torch.from_numpy(y)), repeats)


def run(quick: bool = False) -> list[dict]:
  import torch

  torch.set_num_threads(max(1, torch.get_num_threads()))
  rng = np.random.default_rng(0)
  repeats = 3 if quick else 10
  s = 16 if quick else 1
  return [*_cross_entropy_rows(rng, s, repeats), *_elementwise_rows(rng, s, repeats), _focal_row(rng, s, repeats)]

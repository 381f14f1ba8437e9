"""One optimizer step (update + apply) on ~20 float32 leaves: losslab_jax vs optax vs torch, same run.

What is timed:

* losslab_jax and optax: ``params, state = step(params, state, grads)`` with ``step`` jitted once
  (compile time excluded) and ``params``/``state`` donated, so the update can run in place.
* Each time is the best of 3 rounds (1 with ``quick``) of the median of 5-10 steps, the candidates'
  rounds interleaved, so that bursts of foreign load on a shared machine spoil a round, not a row.
* torch: ``opt.step()`` with the gradients already in ``.grad``, in each implementation torch
  offers on this device: single-tensor (``foreach=False``), ``foreach=True`` and ``fused=True``
  (``-`` where the class has no such path; lion-pytorch's ``Lion`` has only its own loop).
  ``torch_ms`` is the fastest of them, which is what "vs torch" compares with.

Throughput. Each row also reports the bytes an ideal single-pass implementation must move per step
(read params, grads and every state buffer; write params and every state buffer; 4 bytes per
float32 element) divided by the time, as a fraction of the memory bandwidth measured in the same
run: the best rate of an in-place ``x <- x * a + y`` over a large float32 array (12 bytes per
element; jitted and donated in JAX, ``torch.add(y, x, alpha=a, out=x)`` in torch), measured before
and after the optimizers. Above 100% means the reference underestimates the machine (it is the
best of few samples on a possibly shared machine), or the data partly fit in cache (1M parameters
take 4 MB per buffer).

Memory. The largest size (50M parameters, 200 MB per buffer) keeps at most one framework's
buffers alive at a time (about 1.6 GB for Adam: torch's three variants share params and grads;
losslab_jax and optax each hold params and state, and share the grads); everything is freed
before the next framework or optimizer is built.
"""

from __future__ import annotations

import gc

import numpy as np

from parity._bench import jax_sync, time_fn

LEAVES = 20

# name -> number of float32 state buffers (each as large as the params)
OPTIMIZERS = {
    "Adam": 2,
    "AdamW": 2,
    "SGD-momentum": 1,
    "RMSprop": 1,
    "Lion": 1,
}


def _leaf_sizes(n: int) -> list[int]:
  """``LEAVES`` leaf sizes summing to ``n``: half large "weights", half small "biases"."""
  n_bias = LEAVES // 2
  bias = max(8, n // 2000)
  weight = (n - n_bias * bias) // (LEAVES - n_bias)
  sizes = [weight] * (LEAVES - n_bias) + [bias] * n_bias
  sizes[0] += n - sum(sizes)
  return sizes


def _factories():
  import optax
  import torch

  import losslab_jax as ll

  def lion_torch(params, **kw):
    from lion_pytorch import Lion

    if kw:
      raise TypeError("lion-pytorch has no foreach/fused implementation")
    return Lion(params, lr=1e-4, weight_decay=0.0)

  return {
      "Adam": (lambda: ll.optim.adam(lr=1e-3), lambda: optax.adam(1e-3),
               lambda ps, **kw: torch.optim.Adam(ps, lr=1e-3, **kw)),
      "AdamW": (lambda: ll.optim.adamw(lr=1e-3, weight_decay=1e-2),
                lambda: optax.adamw(1e-3, weight_decay=1e-2),
                lambda ps, **kw: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, **kw)),
      "SGD-momentum": (lambda: ll.optim.sgd(lr=1e-3, momentum=0.9), lambda: optax.sgd(1e-3, momentum=0.9),
                       lambda ps, **kw: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, **kw)),
      "RMSprop": (lambda: ll.optim.rmsprop(lr=1e-2),
                  lambda: optax.rmsprop(1e-2, decay=0.99, eps=1e-8, eps_in_sqrt=False),
                  lambda ps, **kw: torch.optim.RMSprop(ps, lr=1e-2, **kw)),
      "Lion": (lambda: ll.optim.lion(lr=1e-4), lambda: optax.lion(1e-4, weight_decay=0.0), lion_torch),
  }


def _bandwidth(n: int, repeats: int) -> dict[str, float]:
  """GB/s of ``x <- x * a + y`` in place over ``n`` float32 elements (read x and y, write x: 12 bytes
  per element): jitted with ``x`` donated in JAX, ``x.mul_(a).add_(y)`` fused as
  ``torch.add(y, x, alpha=a, out=x)`` in torch. In place, like the optimizers: a JAX function that
  returns a fresh 200 MB buffer each call spends most of its time faulting in new pages."""
  import jax
  import jax.numpy as jnp
  import torch

  y = jnp.ones(n, jnp.float32)
  axpy = jax.jit(lambda x, y: x * jnp.float32(0.5) + y, donate_argnums=0)
  carry = [jnp.ones(n, jnp.float32)]

  def one():
    carry[0] = axpy(carry[0], y)
    return carry[0]

  jax_ms = time_fn(one, repeats=repeats, sync=jax_sync)
  del carry, y
  xt, yt = torch.ones(n), torch.ones(n)
  torch_ms = time_fn(lambda: torch.add(yt, xt, alpha=0.5, out=xt), repeats=repeats)
  del xt, yt
  gc.collect()
  return {"jax": 12 * n / (jax_ms * 1e-3) / 1e9, "torch": 12 * n / (torch_ms * 1e-3) / 1e9}


def _best_of_rounds(fns: dict, repeats: int, rounds: int, sync=None) -> dict[str, float]:
  """Median ms of each of ``fns`` per round, rounds interleaved, best round kept: on a shared
  machine a burst of foreign load then spoils one round of one candidate, not the result."""
  best = {k: float("inf") for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      best[k] = min(best[k], time_fn(fn, repeats=repeats, sync=sync))
  return best


def _time_jax(txs: dict, sizes, repeats, rounds) -> dict[str, float]:
  """ms per jitted, donated ``update + apply_updates`` step of each transformation in ``txs``."""
  import jax
  import jax.numpy as jnp
  import optax

  rng = np.random.default_rng(0)
  grads = {f"p{i:02d}": jnp.asarray(rng.standard_normal(s, dtype=np.float32) * 1e-2) for i, s in enumerate(sizes)}
  fns = {}
  for name, tx in txs.items():
    params = {k: jnp.asarray(rng.standard_normal(v.shape, dtype=np.float32)) for k, v in grads.items()}

    def step(params, state, grads, tx=tx):
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    jstep = jax.jit(step, donate_argnums=(0, 1))
    carry = [params, tx.init(params)]
    del params

    def one(carry=carry, jstep=jstep):
      carry[0], carry[1] = jstep(carry[0], carry[1], grads)
      return carry[0]

    fns[name] = one
  out = _best_of_rounds(fns, repeats, rounds, sync=jax_sync)
  del fns, grads
  gc.collect()
  return out


def _time_torch(make, sizes, repeats, rounds, single_kwargs) -> dict[str, float | None]:
  """ms per ``opt.step()`` in each torch implementation (``None`` where the class lacks it)."""
  import torch

  gen = torch.Generator().manual_seed(0)
  params = [torch.randn(s, generator=gen, dtype=torch.float32).requires_grad_(True) for s in sizes]
  for p in params:
    p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 1e-2
  opts: dict[str, object] = {}
  out: dict[str, float | None] = {}
  for variant, kw in (("single", single_kwargs), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
    try:
      opt = make(params, **kw)
      opt.step()
      opts[variant] = opt
    except (TypeError, RuntimeError, ValueError):
      out[variant] = None
  with torch.no_grad():
    out.update(_best_of_rounds({k: o.step for k, o in opts.items()}, repeats, rounds))
  del opts, params
  gc.collect()
  return out


def run(quick: bool = False) -> list[dict]:
  import torch

  sizes = [100_000] if quick else [1_000_000, 10_000_000, 50_000_000]
  bw_n = 1_000_000 if quick else 50_000_000
  bw_before = _bandwidth(bw_n, repeats=3 if quick else 20)
  facts = _factories()
  rows, timings = [], []
  for n in sizes:
    leaf_sizes = _leaf_sizes(n)
    repeats = 3 if quick else (10 if n <= 1_000_000 else 5)
    rounds = 1 if quick else 3
    for name, buffers in OPTIMIZERS.items():
      ours_f, optax_f, torch_f = facts[name]
      single = {} if name == "Lion" else {"foreach": False}
      t = _time_torch(torch_f, leaf_sizes, repeats, rounds, single_kwargs=single)
      jax_ms = _time_jax({"ours": ours_f(), "optax": optax_f()}, leaf_sizes, repeats, rounds)
      ours_ms, optax_ms = jax_ms["ours"], jax_ms["optax"]
      timings.append((name, n, buffers, ours_ms, optax_ms, t))
  # The reference bandwidth: the best x*a+y rate of either framework, before or after the optimizers
  # (the machine may be shared; the best rate is the closest to what it can do).
  bw_after = _bandwidth(bw_n, repeats=3 if quick else 20)
  bw = max(*bw_before.values(), *bw_after.values())
  print(f"memory bandwidth, x = x*a+y in place over {bw_n:,} float32 elements (GB/s): jax"
        f" {bw_before['jax']:.2f} / {bw_after['jax']:.2f}, torch {bw_before['torch']:.2f} /"
        f" {bw_after['torch']:.2f} (before / after); reference {bw:.2f}. torch threads:"
        f" {torch.get_num_threads()}; each size is split over {LEAVES} leaves.")
  fmt = lambda ms: "-" if ms is None else f"{ms:.3f}"  # noqa: E731
  for name, n, buffers, ours_ms, optax_ms, t in timings:
    torch_ms = min((v for v in t.values() if v is not None), default=None)
    nbytes = 4 * n * (2 * (1 + buffers) + 1)  # read p, g, buffers; write p, buffers
    pct = lambda ms: "-" if ms is None else f"{100 * nbytes / (ms * 1e-3) / 1e9 / bw:.0f}%"  # noqa: E731
    rows.append({
        "bench": f"{name} step", "size": f"{n:,}",
        "losslab_ms": ours_ms, "optax_ms": optax_ms, "torch_ms": torch_ms,
        "torch single": fmt(t["single"]), "torch foreach": fmt(t["foreach"]), "torch fused": fmt(t["fused"]),
        "MB/step": f"{nbytes / 1e6:.0f}",
        "losslab %bw": pct(ours_ms), "optax %bw": pct(optax_ms), "torch %bw": pct(torch_ms),
    })
  return rows


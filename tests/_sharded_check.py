"""Sharded training steps on 8 simulated CPU devices, compared with one device (run by test_sharding.py).

Run as ``python tests/_sharded_check.py``: it sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
before importing jax (the flag is read once, at backend start), runs every optimizer three ways for
``STEPS`` steps from the same start on the same data:

* ``single``: everything on one device (the reference);
* ``dp``: data parallel over a 1-D ``Mesh`` of 8 devices: the batch sharded along ``"data"``, params
  and optimizer state replicated; nothing but the inputs' placement says so (no ``out_shardings``),
  so the check that the outputs come back replicated tests XLA's propagation through our updates;
* ``fsdp``: params *and* optimizer state partitioned along the same axis (every leaf whose first
  dimension divides by 8, the others replicated), batch sharded, ``out_shardings`` fixed to the
  same layout,

and prints one JSON object: per optimizer and dtype, the worst relative difference of the params
and of the optimizer state against ``single`` after the last step, and whether every output has
the sharding that was asked for; plus (``"checkpoint"``) whether partitioned params and Adam state
saved with orbax come back equal and on the same ``NamedSharding``s.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import losslab_jax as ll  # noqa: E402

STEPS = 8
N_DEV = 8
FLOAT32 = ("adam", "sgd_momentum", "lion", "rmsprop")   # float64 runs every optimizer


def optimizers():
  return {
      "adam": ll.optim.adam(lr=1e-2, weight_decay=1e-3),
      "adamw_clip": optax.chain(ll.optim.clip_grad_norm(0.5),
                                ll.optim.adamw(lr=ll.schedules.cosine_annealing_lr(1e-2, T_max=10))),
      "sgd_momentum": ll.optim.sgd(lr=5e-2, momentum=0.9, nesterov=True),
      "lion": ll.optim.lion(lr=1e-3, weight_decay=0.1),
      "rmsprop": ll.optim.rmsprop(lr=1e-3, momentum=0.5, centered=True),
      "nadam": ll.optim.nadam(lr=1e-2),
  }


def problem(dtype):
  rng = np.random.default_rng(0)
  params = {
      "w1": rng.standard_normal((16, 32)) * 0.3,    # first dims 16, 32, 8: partitioned in fsdp
      "b1": rng.standard_normal(32) * 0.1,
      "w2": rng.standard_normal((32, 8)) * 0.3,
      "b2": np.zeros(8),
      "s": np.array(1.0),                            # scalar: replicated
      "w3": rng.standard_normal((3, 8)) * 0.3,       # first dim 3: replicated
  }
  x = rng.standard_normal((64, 16))
  y = rng.standard_normal((64, 8))
  params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
  return params, jnp.asarray(x, dtype), jnp.asarray(y, dtype)


def loss_fn(params, x, y):
  h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
  out = params["s"] * (h @ params["w2"]) + params["b2"][None, :] + jnp.sum(params["w3"], axis=0)[None, :]
  return jnp.mean(jnp.log(jnp.cosh(out - y)))


def make_step(tx):
  def step(params, state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  return step


def partitioned(mesh, tree):
  """NamedSharding per leaf: split the first axis over "data" when it divides by the mesh size."""
  def spec(leaf):
    shape = np.shape(leaf)
    return NamedSharding(mesh, P("data") if shape and shape[0] % N_DEV == 0 else P())

  return jax.tree.map(spec, tree)


def rel_diff(a, b):
  worst = 0.0
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if u.shape != v.shape:
      return float("inf")
    scale = max(np.max(np.abs(v)), 1e-30) if v.size else 1.0
    worst = max(worst, float(np.max(np.abs(u - v)) / scale) if v.size else 0.0)
  return worst


def shardings_ok(tree, expected):
  return all(leaf.sharding.is_equivalent_to(s, leaf.ndim) for leaf, s in zip(jax.tree.leaves(tree),
                                                                               jax.tree.leaves(expected)))


def run(tx, dtype, mesh):
  params0, x, y = problem(dtype)
  step = make_step(tx)
  out = {}

  # one device
  dev0 = jax.devices()[0]
  p, s = jax.device_put((params0, tx.init(params0)), dev0)
  f = jax.jit(step)
  xs, ys = jax.device_put((x, y), dev0)
  for _ in range(STEPS):
    p, s = f(p, s, xs, ys)
  ref_p, ref_s = p, s

  # data parallel: batch sharded, params/state replicated; shardings only from the inputs
  repl = NamedSharding(mesh, P())
  batch = NamedSharding(mesh, P("data"))
  p = jax.device_put(params0, repl)
  s = jax.device_put(tx.init(params0), repl)
  xs, ys = jax.device_put(x, batch), jax.device_put(y, batch)
  f = jax.jit(step)
  for _ in range(STEPS):
    p, s = f(p, s, xs, ys)
  out["dp_params"] = rel_diff(p, ref_p)
  out["dp_state"] = rel_diff(s, ref_s)
  out["dp_replicated"] = all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves((p, s)))
  out["dp_devices"] = len(xs.sharding.device_set)

  # params and optimizer state partitioned along "data"
  p_sh = partitioned(mesh, params0)
  s_sh = partitioned(mesh, jax.eval_shape(tx.init, params0))
  p = jax.device_put(params0, p_sh)
  s = jax.jit(tx.init, out_shardings=s_sh)(p)
  f = jax.jit(step, in_shardings=(p_sh, s_sh, batch, batch), out_shardings=(p_sh, s_sh))
  for _ in range(STEPS):
    p, s = f(p, s, xs, ys)
  out["fsdp_params"] = rel_diff(p, ref_p)
  out["fsdp_state"] = rel_diff(s, ref_s)
  out["fsdp_shardings"] = shardings_ok(p, p_sh) and shardings_ok(s, s_sh)
  # the moments really are split: a (16, 32) leaf holds a (2, 32) block per device
  split = [leaf for leaf in jax.tree.leaves(s) if leaf.ndim and leaf.shape[0] % N_DEV == 0]
  out["fsdp_split_leaves"] = len(split)
  out["fsdp_split_ok"] = bool(split) and all(
      leaf.addressable_shards[0].data.shape[0] == leaf.shape[0] // N_DEV for leaf in split)
  return out


def checkpoint_check(mesh):
  """Partitioned params + Adam state saved with orbax and restored onto the same NamedShardings."""
  try:
    from losslab_jax import checkpoint as ckpt
    import orbax.checkpoint  # noqa: F401
  except ImportError as exc:
    return {"skipped": str(exc)}
  import tempfile

  tx = ll.optim.adam(lr=1e-2)
  params0, x, y = problem("float64")
  p_sh = partitioned(mesh, params0)
  s_sh = partitioned(mesh, jax.eval_shape(tx.init, params0))
  batch = NamedSharding(mesh, P("data"))
  p = jax.device_put(params0, p_sh)
  s = jax.jit(tx.init, out_shardings=s_sh)(p)
  f = jax.jit(make_step(tx), in_shardings=(p_sh, s_sh, batch, batch), out_shardings=(p_sh, s_sh))
  xs, ys = jax.device_put((x, y), batch)
  for _ in range(3):
    p, s = f(p, s, xs, ys)
  with tempfile.TemporaryDirectory() as d:
    ckpt.save(os.path.join(d, "c"), {"params": p, "opt_state": s})
    target = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                          {"params": p, "opt_state": s}, {"params": p_sh, "opt_state": s_sh})
    r = ckpt.restore(os.path.join(d, "c"), target)
  equal = all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in
              zip(jax.tree.leaves(r), jax.tree.leaves({"params": p, "opt_state": s})))
  return {"equal": equal, "shardings": shardings_ok(r["params"], p_sh) and shardings_ok(r["opt_state"], s_sh)}


def main() -> int:
  devices = jax.devices()
  if len(devices) != N_DEV:
    print(json.dumps({"error": f"expected {N_DEV} devices, got {len(devices)} ({devices[0].platform})"}))
    return 1
  mesh = Mesh(np.array(devices), ("data",))
  results = {}
  which = sys.argv[1:] or None
  for dtype in ("float64", "float32"):
    for name, tx in optimizers().items():
      if (which and name not in which) or (dtype == "float32" and name not in FLOAT32):
        continue
      results[f"{name}/{dtype}"] = run(tx, dtype, mesh)
  if not which:
    results["checkpoint"] = checkpoint_check(mesh)
  print(json.dumps(results))
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""A jitted training step (forward, backward, optimizer update) unsharded and sharded over 8 devices.

``losslab_ms`` is the unsharded step in this process (its default device). The sharded steps run in a
subprocess started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and
``JAX_PLATFORMS=cpu`` (the flag must be set before jax starts), which also times the same step on
one of its devices (``cpu1_ms``), then data parallel (``dp8_ms``: batch sharded over a ``Mesh``,
params and optimizer state replicated) and fully sharded (``fsdp8_ms``: params and optimizer state
partitioned along the same axis). The 8 simulated devices share this machine's CPU cores, so the
sharded columns measure the partitioning overhead (collectives, per-shard launches), not a speedup;
on real devices the same code runs unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from parity._bench import jax_sync, time_fn

N_DEV = 8


def _sizes(quick: bool) -> tuple[int, int, int]:
  """(input features, hidden width, batch)."""
  return (128, 256, 256) if quick else (512, 2048, 1024)


def _optimizers():
  import losslab_jax as ll

  return {"adam": ll.optim.adam(lr=1e-3, weight_decay=1e-4), "sgd_momentum": ll.optim.sgd(lr=1e-2, momentum=0.9)}


def _problem(quick: bool):
  import jax.numpy as jnp

  d, h, b = _sizes(quick)
  rng = np.random.default_rng(0)
  params = {"w1": rng.standard_normal((d, h)) / np.sqrt(d), "b1": np.zeros(h),
            "w2": rng.standard_normal((h, h)) / np.sqrt(h), "b2": np.zeros(h),
            "w3": rng.standard_normal((h, 8)) / np.sqrt(h), "b3": np.zeros(8)}
  params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
  x = jnp.asarray(rng.standard_normal((b, d)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((b, 8)), jnp.float32)
  return params, x, y


def _step(tx):
  import jax
  import jax.numpy as jnp
  import optax

  def loss_fn(p, x, y):
    h = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
    h = jnp.tanh(h @ p["w2"] + p["b2"][None, :])
    return jnp.mean((h @ p["w3"] + p["b3"][None, :] - y) ** 2)

  def step(params, state, x, y):
    grads = jax.grad(loss_fn)(params, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _time_step(step, params, state, x, y, repeats):
  holder = [params, state]

  def run():
    holder[0], holder[1] = step(holder[0], holder[1], x, y)
    return holder[0]

  return time_fn(run, repeats=repeats, sync=jax_sync)


def _size_label(quick: bool) -> str:
  d, h, b = _sizes(quick)
  n = d * h + h + h * h + h + h * 8 + 8
  return f"{n / 1e6:.2f}M params, batch {b}"


def _worker(quick: bool) -> dict:
  """In the 8-device subprocess: one device, data parallel, fully sharded (ms per step)."""
  import jax
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

  repeats = 5 if quick else 20
  mesh = Mesh(np.array(jax.devices()[:N_DEV]), ("data",))
  repl, batch = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

  def partitioned(tree):
    return jax.tree.map(lambda a: NamedSharding(mesh, P("data") if np.ndim(a) and np.shape(a)[0] % N_DEV == 0
                                                 else P()), tree)

  out = {}
  for name, tx in _optimizers().items():
    params, x, y = _problem(quick)
    step = _step(tx)
    dev0 = jax.devices()[0]
    p, s, xs, ys = jax.device_put((params, tx.init(params), x, y), dev0)
    one = _time_step(jax.jit(step), p, s, xs, ys, repeats)
    p, s = jax.device_put((params, tx.init(params)), repl)
    xs, ys = jax.device_put((x, y), batch)
    dp = _time_step(jax.jit(step), p, s, xs, ys, repeats)
    p_sh, s_sh = partitioned(params), partitioned(jax.eval_shape(tx.init, params))
    p = jax.device_put(params, p_sh)
    s = jax.jit(tx.init, out_shardings=s_sh)(p)
    f = jax.jit(step, in_shardings=(p_sh, s_sh, batch, batch), out_shardings=(p_sh, s_sh))
    fsdp = _time_step(f, p, s, xs, ys, repeats)
    out[name] = {"cpu1_ms": round(one, 3), "dp8_ms": round(dp, 3), "fsdp8_ms": round(fsdp, 3)}
  return out


def _run_worker(quick: bool) -> dict | None:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={N_DEV}").strip()
  proc = subprocess.run([sys.executable, "-m", "parity.benches.sharding", "--worker"] + (["--quick"] if quick else []),
                        capture_output=True, text=True, env=env, timeout=1200)
  if proc.returncode != 0:
    print(f"sharded benchmark subprocess failed:\n{proc.stderr[-2000:]}")
    return None
  return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
  import jax

  repeats = 5 if quick else 20
  sub = _run_worker(quick) or {}
  rows = []
  for name, tx in _optimizers().items():
    params, x, y = _problem(quick)
    ms = _time_step(jax.jit(_step(tx)), params, tx.init(params), x, y, repeats)
    r = sub.get(name, {})
    rows.append({"bench": f"{name} train step, sharded", "size": _size_label(quick), "losslab_ms": ms,
                 "optax_ms": None, "torch_ms": None, "cpu1_ms": r.get("cpu1_ms", "-"),
                 "dp8_ms": r.get("dp8_ms", "-"), "fsdp8_ms": r.get("fsdp8_ms", "-")})
  return rows


if __name__ == "__main__":
  if "--worker" in sys.argv:
    print(json.dumps(_worker("--quick" in sys.argv)))
  else:
    for row in run("--quick" in sys.argv):
      print(row)

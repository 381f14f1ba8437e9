"""``linear_cross_entropy`` (chunked, custom VJP) against the plain ``cross_entropy(x @ W.T)``.

Both variants compute the mean loss and its gradients with respect to ``x`` and ``W`` (an LM head:
tokens x hidden features, a vocabulary of classes), jitted, float32. Each runs in a fresh
subprocess, so its peak memory is its own: the process's peak resident set (``VmHWM``, reset after
compilation through ``/proc/self/clear_refs``; ``ru_maxrss`` where that is unavailable) minus its
resident set just before the first call (inputs built, program compiled), and, where the backend has
it, ``device.memory_stats()["peak_bytes_in_use"]``. Time: median of the calls after one warm-up
(compile excluded). Goal (issue 12): peak <= 1/4 and time <= 1.3x of the plain path.
"""

from __future__ import annotations

import json
import subprocess
import sys

FULL = (8192, 1024, 65536)
QUICK = (4096, 256, 16384)


def _status_mib(field: str) -> float:
  """``VmRSS`` / ``VmHWM`` of this process from /proc (Linux), in MiB; NaN elsewhere."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return float("nan")


def _reset_peak() -> bool:
  """Reset the kernel's peak-RSS mark (VmHWM) so compilation's peak is not counted (Linux >= 4.0)."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _worker(variant: str, tokens: int, hidden: int, vocab: int, chunk: int | None, repeats: int) -> dict:
  import resource
  import time

  import jax
  import jax.numpy as jnp
  import numpy as np

  import losslab_jax as ll

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((tokens, hidden), np.float32))
  w = jnp.asarray((rng.standard_normal((vocab, hidden)) / np.sqrt(hidden)).astype(np.float32))
  t = jnp.asarray(rng.integers(0, vocab, tokens).astype(np.int32))

  if variant == "plain":
    def loss(x, w):
      return ll.losses.cross_entropy(x @ w.T, t)
  else:
    def loss(x, w):
      return ll.losses.linear_cross_entropy(x, w, t, chunk_size=chunk)

  f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  compiled = f.lower(x, w).compile()
  jax.block_until_ready((x, w, t))
  base = _status_mib("VmRSS")
  reset = _reset_peak()
  times = []
  for _ in range(repeats + 1):
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(x, w))
    times.append((time.perf_counter() - t0) * 1e3)
    del out
  # the peak since the reset; without a reset, ru_maxrss also counts the compiler's peak (an over-estimate)
  peak = _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  stats = jax.devices()[0].memory_stats() or {}
  dev_peak = stats.get("peak_bytes_in_use")
  times = sorted(times[1:])
  return {"ms": times[len(times) // 2], "peak_rss_mib": peak - base,
          "device_peak_mib": None if dev_peak is None else dev_peak / 2**20,
          "platform": jax.devices()[0].platform}


def _spawn(variant: str, size: tuple[int, int, int], chunk: int | None, repeats: int) -> dict:
  cmd = [sys.executable, "-m", "parity.benches.linear_ce", variant, *map(str, size), str(chunk or 0), str(repeats)]
  out = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if out.returncode != 0:
    raise RuntimeError(f"linear_ce bench worker failed ({variant}): {out.stderr[-2000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
  size = QUICK if quick else FULL
  repeats = 3 if quick else 3
  plain = _spawn("plain", size, None, repeats)
  chunked = _spawn("chunked", size, None, repeats)
  row = {
      "bench": "linear_cross_entropy fwd+bwd (x, W)",
      "size": "tokens={} hidden={} vocab={}".format(*size),
      "losslab_ms": chunked["ms"],
      "optax_ms": None,
      "torch_ms": None,
      "plain_ms": round(plain["ms"], 1),
      "time_vs_plain": round(chunked["ms"] / plain["ms"], 3),
      "peak_MiB": round(chunked["peak_rss_mib"], 1),
      "plain_peak_MiB": round(plain["peak_rss_mib"], 1),
      "mem_vs_plain": round(chunked["peak_rss_mib"] / plain["peak_rss_mib"], 3),
  }
  if chunked["device_peak_mib"] is not None and plain["device_peak_mib"] is not None:
    row["device_peak_MiB"] = round(chunked["device_peak_mib"], 1)
    row["plain_device_peak_MiB"] = round(plain["device_peak_mib"], 1)
    row["device_mem_vs_plain"] = round(chunked["device_peak_mib"] / plain["device_peak_mib"], 3)
  return [row]


if __name__ == "__main__":
  v, n, h, c, ch, r = sys.argv[1:7]
  print(json.dumps(_worker(v, int(n), int(h), int(c), int(ch) or None, int(r))))

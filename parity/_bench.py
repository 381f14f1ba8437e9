"""``python -m parity bench [losses|optim|schedules]``: losslab_jax against torch and optax, same run.

Each benchmark module in ``parity.benches`` exposes ``run(quick: bool) -> list[dict]`` returning rows
``{"bench", "size", "losslab_ms", "optax_ms" (or None), "torch_ms", ...}``; this module times,
prints ratios (``> 1`` means losslab_jax is faster) and writes ``parity-bench.json``.
"""

from __future__ import annotations

import importlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

BENCHES = ("losses", "optim", "schedules", "sharding", "linear_ce", "monitor")


def time_fn(fn: Callable[[], object], *, repeats: int = 10, warmup: int = 2, sync: Callable[[object], object] | None = None) -> float:
  """Median wall time of ``fn()`` in milliseconds (``sync`` blocks on the result, e.g. ``block_until_ready``)."""
  for _ in range(warmup):
    out = fn()
    if sync is not None:
      sync(out)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = fn()
    if sync is not None:
      sync(out)
    times.append((time.perf_counter() - t0) * 1e3)
  return statistics.median(times)


def jax_sync(out):
  import jax

  return jax.block_until_ready(out)


def ratio(other_ms: float | None, ours_ms: float) -> str:
  if other_ms is None:
    return "-"
  return f"{other_ms / ours_ms:.2f}x"


def main(what: list[str], quick: bool = False) -> int:
  from rich.console import Console
  from rich.table import Table

  import jax

  from parity._report import wide_console

  console = wide_console(Console())
  names = what or list(BENCHES)
  all_rows = []
  for name in names:
    if name not in BENCHES:
      console.print(f"unknown benchmark {name!r}; choose from {BENCHES}")
      return 2
    try:
      mod = importlib.import_module(f"parity.benches.{name}")
    except ModuleNotFoundError as exc:
      console.print(f"[yellow]benchmark {name!r} not available: {exc}[/yellow]")
      continue
    rows = mod.run(quick)
    if quick:   # tiny sizes, few repeats: it shows the benchmark runs, not how fast anything is
      title = (f"SMOKE RUN (--quick) of bench {name} on {jax.devices()[0].platform}: tiny sizes and few repeats;"
               " these timings are not measurements and no speed ratios are shown")
    else:
      title = (f"bench {name} on {jax.devices()[0].platform} (median ms; ratio = other / losslab_jax,"
               " >1: losslab_jax faster)")
    table = Table(title=title)
    extra_cols = [k for k in rows[0] if k not in ("bench", "size", "losslab_ms", "optax_ms", "torch_ms")] if rows else []
    ratio_cols = [] if quick else ["vs optax", "vs torch"]
    for col in ["bench", "size", "losslab_jax ms", "optax ms", "torch ms", *ratio_cols, *extra_cols]:
      table.add_column(col, justify="left" if col in ("bench", "size") else "right",
                       overflow="fold" if col == "bench" else "ellipsis")
    for r in rows:
      ratios = [] if quick else [ratio(r.get("optax_ms"), r["losslab_ms"]), ratio(r.get("torch_ms"), r["losslab_ms"])]
      table.add_row(r["bench"], str(r["size"]), f"{r['losslab_ms']:.3f}",
                    "-" if r.get("optax_ms") is None else f"{r['optax_ms']:.3f}",
                    "-" if r.get("torch_ms") is None else f"{r['torch_ms']:.3f}",
                    *ratios, *[str(r[c]) for c in extra_cols])
    console.print(table)
    all_rows.extend({**r, "group": name} for r in rows)
  out = Path("parity-bench-quick.json" if quick else "parity-bench.json")
  out.write_text(json.dumps({"platform": jax.devices()[0].platform, "quick": quick, "rows": all_rows}, indent=2,
                            default=str))
  if quick:
    console.print(f"[bold yellow]--quick is a smoke run (does every benchmark run?), not a measurement; wrote {out},"
                  " leaving parity-bench.json alone. Run without --quick for timings.[/bold yellow]")
  return 0

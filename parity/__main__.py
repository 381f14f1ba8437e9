"""``python -m parity [run|list|bench] ...``.

run (default)  every default case with its first config (``--all``: every case, every config),
               float32 and float64, in worker processes; exit 1 on any mismatch.
list           the registered cases.
bench [what]   speed against torch and optax (``losses``, ``optim``, ``schedules``, ``sharding``; default all).
drift          float32 drift of the whole-model training runs, per step: docs/parity-drift.json/.png.
compare M:F    your own port: run factory F of module M (dotted name or file.py), which returns the
               torch and nnx sides, and compare them (forward or training); exit 1 on a divergence.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path


def _setup_jax() -> None:
  from parity._runner import setup_jax

  setup_jax()


def _select(registry, patterns, include_all):
  cases = [c for c in registry.values() if include_all or c.default or patterns]
  if patterns:
    cases = [c for c in cases if any(p in c.name or p == c.group for p in patterns)]
  return cases


DEFAULT_CONFIGS_PER_CASE = 1

def cmd_run(args) -> int:
  import concurrent.futures
  import multiprocessing

  from rich.console import Console

  from parity import _runner

  console = Console()
  with contextlib.ExitStack() as stack:
    pool = None
    if args.jobs > 1:
      # Start the workers first: their imports (jax, torch, every case) overlap the registry load below.
      ctx = multiprocessing.get_context("spawn")  # JAX is not fork-safe
      pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(
          args.jobs, mp_context=ctx, initializer=_runner.worker_init))
      for _ in range(args.jobs):
        pool.submit(_runner.ready)
    return _run_cases(args, console, pool)


def _run_cases(args, console, pool) -> int:
  import concurrent.futures

  from rich.progress import Progress

  from parity import _runner
  from parity._case import load_all
  from parity._report import print_table, summarize, write_reports

  cases = _select(load_all(), args.k, args.all)
  if not cases:
    console.print(f"no case matches {args.k}")
    return 2
  limit = None if (args.all or args.k) else DEFAULT_CONFIGS_PER_CASE
  chosen = {c.name: [cfg.id for cfg in c.configs][:limit] for c in cases}
  t0 = time.perf_counter()
  results, timings = [], {}
  jobs = max(1, min(args.jobs, len(cases)))
  with Progress(console=console, transient=True) as progress:
    task = progress.add_task(f"parity ({_runner.plural(jobs, 'worker process', 'worker processes')})",
                             total=len(cases))
    if pool is None or jobs == 1:
      _runner.worker_init()
      for case in cases:
        _, res, sec = _runner.run_one(case.name, chosen[case.name], args.dtype)
        results.extend(res)
        timings[case.name] = sec
        progress.advance(task)
    else:
      # Longest first, so no long case starts last while the other worker idles: whole-model
      # training, then other trajectories, then functions (the report keeps registry order).
      order = sorted(cases, key=_runner.cost_rank)
      futures = [pool.submit(_runner.run_one, c.name, chosen[c.name], args.dtype) for c in order]
      for fut in concurrent.futures.as_completed(futures):
        name, res, sec = fut.result()
        results.extend(res)
        timings[name] = sec
        progress.advance(task)
  seconds = time.perf_counter() - t0
  rows = summarize(cases, results, args.dtype)
  for row in rows:
    row["seconds"] = round(timings[row["name"]], 3)
  print_table(rows, args.dtype, console)
  n_fail = sum(not r["passed"] for r in rows)
  scope = ("every config" if limit is None else
           f"the default set: the first {'config' if limit == 1 else f'{limit} configs'} of each case;"
           " --all runs all of them")
  subset = bool(args.k) or sorted(args.dtype) != ["float32", "float64"]
  if subset:   # a -k or one-dtype run must not overwrite the full report
    scope += f"; only {' '.join(f'-k {k}' for k in args.k)} {' '.join(f'--dtype {d}' for d in args.dtype)}".rstrip()
  json_path, md_path = write_reports(rows, args.dtype, Path(args.out), seconds,
                                     name="parity-report-subset" if subset else "parity-report", scope=scope)
  console.print(f"{_runner.plural(len(rows), 'case')}, {_runner.plural(len(results), 'config run')} ({scope}),"
                f" {_runner.plural(n_fail, 'failed case')}, {seconds:.1f} s; wrote {json_path} and {md_path}",
                highlight=False)
  if subset:
    console.print(f"[bold yellow]a subset run writes {json_path.name} and {md_path.name}; the full report"
                  " (parity-report.json/.md) is left as it was[/bold yellow]")
  return 1 if n_fail else 0


def cmd_list(args) -> int:
  from parity._case import load_all

  for case in load_all().values():
    flag = "" if case.default else "  (not in default run)"
    print(f"{case.name:<44} {case.group:<12} {case.kind:<10} {len(case.configs)} configs{flag}")
  return 0


def cmd_bench(args) -> int:
  from parity._bench import main as bench_main

  return bench_main(args.what, quick=args.quick)


def cmd_drift(args) -> int:
  from parity._drift import main as drift_main

  return drift_main(Path(args.out), args.k or None)


def cmd_compare(args) -> int:
  from parity._port._cli import main as compare_main

  return compare_main(args.factory, args.dtype, args.json, args.markdown)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m parity", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="cmd")
  run = sub.add_parser("run", help="run the parity cases (default)")
  for p in (parser, run):
    p.add_argument("-k", action="append", default=[], metavar="PATTERN",
                   help="only cases whose name contains PATTERN, or whose group is PATTERN (repeatable)")
    p.add_argument("--dtype", action="append", choices=["float32", "float64"], default=None,
                   help="dtypes to run (repeatable; default both)")
    p.add_argument("--all", action="store_true",
                   help="every registered case and every config (default: the first config of each default case)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: min(2, CPUs))")
    p.add_argument("--out", default=".", help="directory for parity-report.json/.md (default: .); a run with -k or"
                   " one --dtype writes parity-report-subset.json/.md instead, leaving the full report alone")
  sub.add_parser("list", help="list registered cases")
  bench = sub.add_parser("bench", help="benchmarks against torch and optax")
  bench.add_argument("what", nargs="*", default=[], help="losses | optim | schedules | sharding (default: all)")
  bench.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (smoke test)")
  drift = sub.add_parser("drift", help="float32 drift of the training cases, per step (json + png)")
  drift.add_argument("-k", action="append", default=[], metavar="PATTERN",
                     help="only training configs whose id contains PATTERN (repeatable)")
  drift.add_argument("--out", default="docs", help="directory for parity-drift.json/.png (default: docs, where"
                     " the README's image lives)")
  compare = sub.add_parser("compare", help="compare your own torch model and its nnx port (MODULE:FACTORY)",
                           description=__import__("parity._port._cli", fromlist=["x"]).__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
  compare.add_argument("factory", metavar="MODULE:FACTORY",
                       help="a callable returning the comparison(s): see the factory contract above")
  compare.add_argument("--dtype", action="append", choices=["float32", "float64"], default=None,
                       help="call FACTORY(dtype=...) once per dtype (repeatable; default: FACTORY())")
  compare.add_argument("--json", default=None, metavar="PATH", help="write every report as JSON")
  compare.add_argument("--markdown", default=None, metavar="PATH", help="write every report as markdown")
  args = parser.parse_args(argv)
  from parity._runner import missing_parity_extra

  missing = missing_parity_extra()
  if missing:
    print(missing, file=sys.stderr)
    return 2
  _setup_jax()
  if args.cmd == "compare":
    return cmd_compare(args)
  if args.cmd == "list":
    return cmd_list(args)
  if args.cmd == "bench":
    return cmd_bench(args)
  if args.cmd == "drift":
    return cmd_drift(args)
  args.dtype = args.dtype or ["float32", "float64"]
  return cmd_run(args)


if __name__ == "__main__":
  sys.exit(main())

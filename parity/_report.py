"""The parity report: a rich table on the terminal, ``parity-report.json`` and ``parity-report.md``."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path

from parity._case import Case
from parity._compare import ConfigResult


def _fmt(x: float | None) -> str:
  if x is None:
    return "-"
  if x == 0:
    return "0"
  return f"{x:.1e}"


def summarize(cases: Sequence[Case], results: Sequence[ConfigResult], dtypes: Sequence[str]) -> list[dict]:
  rows = []
  for case in cases:
    mine = [r for r in results if r.case == case.name]
    row = {"name": case.name, "group": case.group, "kind": case.kind,
           "configs": len({r.config for r in mine}), "passed": all(r.passed for r in mine),
           "tolerance_reason": case.tolerance_reason, "dtypes": {}, "failures": []}
    for d in dtypes:
      rd = [r for r in mine if r.dtype == d]
      if not rd:
        continue
      row["dtypes"][d] = {
          "worst_rel": max(r.worst_rel for r in rd),
          "worst_abs": max(r.worst_abs for r in rd),
          "tolerance": rd[0].tolerance,
          "passed": all(r.passed for r in rd),
      }
    for r in mine:
      if not r.passed:
        row["failures"].append({"config": r.config, "dtype": r.dtype, "rel": r.worst_rel,
                                "abs": r.worst_abs, "message": r.message})
    rows.append(row)
  return rows


def wide_console(console=None, width: int = 160):
  """``console``, or a new rich Console, at least ``width`` columns wide when output is not a terminal.

  rich lays tables out for 80 columns when stdout is piped or redirected, and cuts long names
  (``binary_cross_e…``); a file or a pipe has no width limit, so give the table room instead.
  """
  from rich.console import Console

  console = console or Console()
  if not console.is_terminal and console.width < width:
    console = Console(file=console.file, width=width, force_terminal=False)
  return console


def print_table(rows: list[dict], dtypes: Sequence[str], console=None) -> None:
  from rich.table import Table

  console = wide_console(console)
  table = Table(title="losslab_jax vs torch: worst relative error over every config (values and gradients)")
  # names are never cut: fold onto a second line in a narrow terminal rather than end in "…"
  table.add_column("case", overflow="fold")
  table.add_column("group", overflow="fold")
  table.add_column("configs", justify="right")
  for d in dtypes:
    table.add_column(f"{d} rel", justify="right")
  table.add_column("status")
  for row in rows:
    cells = [row["name"], row["group"], str(row["configs"])]
    for d in dtypes:
      cells.append(_fmt(row["dtypes"].get(d, {}).get("worst_rel")))
    cells.append("[green]pass[/green]" if row["passed"] else "[bold red]FAIL[/bold red]")
    table.add_row(*cells)
  console.print(table)
  for row in rows:
    for f in row["failures"]:
      console.print(f"[red]FAIL[/red] {row['name']}[{f['config']}, {f['dtype']}]: rel {_fmt(f['rel'])}"
                    f" abs {_fmt(f['abs'])} {f['message']}", markup=True, highlight=False)


def environment() -> dict:
  env = {"python": platform.python_version(), "machine": platform.machine()}
  for mod in ("jax", "optax", "flax", "torch", "numpy"):
    try:
      env[mod] = __import__(mod).__version__
    except Exception:  # noqa: BLE001 - a missing optional module is reported as such
      env[mod] = None
  return env


def write_reports(rows: list[dict], dtypes: Sequence[str], out_dir: Path, seconds: float,
                  name: str = "parity-report", scope: str = "") -> tuple[Path, Path]:
  """Write ``<name>.json`` and ``<name>.md`` under ``out_dir``; ``scope`` says what the run covered."""
  out_dir.mkdir(parents=True, exist_ok=True)
  n_fail = sum(not r["passed"] for r in rows)
  payload = {"summary": {"cases": len(rows), "failed": n_fail, "configs": sum(r["configs"] for r in rows),
                         "dtypes": list(dtypes), "seconds": round(seconds, 2), "scope": scope},
             "environment": environment(), "cases": rows}
  json_path = out_dir / f"{name}.json"
  json_path.write_text(json.dumps(payload, indent=2, default=float))
  lines = ["# losslab_jax parity report", "",
           *([f"Scope: {scope}.", ""] if scope else []),
           f"{len(rows)} cases, {n_fail} failed, {seconds:.1f} s. Environment: "
           + ", ".join(f"{k} {v}" for k, v in payload["environment"].items()), "",
           "| case | group | configs | " + " | ".join(f"{d} worst rel (tol)" for d in dtypes) + " | status |",
           "|---|---|---:|" + "---:|" * len(dtypes) + "---|"]
  for r in rows:
    cells = [r["name"], r["group"], str(r["configs"])]
    for d in dtypes:
      s = r["dtypes"].get(d)
      cells.append(f"{_fmt(s['worst_rel'])} ({_fmt(s['tolerance'])})" if s else "-")
    cells.append("pass" if r["passed"] else "**FAIL**")
    lines.append("| " + " | ".join(cells) + " |")
  reasons = [r for r in rows if r["tolerance_reason"]]
  if reasons:
    lines += ["", "## Loosened tolerances", ""]
    lines += [f"- `{r['name']}`: {r['tolerance_reason']}" for r in reasons]
  md_path = out_dir / f"{name}.md"
  md_path.write_text("\n".join(lines) + "\n")
  return json_path, md_path

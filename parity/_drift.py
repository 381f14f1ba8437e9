"""How float32 drift grows over a training run: ``python -m parity drift``.

Runs every config of the whole-model training case (:mod:`parity.cases.training`) in float32 in
both frameworks, end to end, and measures at every step the relative error (the parity measure of
:func:`parity._compare.trajectory_errors`) of losslab_jax against torch, separately for the loss,
the raw gradients and the parameters. For scale it also measures each framework's own float32
rounding error: the distance of each float32 run from the float64 torch run of the same problem
(same seed, float32-exact data and initial weights). If losslab_jax-vs-torch stays at or below
those, the two frameworks differ by no more than float32 itself allows.

Writes ``parity-drift.json`` (every per-step curve) and ``parity-drift.png`` (log y, step on x,
one line per config, the running maximum of the per-step error, so a curve at step k is the
tolerance the first k steps need; top row losslab_jax vs torch, bottom row torch float32 vs
torch float64).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PARTS = ("loss", "grads", "params")
MARK_STEPS = (0, 1, 10, 50, 100)


def _curves(traj_a: Sequence[dict], traj_b: Sequence[dict]) -> dict[str, list[float]]:
  from parity._compare import trajectory_errors

  return {p: [e.rel for e in trajectory_errors([s[p] for s in traj_a], [s[p] for s in traj_b])]
          for p in PARTS}


def measure(config_ids: Sequence[str] | None = None, steps: int | None = None) -> dict[str, Any]:
  """Per-step float32 errors of every training config (or those whose id contains one of ``config_ids``).

  Returns ``{"steps", "configs": {id: {"jax_vs_torch": {part: [rel per record]},
  "torch_vs_f64": {...}, "jax_vs_f64": {...}}}}``; record ``k`` is the state after ``k`` steps.
  """
  from parity._compare import seed_for
  from parity.cases import training

  steps = training.STEPS if steps is None else steps
  out: dict[str, Any] = {"steps": steps, "tolerance_float32": training.F32_RTOL, "configs": {}}
  for cfg in training.CONFIGS:
    if config_ids and not any(c in cfg.id for c in config_ids):
      continue
    seed = seed_for("training", cfg.id, "float32")  # the training case's own float32 seed
    kw = {**cfg.kwargs, "steps": steps}
    jax32 = training.run_jax(seed, "float32", **kw)
    torch32 = training.run_torch(seed, "float32", **kw)
    torch64 = training.run_torch(seed, "float64", **kw)
    out["configs"][cfg.id] = {
        "jax_vs_torch": _curves(jax32, torch32),
        "torch_vs_f64": _curves(torch32, torch64),
        "jax_vs_f64": _curves(jax32, torch64),
    }
  return out


def _panel(ax, curves: dict[str, Sequence[float]], title: str, tol: float | None, xlabel: bool, ylabel: bool) -> None:
  """One panel: the running maximum of each named per-step error curve, log y (exact 0 drawn at 1e-9)."""
  import matplotlib.pyplot as plt

  cmap = plt.get_cmap("tab10")
  for i, (name, values) in enumerate(curves.items()):
    y = np.maximum.accumulate(np.asarray(values, np.float64)) if len(values) else np.zeros(0)
    ax.semilogy(np.arange(len(y)), np.maximum(y, 1e-9), color=cmap(i % 10), lw=1.2, label=name)
  ax.axhline(1e-5, color="k", ls="--", lw=0.8)
  if tol:
    ax.axhline(tol, color="r", ls=":", lw=0.8)
  ax.set_title(title, fontsize=10)
  ax.grid(True, which="major", alpha=0.3)
  if xlabel:
    ax.set_xlabel("step (state after k optimizer steps)")
  if ylabel:
    ax.set_ylabel("worst relative error up to step k")


def plot_curves(runs: dict[str, dict[str, Sequence[float]]], path: Path, tolerance: float | None = None,
                title: str = "float32 drift") -> None:
  """One row of panels (loss, grads, params), one line per run: ``runs[name][part]`` per-step errors.

  Used by :meth:`parity.TrainingReport.plot_drift` (a :func:`parity.compare_training` run).
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(PARTS), figsize=(16, 4.8), sharex=True, sharey=True)
  for c, part in enumerate(PARTS):
    _panel(axes[c], {name: curves.get(part, []) for name, curves in runs.items()}, f"{title}: {part}", tolerance,
           True, c == 0)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
  fig.tight_layout(rect=(0, 0.1, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot(result: dict[str, Any], path: Path) -> None:
  """The drift figure: 2 x 3 panels (comparison x part), log y, one line per config."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = (("jax_vs_torch", "losslab_jax f32 vs torch f32"), ("torch_vs_f64", "torch f32 vs torch f64"))
  fig, axes = plt.subplots(len(rows), len(PARTS), figsize=(16, 9), sharex=True, sharey=True)
  tol = result.get("tolerance_float32")
  for r, (key, title) in enumerate(rows):
    for c, part in enumerate(PARTS):
      _panel(axes[r][c], {cid: curves[key][part] for cid, curves in result["configs"].items()},
             f"{title}: {part}", tol, r == len(rows) - 1, c == 0)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
  fig.suptitle("float32 drift over 100 training steps: the worst relative error over steps 0..k "
               "(running max of the per-step parity measure; exact 0 drawn at 1e-9).\n"
               "Dashed: 1e-5, the default float32 tolerance; dotted: the `training` case's float32 "
               "tolerance", fontsize=11)
  fig.tight_layout(rect=(0, 0.08, 1, 0.96))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per config: losslab_jax-vs-torch error of each part at :data:`MARK_STEPS`, and the max
  of torch's own float32-vs-float64 error for comparison."""
  rows = []
  for cid, curves in result["configs"].items():
    row: dict[str, Any] = {"config": cid}
    for part in PARTS:
      y = np.asarray(curves["jax_vs_torch"][part])
      for s in MARK_STEPS:
        if s < len(y):
          row[f"{part}@{s}"] = float(y[s])
      row[f"{part}_max"] = float(y.max())
      row[f"{part}_torch_vs_f64_max"] = float(np.max(curves["torch_vs_f64"][part]))
    rows.append(row)
  return rows


def main(out: Path, config_ids: Sequence[str] | None = None, steps: int | None = None) -> int:
  """Measure, write ``parity-drift.json`` and ``parity-drift.png`` under ``out``, print a table."""
  from rich.console import Console
  from rich.table import Table

  console = Console(width=max(Console().width, 150))
  t0 = time.perf_counter()
  result = measure(config_ids, steps)
  if not result["configs"]:
    console.print(f"no training config matches {list(config_ids or [])}")
    return 2
  result["seconds"] = time.perf_counter() - t0
  out.mkdir(parents=True, exist_ok=True)
  json_path, png_path = out / "parity-drift.json", out / "parity-drift.png"
  result["summary"] = summary_rows(result)
  json_path.write_text(json.dumps(result, indent=1))
  plot(result, png_path)
  table = Table(title="float32 drift, losslab_jax vs torch: worst relative error of steps 0..k "
                      "[torch f32 vs f64 over all steps]")
  table.add_column("config")
  table.add_column("loss, all", justify="right")
  table.add_column("grads, all", justify="right")
  for s in (1, 10, 100):
    table.add_column(f"params 0..{s}", justify="right")
  for row in result["summary"]:
    curves = result["configs"][row["config"]]["jax_vs_torch"]["params"]
    upto = [f"{max(curves[: s + 1]):.1e}" for s in (1, 10, 100) if s < len(curves)]
    table.add_row(row["config"],
                  f"{row['loss_max']:.1e} [{row['loss_torch_vs_f64_max']:.1e}]",
                  f"{row['grads_max']:.1e} [{row['grads_torch_vs_f64_max']:.1e}]",
                  *upto[:-1], f"{upto[-1]} [{row['params_torch_vs_f64_max']:.1e}]")
  console.print(table)
  console.print(f"{len(result['configs'])} configs, {result['seconds']:.1f} s; "
                f"wrote {json_path} and {png_path}")
  return 0

"""The live progress line and the end-of-run summary: rich when it is installed, plain text otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

OUTPUTS = ("auto", "rich", "plain", "none")


def _bytes(n: float | None) -> str:
  if n is None:
    return "n/a"
  for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
    if abs(n) < 1024 or unit == "TiB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024
  return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


def _num(x: Any) -> str:
  if x is None:
    return "n/a"
  x = float(x)
  if x != x:
    return "nan"
  if 1e3 <= abs(x) < 1e7:
    return f"{x:,.0f}"
  if x == 0 or 1e-3 <= abs(x) < 1e3:
    return f"{x:.4g}"
  return f"{x:.3e}"


def _duration(s: float | None) -> str:
  if s is None:
    return "n/a"
  if s < 1:
    return f"{s * 1e3:.2f} ms"
  if s < 120:
    return f"{s:.2f} s"
  return f"{int(s // 60)}m{s % 60:02.0f}s"


def progress_line(status: dict[str, Any]) -> str:
  """One line: step, time per step, throughput, logged values, memory, ETA."""
  total = status.get("total_steps")
  parts = [f"{status['name']} {status['steps']}" + (f"/{total}" if total else "")]
  if status.get("step_time_s") is not None:
    parts.append(f"{_duration(status['step_time_s'])}/step")
    parts.append(f"{_num(status['steps_per_s'])} it/s")
  elif status.get("first_step_s") is not None:
    parts.append(f"first step {_duration(status['first_step_s'])} (with compilation)")
  if status.get("items_per_s") is not None:
    parts.append(f"{_num(status['items_per_s'])} items/s")
  for key, value in status.get("values", {}).items():
    parts.append(f"{key} {_num(value)}")
  if status.get("peak_device_bytes") is not None:
    parts.append(f"dev peak {_bytes(status['peak_device_bytes'])}")
  if status.get("host_rss_bytes") is not None:
    parts.append(f"rss {_bytes(status['host_rss_bytes'])}")
  if status.get("eta_s"):
    parts.append(f"eta {_duration(status['eta_s'])}")
  return " | ".join(parts)


def summary_lines(summary: dict[str, Any]) -> list[tuple[str, str]]:
  rows = [
      ("steps", str(summary["steps"])),
      ("wall time", _duration(summary["total_s"])),
      ("first step (compile + run)", _duration(summary["first_step_s"])),
      ("compile (estimate)", _duration(summary["compile_s"])),
      ("time per step (median)", _duration(summary["step_time_s"])),
      ("steps / s (mean)", _num(summary["steps_per_s"])),
  ]
  if summary.get("items_per_s") is not None:
    rows.append(("items / s (mean)", _num(summary["items_per_s"])))
  rows.append(("peak device memory", _bytes(summary["peak_device_bytes"])))
  rows.append(("peak host RSS", _bytes(summary["peak_host_rss_bytes"])))
  for key, stats in summary["values"].items():
    rows.append((key, f"last {_num(stats['last'])}  min {_num(stats['min'])}  max {_num(stats['max'])}"))
  if summary.get("first_nonfinite_step") is not None:
    rows.append(("first non-finite value", f"step {summary['first_nonfinite_step']}"))
  return rows


class Display:
  """Writes the progress line and the summary to ``stream`` (``output`` picks how)."""

  def __init__(self, output: str, stream: TextIO | None, refresh_s: float) -> None:
    if output not in OUTPUTS:
      raise ValueError(f"Monitor: expected `output` to be one of {' | '.join(map(repr, OUTPUTS))}, got {output!r}")
    self.stream = stream if stream is not None else sys.stderr
    self.refresh_s = refresh_s
    self._console = None
    self._live = None
    self._last_plain: float | None = None
    self._pending_newline = False
    mode = output
    if mode in ("auto", "rich"):
      try:
        from rich.console import Console
      except ImportError:
        if mode == "rich":
          raise ImportError("Monitor(output='rich') needs rich: pip install rich") from None
        mode = "plain"
      else:
        self._console = Console(file=self.stream)
        if mode == "auto" and not self._console.is_terminal:
          mode = "plain"
    self.mode = mode
    self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

  def update(self, line: str, now: float, *, final: bool = False) -> None:
    if self.mode == "none":
      return
    if self.mode == "rich":
      from rich.live import Live
      from rich.text import Text

      if self._live is None:
        self._live = Live(Text(line), console=self._console, auto_refresh=False, transient=False)
        self._live.start()
      self._live.update(Text(line), refresh=True)
      if final:
        self._live.stop()
        self._live = None
      return
    if self._tty:  # one line rewritten in place
      self.stream.write("\r" + line + "\x1b[K")
      self._pending_newline = True
      if final:
        self.stream.write("\n")
        self._pending_newline = False
      self.stream.flush()
      return
    # a log file: a new line at most every refresh_s, and the last one
    if final or self._last_plain is None or now - self._last_plain >= self.refresh_s:
      self.stream.write(line + "\n")
      self.stream.flush()
      self._last_plain = now

  def summary(self, title: str, rows: list[tuple[str, str]]) -> None:
    if self.mode == "none":
      return
    if self.mode == "rich" and self._console is not None:
      from rich.table import Table

      table = Table(title=title, show_header=False)
      table.add_column("what")
      table.add_column("value", justify="right")
      for k, v in rows:
        table.add_row(k, v)
      self._console.print(table)
      return
    width = max(len(k) for k, _ in rows)
    self.stream.write(title + "\n" + "".join(f"  {k:<{width}}  {v}\n" for k, v in rows))
    self.stream.flush()

  def stop(self) -> None:
    if self._live is not None:
      self._live.stop()
      self._live = None

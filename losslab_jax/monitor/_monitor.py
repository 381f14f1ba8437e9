"""``Monitor``: step time, throughput, compile time, memory and logged values of a JAX training loop,
without a device sync per step."""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import jax
import numpy as np

from losslab_jax.monitor._display import Display, progress_line, summary_lines


def host_peak_rss_bytes() -> int | None:
  """Peak resident set size of this process in bytes (``resource.getrusage``), or None where the
  platform has no ``resource`` module."""
  try:
    import resource
  except ImportError:  # pragma: no cover - Windows
    return None
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # macOS reports bytes, Linux KiB


def device_peak_bytes(devices: Sequence[Any]) -> int | None:
  """The largest ``peak_bytes_in_use`` of ``devices`` (``device.memory_stats()``), or None when no
  device reports it (the CPU backend reports nothing)."""
  peaks = []
  for d in devices:
    try:
      stats = d.memory_stats()
    except Exception:  # noqa: BLE001 - a backend without memory stats may raise instead of returning None
      stats = None
    if stats and "peak_bytes_in_use" in stats:
      peaks.append(int(stats["peak_bytes_in_use"]))
  return max(peaks) if peaks else None


def _check_scalar(name: str, value: Any) -> None:
  if isinstance(value, (bool, str, bytes)) or not (isinstance(value, numbers.Real) or hasattr(value, "shape")):
    raise TypeError(f"Monitor.step: expected `{name}` to be a number or a scalar array, got {type(value).__name__}")
  shape = tuple(getattr(value, "shape", ()))
  if shape != ():
    raise ValueError(f"Monitor.step: expected `{name}` to be a scalar, got shape {shape}; log a"
                     " reduction of it (e.g. its mean or norm) computed inside the step")


def _fetch(pending: list[dict[str, Any]]) -> list[dict[str, float]]:
  """The logged values as Python floats. Off the CPU, every device-to-host copy is started before
  the first is waited for (``jax.device_get`` does the same but costs ~10 us per scalar in tree
  handling; ``np.asarray`` per scalar costs ~1 us on the CPU backend, measured)."""
  arrays = [v for values in pending for v in values.values() if isinstance(v, jax.Array)]
  if arrays and any(d.platform != "cpu" for d in arrays[-1].devices()):
    for a in arrays:
      a.copy_to_host_async()
  return [{k: float(np.asarray(v)) for k, v in values.items()} for values in pending]


class Monitor:
  r"""Times a training loop and records what it logs, without forcing a device sync every step.

  JAX dispatches a jitted step asynchronously: the call returns before the device has run it, so
  timing each call measures dispatch, and reading each step's loss (``float(loss)``) makes the
  host wait for the device every step. The monitor instead keeps each step's values as device
  arrays and blocks only once every ``sync_every`` steps, on the newest step's output (the device
  runs steps in order, so that one wait covers the whole window). The window's wall time is then
  shared equally among its steps:

  .. math::
     t_i = \frac{T_w - T_{w-1}}{n_w} \quad (i \in w), \qquad
     \text{throughput} = \frac{b}{t_i}, \qquad
     t_{\text{compile}} \approx t_0 - \operatorname{median}_w t_w

  where :math:`T_w` is the time at the end of window :math:`w`'s sync, :math:`n_w` its number of
  steps and :math:`b` = ``items_per_step``. The first step is its own window (it is blocked on at
  once), so :math:`t_0` is the first step's time, compilation included, and the compile time is
  estimated as :math:`t_0` minus the median step time of the later windows. Only at a sync are the
  logged values copied to the host, the device memory peak read (``device.memory_stats()``, where
  the backend reports it) and the host's peak RSS (``resource.getrusage``) taken, and the progress
  line redrawn.

  Args:
    total_steps: the planned number of steps, for the progress line's ``/total`` and ETA.
    items_per_step: examples (or tokens) per step, for the throughput.
    sync_every: steps per window: the monitor blocks once per window (the cost of a sync is a
      pipeline drain of about one dispatch, so larger is cheaper and coarser).
    output: ``"auto"`` (rich's live line on a terminal, else plain text), ``"rich"``, ``"plain"``
      or ``"none"`` (no output at all; everything is still recorded).
    stream: where the output goes (default ``sys.stderr``).
    refresh_s: in plain output to a non-terminal (a log file), the least time between two lines.
    name: the label of the progress line and the summary.
    memory: read the device and host memory at each sync.
    devices: the devices whose ``memory_stats()`` are read (default: ``jax.local_devices()``).
    clock: a function returning seconds (default ``time.perf_counter``); tests pass a fake clock.
    block: the function that waits for the device (default ``jax.block_until_ready``); tests pass a
      counting one.

  Raises:
    ValueError: ``sync_every`` is not a positive integer, or an unknown ``output``.

  Notes:
    Torch twin: none in ``torch`` itself; it covers what a torch script gets from timing
    ``torch.cuda.synchronize()``-bracketed steps, ``torch.cuda.max_memory_allocated()`` and a
    tqdm/rich progress bar, without the per-step synchronization. Cost on a jitted 5 ms step:
    ``python -m parity bench monitor``.

  Examples:
    >>> import itertools, io
    >>> ticks = itertools.count(0.0, 0.5)           # a fake clock: 0.5 s per reading
    >>> mon = Monitor(sync_every=2, output="none", memory=False, clock=lambda: next(ticks))
    >>> for loss in (4.0, 3.0, 2.0, 1.0, 0.5):
    ...   mon.step(loss=loss)
    >>> s = mon.close()
    >>> s["steps"], s["first_step_s"], s["values"]["loss"]["last"], s["syncs"]
    (5, 0.5, 0.5, 3)
    >>> [r["time_s"] for r in mon.records]  # clock read at start and at each sync: 0.5 s per window
    [0.5, 0.25, 0.25, 0.25, 0.25]
  """

  def __init__(self, total_steps: int | None = None, *, items_per_step: float | None = None, sync_every: int = 50,
               output: str = "auto", stream: TextIO | None = None, refresh_s: float = 10.0, name: str = "train",
               memory: bool = True, devices: Sequence[Any] | None = None,
               clock: Callable[[], float] = time.perf_counter,
               block: Callable[[Any], Any] = jax.block_until_ready) -> None:
    if isinstance(sync_every, bool) or not isinstance(sync_every, (numbers.Integral, np.integer)) or sync_every < 1:
      raise ValueError(f"Monitor: expected `sync_every` to be a positive integer, got {sync_every!r}")
    if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral)
                                    or total_steps < 0):
      raise ValueError(f"Monitor: expected `total_steps` to be a non-negative integer or None, got {total_steps!r}")
    self.total_steps = total_steps
    self.items_per_step = None if items_per_step is None else float(items_per_step)
    self.sync_every = int(sync_every)
    self.name = name
    self.memory = memory
    self.devices = list(devices) if devices is not None else (jax.local_devices() if memory else [])
    self._clock, self._block = clock, block
    self._display = Display(output, stream, refresh_s)
    self.records: list[dict[str, Any]] = []
    """One dict per step: ``step``, ``time_s`` (its window's mean), ``window``, and the logged values."""
    self.syncs = 0
    """How many times the monitor has waited for the device."""
    self._closed = False
    self._summary: dict[str, Any] | None = None
    self.start()

  # --- recording ----------------------------------------------------------------------------------

  def start(self) -> "Monitor":
    """(Re)start the clock: call it right before the loop if the monitor was built earlier."""
    self._pending: list[tuple[int, dict[str, Any]]] = []
    self._sync_on: Any = None  # only the newest step's: older train states must not be kept alive
    self._count = 0
    self._windows: list[tuple[int, float]] = []  # (steps, seconds) per window
    self._t_start = self._clock()
    self._t_mark = self._t_start
    self._peak_device: int | None = None
    self._peak_rss: int | None = None
    self.records.clear()
    self.syncs = 0
    self._closed = False
    self._summary = None
    return self

  def step(self, sync_on: Any = None, /, **values: Any) -> None:
    """Record one finished step (call it after dispatching the step, with the step's outputs).

    Args:
      sync_on: what to wait for at a sync (any pytree of arrays, e.g. the new train state); default:
        the logged ``values``. With neither, the times measure dispatch only. Only the newest step's
        is held (a train state passed here is not kept alive past the next step).
      **values: scalars to log, as device arrays (``loss=loss, lr=lr, grad_norm=gnorm``): they are
        copied to the host only at the next sync.

    Raises:
      ValueError: a value is not a scalar.
      TypeError: a value is not a number or an array.
      RuntimeError: the monitor is closed.
    """
    if self._closed:
      raise RuntimeError("Monitor.step: the monitor is closed; call start() to reuse it")
    for key, value in values.items():
      _check_scalar(key, value)
    self._pending.append((self._count, values))
    self._sync_on = sync_on
    self._count += 1
    if self._count == 1 or len(self._pending) >= self.sync_every:
      self._sync()

  def _sync(self, *, final: bool = False) -> None:
    if not self._pending:
      if final:
        self._draw(final=True)
      return
    target = self._sync_on if self._sync_on is not None else self._pending[-1][1]
    self._sync_on = None
    if target is not None and (not isinstance(target, dict) or target):
      self._block(target)
    self.syncs += 1
    now = self._clock()
    n = len(self._pending)
    dt = now - self._t_mark
    self._t_mark = now
    window = len(self._windows)
    self._windows.append((n, dt))
    host = _fetch([values for _, values in self._pending])
    for (i, _), values in zip(self._pending, host, strict=True):
      self.records.append({"step": i, "time_s": dt / n, "window": window, **values})
    self._pending = []
    if self.memory:
      dev, rss = device_peak_bytes(self.devices), host_peak_rss_bytes()
      self._peak_device = dev if self._peak_device is None or dev is None else max(dev, self._peak_device)
      self._peak_rss = rss if self._peak_rss is None or rss is None else max(rss, self._peak_rss)
    self._draw(final=final)

  def _draw(self, *, final: bool) -> None:
    if self._display.mode == "none":
      return
    self._display.update(progress_line(self.status()), self._t_mark, final=final)

  # --- results ------------------------------------------------------------------------------------

  def _steady(self) -> list[tuple[int, float]]:
    return self._windows[1:]

  def status(self) -> dict[str, Any]:
    """What the progress line shows, as of the last sync."""
    steady = self._steady()
    step_time = (sum(dt for _, dt in steady) / sum(n for n, _ in steady)) if steady else None
    done = len(self.records)
    last = self.records[-1] if self.records else {}
    eta = None
    if self.total_steps and step_time is not None:
      eta = max(self.total_steps - done, 0) * step_time
    return {
        "name": self.name, "steps": done, "total_steps": self.total_steps,
        "first_step_s": self._windows[0][1] if self._windows else None,
        "step_time_s": step_time, "steps_per_s": None if not step_time else 1.0 / step_time,
        "items_per_s": None if not step_time or self.items_per_step is None else self.items_per_step / step_time,
        "values": {k: v for k, v in last.items() if k not in ("step", "time_s", "window")},
        "peak_device_bytes": self._peak_device, "host_rss_bytes": self._peak_rss, "eta_s": eta,
    }

  def close(self) -> dict[str, Any]:
    """Sync the last window, draw the final line and the summary; returns :meth:`summary`."""
    if self._closed:
      return self.summary()
    self._sync(final=True)
    self._t_end = self._clock()
    self._closed = True
    self._display.stop()
    summary = self.summary()
    self._display.summary(f"{self.name}: summary", summary_lines(summary))
    return summary

  def summary(self) -> dict[str, Any]:
    """Totals over the steps synced so far (JSON-serialisable).

    Keys: ``steps``, ``total_s`` (wall time from :meth:`start` to :meth:`close`, or to the last
    sync), ``first_step_s``, ``compile_s`` (``first_step_s`` minus ``step_time_s``, at least 0;
    None before a second window), ``step_time_s`` (median of the later windows' per-step times),
    ``step_time_mean_s``, ``steps_per_s`` and ``items_per_s`` (from ``step_time_mean_s``),
    ``peak_device_bytes``, ``peak_host_rss_bytes``, ``syncs``, ``sync_every``, ``values``
    (``last``/``min``/``max``/``mean`` of each logged value over its finite entries, NaN if none),
    ``first_nonfinite_step``.
    """
    if self._summary is not None:
      return self._summary
    steady = self._steady()
    first = self._windows[0][1] if self._windows else None
    median = statistics.median(dt / n for n, dt in steady) if steady else None
    mean = sum(dt for _, dt in steady) / sum(n for n, _ in steady) if steady else None
    values: dict[str, dict[str, float]] = {}
    first_bad = None
    keys = [k for r in self.records for k in r if k not in ("step", "time_s", "window")]
    for key in dict.fromkeys(keys):
      column = [(r["step"], r[key]) for r in self.records if key in r]
      finite = [v for _, v in column if math.isfinite(v)]
      bad = [s for s, v in column if not math.isfinite(v)]
      if bad:
        first_bad = bad[0] if first_bad is None else min(first_bad, bad[0])
      values[key] = {"last": column[-1][1],
                     "min": min(finite) if finite else math.nan, "max": max(finite) if finite else math.nan,
                     "mean": sum(finite) / len(finite) if finite else math.nan}
    end = getattr(self, "_t_end", None) if self._closed else None
    summary = {
        "name": self.name, "steps": len(self.records),
        "total_s": (end if end is not None else self._t_mark) - self._t_start,
        "first_step_s": first, "compile_s": None if first is None or median is None else max(first - median, 0.0),
        "step_time_s": median, "step_time_mean_s": mean,
        "steps_per_s": None if not mean else 1.0 / mean,
        "items_per_s": None if not mean or self.items_per_step is None else self.items_per_step / mean,
        "items_per_step": self.items_per_step,
        "peak_device_bytes": self._peak_device, "peak_host_rss_bytes": self._peak_rss,
        "syncs": self.syncs, "sync_every": self.sync_every, "values": values, "first_nonfinite_step": first_bad,
    }
    if self._closed:
      self._summary = summary
    return summary

  # --- context manager ----------------------------------------------------------------------------

  def __enter__(self) -> "Monitor":
    return self.start()

  def __exit__(self, *exc: Any) -> None:
    if exc[0] is not None:
      self._display.stop()
      self._closed = True
      return
    self.close()

  # --- export -------------------------------------------------------------------------------------

  def to_json(self, path: str | os.PathLike) -> None:
    """Write ``{"summary": ..., "steps": records}`` as JSON (non-finite floats as ``NaN``/``Infinity``,
    which Python's ``json`` reads back)."""
    with open(path, "w") as f:
      json.dump({"summary": self.summary(), "steps": self.records}, f, indent=1)

  def to_csv(self, path: str | os.PathLike) -> None:
    """Write the per-step records as CSV: ``step, time_s, window`` and one column per logged value
    (empty where a step did not log it). Floats are written with ``repr`` (they read back exactly)."""
    fields = list(dict.fromkeys(k for r in self.records for k in r)) or ["step", "time_s", "window"]
    with open(path, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=fields, restval="")
      writer.writeheader()
      for r in self.records:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})

  def plot(self, path: str | os.PathLike | None = None, keys: Sequence[str] | None = None) -> Any:
    """A figure: time per step (ms) and each logged value (``keys``, default all) against the step.

    Needs matplotlib (the ``plot`` extra). Saved to ``path`` when given; returns the figure.
    """
    return plot_records(self.records, path=path, keys=keys, title=self.name)


def load_json(path: str | os.PathLike) -> dict[str, Any]:
  """Read a :meth:`Monitor.to_json` file: ``{"summary": dict, "steps": list of dicts}``."""
  with open(path) as f:
    return json.load(f)


def load_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
  """Read a :meth:`Monitor.to_csv` file back into records (``step``/``window`` as int, others float,
  missing values dropped)."""
  out = []
  with open(path, newline="") as f:
    for row in csv.DictReader(f):
      out.append({k: (int(v) if k in ("step", "window") else float(v)) for k, v in row.items() if v != ""})
  return out


def plot_records(records: Sequence[Mapping[str, Any]], *, path: str | os.PathLike | None = None,
                 keys: Sequence[str] | None = None, title: str = "train") -> Any:
  """The figure of :meth:`Monitor.plot` from records (e.g. :func:`load_csv`'s)."""
  try:
    import matplotlib

    if path is not None:
      matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
  except ImportError as exc:  # pragma: no cover - plot extra
    raise ImportError("Monitor.plot needs matplotlib: pip install 'losslab_jax[plot]'") from exc
  names = list(keys) if keys is not None else list(
      dict.fromkeys(k for r in records for k in r if k not in ("step", "time_s", "window")))
  fig, axes = plt.subplots(1 + len(names), 1, figsize=(7, 2.2 * (1 + len(names))), sharex=True, squeeze=False)
  steps = [r["step"] for r in records]
  axes[0, 0].plot(steps, [1e3 * r["time_s"] for r in records], drawstyle="steps-mid")
  axes[0, 0].set_ylabel("ms / step")
  axes[0, 0].set_yscale("log")
  axes[0, 0].set_title(f"{title}: time per step (window means; step 0 includes compilation)")
  for ax, key in zip(axes[1:, 0], names, strict=True):
    pts = [(r["step"], r[key]) for r in records if key in r]
    ax.plot([s for s, _ in pts], [v for _, v in pts])
    ax.set_ylabel(key)
  axes[-1, 0].set_xlabel("step")
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=100)
  return fig

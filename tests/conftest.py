"""Test-wide settings, and the gate that stops skips from quietly weakening the suite.

JAX: float64 on (every test array states its dtype), rank promotion raises.

Skips: a skipped test or module (a failed ``pytest.importorskip``, a ``pytest.skip``) whose reason
matches none of :data:`EXPECTED_SKIPS` is *unexpected*. Unexpected skips are listed in a section of
the terminal summary and turn a green run into a failed one (exit status 1), so a dependency that
stops importing, or a leftover "not available yet" skip, cannot pass for a pass. Set
``LOSSLAB_ALLOW_SKIPS=1`` to run without the optional extras on purpose (the skips are still
listed). A new expected skip needs an entry below, with why it is not a gap.
"""

from __future__ import annotations

import os
import re

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

EXPECTED_SKIPS: dict[str, str] = {
    # pattern (re.search on the skip reason): why this skip is not a gap in the suite
    r"^per-example call not meaningful for this loss$":
        "test_properties: a property grid cell that does not apply to the loss (a pairwise/set loss)",
    r"^no elementwise form$":
        "test_properties: reduction='none' checks for losses without an elementwise output",
    r"^loss documented as float32/float64 only$":
        "test_properties: the bf16 cell of a loss documented as float32/float64 only",
    r"^only the CPU backend is known to report no memory_stats$":
        "test_monitor: the no-memory-stats path exists on CPU only; on an accelerator it cannot run",
}

_UNEXPECTED: list[tuple[str, str]] = []


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
  longrepr = report.longrepr
  reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
  return reason.removeprefix("Skipped: ")


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
  if not report.skipped or hasattr(report, "wasxfail"):
    return
  reason = _skip_reason(report)
  if not any(re.search(pattern, reason) for pattern in EXPECTED_SKIPS):
    _UNEXPECTED.append((report.nodeid, reason))


def pytest_collectreport(report: pytest.CollectReport) -> None:
  """A whole module skipped at import (module-level ``importorskip``) is a skip like any other."""
  _record_skip(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
  _record_skip(report)


def _skips_allowed() -> bool:
  return os.environ.get("LOSSLAB_ALLOW_SKIPS", "").strip() not in ("", "0")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
  if _UNEXPECTED and not _skips_allowed() and session.exitstatus == pytest.ExitCode.OK:
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
  if not _UNEXPECTED:
    return
  allowed = _skips_allowed()
  terminalreporter.section(f"{len(_UNEXPECTED)} unexpected skip(s)", sep="=", red=not allowed, yellow=allowed)
  for nodeid, reason in _UNEXPECTED:
    terminalreporter.line(f"{nodeid or '(collection)'}: {reason}")
  if allowed:
    terminalreporter.line("LOSSLAB_ALLOW_SKIPS is set: these skips do not fail the run")
  else:
    terminalreporter.line("an unexpected skip fails the run: install the extras (pip install -e '.[parity,dev]'),"
                          " add the reason to EXPECTED_SKIPS in tests/conftest.py with why it is no gap, or set"
                          " LOSSLAB_ALLOW_SKIPS=1 to run without them on purpose")

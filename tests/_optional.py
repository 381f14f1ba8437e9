"""An optional dependency imported on first use, inside the test that uses it.

``torch = optional_import("torch")`` at module level replaces ``torch = pytest.importorskip("torch")``,
which skips the *whole file* when torch fails to import, tests that never touch torch included.
The proxy imports the module the first time an attribute is read: inside a test that needs torch,
a missing torch skips that test only (and tests/conftest.py's gate reports the skip); a test that
never reads ``torch.<anything>`` runs without it. Reading an attribute at module level (a
``parametrize`` list of torch classes) still imports at collection, as before.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest


class _Optional:
  """Stands for module ``name``; ``pytest.importorskip(name)`` on the first attribute read."""

  def __init__(self, name: str):
    self._name = name
    self._module: ModuleType | None = None

  def _load(self) -> ModuleType:
    if self._module is None:
      self._module = pytest.importorskip(self._name)
    return self._module

  def __getattr__(self, attr: str) -> Any:
    if attr.startswith("__") and attr.endswith("__"):
      raise AttributeError(attr)   # copy/pickle/inspect probes must not import
    return getattr(self._load(), attr)

  def __repr__(self) -> str:
    state = "imported" if self._module is not None else "not imported yet"
    return f"<optional module {self._name!r} ({state})>"


def optional_import(name: str) -> Any:
  """A stand-in for module ``name`` that imports it (or skips the running test) on first use."""
  return _Optional(name)

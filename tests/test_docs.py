"""The documentation gates CI runs: the API reference builds with no warnings, every docstring
example runs as a doctest with JAX's default precision (x64 off, as a user has it), and pyright
(standard mode) reports no errors on the library.

Each runs in a subprocess: the test session itself has x64 on (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
  env.update(extra)
  return env


def _run(cmd: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
  return subprocess.run(cmd, cwd=ROOT, env=_env(**extra), capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_api_reference_builds_without_warnings(tmp_path):
  out = _run([sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
              "docs", str(tmp_path / "html")])
  assert out.returncode == 0, f"sphinx-build -W failed:\n{out.stdout[-4000:]}\n{out.stderr[-8000:]}"
  page = (tmp_path / "html" / "api" / "losses.html").read_text()
  assert "cross_entropy" in page and "linear_cross_entropy" in page


@pytest.mark.slow
def test_docstring_examples_run_with_x64_off():
  code = ("import jax, sys, pytest; assert not jax.config.jax_enable_x64, 'x64 must be off';"
          "sys.exit(pytest.main(['--doctest-modules', 'losslab_jax', '-q', '-p', 'no:cacheprovider']))")
  out = _run([sys.executable, "-c", code], JAX_ENABLE_X64="0")
  tail = out.stdout[-6000:]
  assert out.returncode == 0, f"doctests failed:\n{tail}\n{out.stderr[-2000:]}"
  assert " passed" in tail and " failed" not in tail, tail


@pytest.mark.slow
def test_pyright_reports_no_errors():
  exe = shutil.which("pyright", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("pyright")
  assert exe is not None, "pyright is not installed: it comes with the dev extra"
  out = _run([exe, "--outputjson"])
  report = json.loads(out.stdout)
  errors = [f"{d['file'].split('losslab_jax/', 1)[-1]}:{d['range']['start']['line'] + 1}: {d['message']}"
            for d in report["generalDiagnostics"] if d["severity"] == "error"]
  assert report["summary"]["filesAnalyzed"] > 40
  assert not errors, f"{len(errors)} pyright errors:\n" + "\n".join(errors[:50])

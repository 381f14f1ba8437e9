"""The skip gate of tests/conftest.py: an unexpected skip fails the run; expected ones do not.

Each case runs pytest in a subprocess on a throwaway test directory whose conftest imports the
gate's hooks from tests/conftest.py.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

PASSING = "def test_ok():\n  assert 1 + 1 == 2\n"
UNEXPECTED = "import pytest\n\ndef test_later():\n  pytest.skip('not available yet')\n"
MODULE_SKIP = "import pytest\n\npytest.importorskip('no_such_module_losslab_gate')\n\ndef test_x():\n  pass\n"
EXPECTED = "import pytest\n\ndef test_cell():\n  pytest.skip('no elementwise form')\n"


def _run(tmp_path: pathlib.Path, files: dict[str, str], allow: bool = False) -> subprocess.CompletedProcess:
  (tmp_path / "pytest.ini").write_text("[pytest]\n")
  (tmp_path / "conftest.py").write_text(
      # a stand-in for jax (tests/conftest.py only sets two flags on it) keeps each run ~1 s
      "import sys, types\n"
      "sys.modules['jax'] = types.SimpleNamespace(config=types.SimpleNamespace(update=lambda *a: None))\n"
      "from tests.conftest import (pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish,\n"
      "                            pytest_terminal_summary)\n")
  for name, text in files.items():
    (tmp_path / name).write_text(text)
  env = {k: v for k, v in os.environ.items() if k != "LOSSLAB_ALLOW_SKIPS"}
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_PLATFORMS"] = "cpu"
  if allow:
    env["LOSSLAB_ALLOW_SKIPS"] = "1"
  return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


FILES = {"test_a.py": PASSING + "\n" + UNEXPECTED, "test_b.py": MODULE_SKIP, "test_c.py": EXPECTED}


def test_unexpected_skips_fail_the_run_and_are_listed(tmp_path):
  res = _run(tmp_path, FILES)
  out = res.stdout + res.stderr
  assert res.returncode == 1, out
  assert "2 unexpected skip(s)" in out, out
  assert "test_a.py::test_later: not available yet" in out, out
  assert "could not import 'no_such_module_losslab_gate'" in out, out
  assert "no elementwise form" not in out.split("unexpected skip(s)")[1], out   # the expected one is not listed


def test_allow_skips_lists_them_without_failing(tmp_path):
  res = _run(tmp_path, FILES, allow=True)
  out = res.stdout + res.stderr
  assert res.returncode == 0, out
  assert "2 unexpected skip(s)" in out and "LOSSLAB_ALLOW_SKIPS is set" in out, out


@pytest.mark.parametrize("files,code", [
    pytest.param({"test_c.py": EXPECTED, "test_ok.py": PASSING}, 0, id="expected-skip-only"),
])
def test_exit_status(tmp_path, files, code):
  res = _run(tmp_path, files)
  assert res.returncode == code, res.stdout + res.stderr


def test_optional_import_skips_only_where_it_is_used():
  from tests._optional import optional_import

  missing = optional_import("no_such_module_losslab_gate")
  assert "not imported yet" in repr(missing)          # creating and printing it imports nothing
  with pytest.raises(pytest.skip.Exception, match="could not import 'no_such_module_losslab_gate'"):
    missing.anything                                  # noqa: B018 - first use inside a test: skip it
  present = optional_import("json")
  assert present.dumps([1]) == "[1]" and "imported" in repr(present)

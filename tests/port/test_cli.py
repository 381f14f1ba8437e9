"""``python -m parity compare MODULE:FACTORY``: the factory contract, exit codes and report files."""

import json

import pytest

from parity.__main__ import main


@pytest.fixture
def torch():
  return pytest.importorskip("torch")


def test_passing_factory_exits_0_per_dtype(torch, capsys):
  assert main(["compare", "tests.port.factories:forward_ok", "--dtype", "float32", "--dtype", "float64"]) == 0
  out = capsys.readouterr().out
  assert "mlp forward (float32)" in out and "mlp forward (float64)" in out and "2 comparisons, 0 failed" in out


def test_failing_training_comparison_exits_1_and_writes_reports(torch, tmp_path, capsys):
  js, md = tmp_path / "r.json", tmp_path / "r.md"
  assert main(["compare", "tests.port.factories:both", "--json", str(js), "--markdown", str(md)]) == 1
  out = capsys.readouterr().out
  assert "FIRST DIVERGENCE: step 0, fc1.weight: update differs" in out and "1 failed" in out
  data = json.loads(js.read_text())
  assert data["mlp forward"]["passed"] is True
  assert data["mlp training"]["first_divergence"]["quantity"] == "update"
  assert "# mlp training" in md.read_text()


def test_factory_given_as_a_file_path(torch, tmp_path):
  f = tmp_path / "my_port.py"
  f.write_text("from tests.port.factories import forward_ok as make\n")
  assert main(["compare", f"{f}:make"]) == 0


@pytest.mark.parametrize("spec", ["tests.port.factories:missing", "tests.port.factories", "no_such_module_xyz:f",
                                  "tests.port.factories:not_a_comparison"])
def test_bad_factories_exit_2(torch, spec, capsys):
  assert main(["compare", spec]) == 2
  assert "parity compare" in capsys.readouterr().out


def test_dtype_needs_a_factory_that_takes_it(torch, capsys):
  assert main(["compare", "tests.port.factories:both", "--dtype", "float32"]) == 2

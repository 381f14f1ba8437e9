"""Every script in examples/ runs in its fast mode (``--fast``), as a user would run it.

Each runs in a subprocess (its own JAX configuration: no x64, no rank-promotion errors), with
plots sent to a temporary directory. The expected output files and a line of each report are
checked, so an example that silently stops producing its result fails here.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# files each example must write, and a phrase its report must print
EXPECTED = {
    "imbalanced_classification": ((), "minority recall"),
    "landscape_and_lr_range": (("lr_range_test.png", "landscape_1d.png", "landscape_2d.png"), "suggested lr"),
    "monitor_training": (("monitor.json", "monitor.csv", "monitor.png"), "time per step afterwards"),
    "optimizer_comparison": (("optimizer_comparison.png",), "final train loss"),
    "port_cnn_checkpoint": ((), "port_cnn_checkpoint: PASSED"),
    "port_epoch_schedule": ((), "port_epoch_schedule: PASSED"),
    "port_finetune": ((), "port_finetune: PASSED"),
    "port_from_pytorch": ((), "The two loops agree"),
    "regression_outliers": (("regression_outliers.png",), "clean RMSE"),
    "schemes_and_config": ((), "did not move (frozen)"),
}


def test_every_example_is_covered():
  assert {p.stem for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_fast_mode(path, tmp_path):
  if path.stem.startswith("port_"):
    pytest.importorskip("torch")
  if EXPECTED[path.stem][0]:
    pytest.importorskip("matplotlib")
  env = dict(os.environ, LOSSLAB_EXAMPLES_OUT=str(tmp_path / "from-env"), JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  args = [sys.executable, str(path), "--fast"]
  if path.stem in ("regression_outliers", "optimizer_comparison", "landscape_and_lr_range", "monitor_training"):
    args += ["--out", str(tmp_path)]
  proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  files, phrase = EXPECTED[path.stem]
  assert phrase in proc.stdout, proc.stdout[-3000:]
  for name in files:
    assert (tmp_path / name).is_file(), f"{path.name} did not write {name}"
  assert not (tmp_path / "from-env").exists()  # --out wins over the environment variable
  assert not (tmp_path / "example-output").exists()  # and over the default


@pytest.mark.slow
def test_plots_go_to_the_environment_directory_without_out(tmp_path):
  pytest.importorskip("matplotlib")
  env = dict(os.environ, LOSSLAB_EXAMPLES_OUT=str(tmp_path / "plots"), JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  proc = subprocess.run([sys.executable, str(ROOT / "examples" / "regression_outliers.py"), "--fast"], cwd=tmp_path,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (tmp_path / "plots" / "regression_outliers.png").is_file()

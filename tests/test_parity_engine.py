"""The comparator must be able to fail: wrong values, wrong gradients and wrong dtypes are caught."""

import jax.numpy as jnp
import numpy as np
import pytest

from parity._case import Config, FunctionCase, TrajectoryCase
from parity._compare import array_error, run_config


@pytest.fixture
def torch():
  """The function cases compare against torch; the array and trajectory checks need no torch."""
  return pytest.importorskip("torch")


def _inputs(rng, dtype):
  return (rng.standard_normal((4, 3)).astype(dtype),)


def _case(jax_fn):
  return FunctionCase("t", "test", jax_fn, lambda x: (x ** 2).sum(), _inputs, [Config("a")])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_function_passes(torch, dtype):
  assert run_config(_case(lambda x: jnp.sum(x ** 2)), Config("a"), dtype).passed


def test_wrong_value_fails(torch):
  res = run_config(_case(lambda x: jnp.sum(x ** 2) * (1 + 1e-8)), Config("a"), "float64")
  assert not res.passed and res.value.rel > 1e-9


def test_wrong_gradient_fails(torch):
  # value right, gradient wrong: custom rule scales the gradient
  import jax

  @jax.custom_vjp
  def f(x):
    return jnp.sum(x ** 2)

  f.defvjp(lambda x: (f(x), x), lambda x, g: (2.001 * x * g,))
  res = run_config(_case(f), Config("a"), "float64")
  assert not res.passed and res.value.rel < 1e-14 and res.grad.rel > 1e-4


def test_functions_run_jitted_with_every_array_an_argument(torch):
  # as a training step runs them; a closed-over array would be a constant XLA folds at compile time
  import jax

  seen = []

  def f(x, w):
    seen.append((isinstance(x, jax.core.Tracer), isinstance(w, jax.core.Tracer)))
    return jnp.sum(x ** 2 * w)

  case = FunctionCase("t", "test", f, lambda x, w: (x ** 2 * w).sum(),
                      lambda rng, dtype: (*_inputs(rng, dtype), np.ones((4, 3), dtype)), [Config("a")])
  res = run_config(case, Config("a"), "float64")
  assert res.passed, res.message
  assert seen and all(seen_x and seen_w for seen_x, seen_w in seen), seen


def _near_zero(rng, dtype):
  return (np.full((3,), 1.0, dtype),)


@pytest.mark.parametrize("floor, off, passes", [(0.0, 1e-7, False), (1.0, 1e-7, True), (1.0, 1e-4, False)])
def test_value_floor_judges_small_values_against_the_cancelling_scale(torch, floor, off, passes):
  # torch gives 1 - x = 0 exactly; ours is off by `off` (one float32 ulp of 1 is 1.2e-7)
  case = FunctionCase("t", "test", lambda x: 1 - x + off, lambda x: 1 - x, _near_zero, [Config("a")],
                      grad_argnums=(), value_floor=floor, tolerance_reason="test" if floor else "")
  res = run_config(case, Config("a"), "float32")
  assert res.passed is passes, res


def test_a_value_floor_needs_a_reason():
  from parity._case import register

  case = FunctionCase("floor-without-reason", "test", lambda x: x, lambda x: x, _near_zero, [Config("a")],
                      value_floor=1.0)
  with pytest.raises(ValueError, match="loosens a tolerance without a reason"):
    register(case)


def test_dtype_mismatch_fails(torch):
  res = run_config(_case(lambda x: jnp.sum(x ** 2).astype(jnp.float32)), Config("a"), "float64")
  assert not res.passed and "dtype" in res.message


def test_gradient_dtype_mismatch_fails(torch):
  # value and its dtype right, gradient values right but returned in float32 for a float64 input
  import jax

  @jax.custom_vjp
  def f(x):
    return jnp.sum(x ** 2)

  f.defvjp(lambda x: (f(x), x), lambda x, g: ((2 * x * g).astype(jnp.float32),))
  res = run_config(_case(f), Config("a"), "float64")
  assert not res.passed and res.value.rel < 1e-14
  assert res.message == "gradient dtype mismatch for input 0: losslab_jax float32 vs torch float64"


def test_trajectory_dtype_mismatch_fails():
  traj = [{"w": np.full(3, float(k))} for k in range(4)]
  bad = [dict(t) for t in traj]
  bad[2] = {"w": traj[2]["w"].astype(np.float32)}   # exact values, wrong dtype at step 2
  case = TrajectoryCase("tt", "test", lambda seed, dtype: bad, lambda seed, dtype: traj, [Config("a")])
  res = run_config(case, Config("a"), "float64")
  assert not res.passed and res.message == "dtype mismatch at step 2, leaf 0: losslab_jax float32, expected float64"
  good = TrajectoryCase("tt", "test", lambda seed, dtype: traj, lambda seed, dtype: traj, [Config("a")])
  assert run_config(good, Config("a"), "float64").passed
  # a float32 run against torch's Python-float (float64) values: float32 or float64, nothing else
  for ok in (np.float32, np.float64):
    mine = [{"w": t["w"].astype(ok)} for t in traj]
    assert run_config(TrajectoryCase("tt", "test", lambda seed, dtype: mine, lambda seed, dtype: traj, [Config("a")]),
                      Config("a"), "float32").passed
  f16 = [{"w": t["w"].astype(np.float16)} for t in traj]
  res = run_config(TrajectoryCase("tt", "test", lambda seed, dtype: f16, lambda seed, dtype: traj, [Config("a")]),
                   Config("a"), "float32")
  assert not res.passed
  assert res.message == ("dtype mismatch at step 0, leaf 0: losslab_jax float16, expected float32 or float64, torch"
                         " float64: a Python float in a float32 run")
  # torch float32 in a float32 run: a float64 losslab_jax leaf fails
  t32 = [{"w": t["w"].astype(np.float32)} for t in traj]
  res = run_config(TrajectoryCase("tt", "test", lambda seed, dtype: traj, lambda seed, dtype: t32, [Config("a")]),
                   Config("a"), "float32")
  assert not res.passed and res.message == "dtype mismatch at step 0, leaf 0: losslab_jax float64, expected float32"


def test_exception_becomes_failure(torch):
  def boom(x):
    raise RuntimeError("boom")

  res = run_config(_case(boom), Config("a"), "float32")
  assert not res.passed and "boom" in res.message


def test_nan_matches_nan_only():
  assert array_error([np.nan, 1.0], [np.nan, 1.0]).rel == 0
  assert array_error([np.nan, 1.0], [0.0, 1.0]).rel == np.inf
  assert array_error([np.inf], [-np.inf]).rel == np.inf


def test_trajectory_detects_a_late_divergence():
  traj = [{"w": np.full(3, float(k))} for k in range(10)]
  bad = [dict(t) for t in traj]
  bad[7] = {"w": traj[7]["w"] + 1e-6}
  case = TrajectoryCase("tt", "test", lambda seed, dtype: bad, lambda seed, dtype: traj, [Config("a")])
  res = run_config(case, Config("a"), "float64")
  assert not res.passed and "step 7" in res.message


# --- the command line: reports, tables, smoke runs, a missing extra ---------------------------------


def test_piped_tables_keep_whole_names():
  import io

  from rich.console import Console

  from parity._report import print_table

  name = "binary_cross_entropy_with_logits_pos_weight_broadcast"
  rows = [{"name": name, "group": "losses", "configs": 3, "passed": True,
           "dtypes": {"float64": {"worst_rel": 1e-16}}, "failures": []}]
  buf = io.StringIO()
  print_table(rows, ["float64"], Console(file=buf, width=80))   # what a pipe gets: 80 columns, no terminal
  text = buf.getvalue()
  assert name in text and "…" not in text, text


def test_a_subset_run_leaves_the_full_report_alone(tmp_path, capsys, monkeypatch, torch):
  import parity._case
  from parity.__main__ import main

  tiny = FunctionCase("tiny_square_sum", "test", lambda x: jnp.sum(x ** 2), lambda x: (x ** 2).sum(), _inputs,
                      [Config("a"), Config("b")])
  from parity import _runner

  monkeypatch.setattr(parity._case, "load_all", lambda: {tiny.name: tiny})   # the registry of this run
  # the in-process worker: its registry only (worker_init would also pin torch to one thread here)
  monkeypatch.setattr(_runner, "worker_init", lambda: monkeypatch.setattr(_runner, "_WORKER_REGISTRY", {tiny.name: tiny}))
  (tmp_path / "parity-report.md").write_text("the full report\n")
  code = main(["-k", "tiny_square", "--dtype", "float64", "--jobs", "1", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert code == 0, out
  assert (tmp_path / "parity-report.md").read_text() == "the full report\n"
  assert not (tmp_path / "parity-report.json").exists()
  subset = (tmp_path / "parity-report-subset.md").read_text()
  assert "Scope: every config; only -k tiny_square --dtype float64." in subset
  assert "1 case, 2 config runs" in " ".join(out.split()), out
  assert "the full report (parity-report.json/.md) is left as it was" in " ".join(out.split()), out


def test_bench_quick_is_marked_a_smoke_run(tmp_path, capsys, monkeypatch):
  import json
  import sys
  import types

  from parity import _bench

  rows = [{"bench": "focal_loss_with_a_long_name", "size": "8x3", "losslab_ms": 0.01, "optax_ms": 0.9461,
           "torch_ms": 0.5}]
  monkeypatch.setitem(sys.modules, "parity.benches.fake_smoke", types.SimpleNamespace(run=lambda quick: rows))
  monkeypatch.setattr(_bench, "BENCHES", ("fake_smoke",))
  monkeypatch.chdir(tmp_path)
  assert _bench.main(["fake_smoke"], quick=True) == 0
  out = " ".join(capsys.readouterr().out.split())
  assert "SMOKE RUN (--quick)" in out and "not measurements" in out and "94.61x" not in out, out
  assert "focal_loss_with_a_long_name" in out.replace(" ", ""), out
  assert json.loads((tmp_path / "parity-bench-quick.json").read_text())["quick"] is True
  assert not (tmp_path / "parity-bench.json").exists()
  assert _bench.main(["fake_smoke"], quick=False) == 0      # a full run shows the ratios
  assert "94.61x" in capsys.readouterr().out


def test_without_torch_the_cli_says_which_extra_to_install(tmp_path):
  import os
  import pathlib
  import subprocess
  import sys

  (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None   # import torch fails\n")
  root = pathlib.Path(__file__).resolve().parents[1]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]), "JAX_PLATFORMS": "cpu"}
  res = subprocess.run([sys.executable, "-m", "parity"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
  assert res.returncode == 2, res.stdout + res.stderr
  assert "install the parity extra: pip install -e '.[parity]'" in res.stderr, res.stderr
  assert "Traceback" not in res.stderr, res.stderr

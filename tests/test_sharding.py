"""Our transformations on sharded arrays: 8 simulated CPU devices give one device's numbers.

``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before jax starts its backend, and
this process already has, so the checks run in a subprocess (``tests/_sharded_check.py``, which
documents the three layouts: one device, data parallel, params + optimizer state partitioned).

Tolerances. Sharding the batch changes the order of the batch reduction (eight partial sums, then an
all-reduce), so results differ from one device by rounding only: float64 <= 1e-12 relative to each
leaf's largest entry (measured <= 3.3e-15), float32 <= 1e-5 (measured <= 4.5e-7), except centered
RMSprop's float32 ``momentum_buffer`` (measured 4.4e-5): it accumulates ``g / sqrt(v - gbar^2)``, and on
this full-batch problem ``v - gbar^2`` is a small difference of nearly equal numbers, which magnifies
the last-bit gradient differences; its parameters still agree to 3.9e-7.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_sharded_check.py")
OPTIMIZERS = ("adam", "adamw_clip", "sgd_momentum", "lion", "rmsprop", "nadam")
FLOAT32 = ("adam", "sgd_momentum", "lion", "rmsprop")
KEYS = [f"{n}/float64" for n in OPTIMIZERS] + [f"{n}/float32" for n in FLOAT32]
TOL = {"float64": 1e-12, "float32": 1e-5}


@pytest.fixture(scope="module")
def results():
  proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300,
                        cwd=SCRIPT.parent.parent)
  assert proc.returncode == 0, f"sharded check failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("key", KEYS)
def test_data_parallel_step_matches_one_device(results, key):
  r = results[key]
  tol = TOL[key.split("/")[1]]
  assert r["dp_devices"] == 8
  assert r["dp_params"] <= tol, f"{key}: params differ by {r['dp_params']:.2e}"
  state_tol = 1e-4 if key == "rmsprop/float32" else tol
  assert r["dp_state"] <= state_tol, f"{key}: optimizer state differs by {r['dp_state']:.2e}"
  assert r["dp_replicated"], f"{key}: params/state did not come back replicated"


@pytest.mark.parametrize("key", KEYS)
def test_partitioned_params_and_state_match_one_device(results, key):
  r = results[key]
  tol = TOL[key.split("/")[1]]
  assert r["fsdp_params"] <= tol, f"{key}: params differ by {r['fsdp_params']:.2e}"
  state_tol = 1e-4 if key == "rmsprop/float32" else tol
  assert r["fsdp_state"] <= state_tol, f"{key}: optimizer state differs by {r['fsdp_state']:.2e}"
  assert r["fsdp_shardings"], f"{key}: outputs do not have the requested shardings"
  assert r["fsdp_split_leaves"] > 0 and r["fsdp_split_ok"], f"{key}: optimizer state is not partitioned"


def test_checkpoint_restores_partitioned_state(results):
  r = results["checkpoint"]
  if "skipped" in r:
    pytest.skip(r["skipped"])
  assert r["equal"], "restored arrays differ from the saved ones"
  assert r["shardings"], "restored arrays are not on the requested NamedShardings"

"""Checkpoints: a run interrupted, saved with orbax, restored and continued is bit-identical."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from losslab_jax import checkpoint as ckpt

N, M = 12, 13


def _txs():
  return {
      # state everywhere: clip norm, AdamW moments + counters, a OneCycle schedule, the plateau's best/lr
      "clip_adamw_onecycle_plateau": optax.chain(
          ll.optim.clip_grad_norm(1.0),
          ll.optim.adamw(lr=ll.schedules.one_cycle_lr(0.05, total_steps=N + M), weight_decay=0.01),
          ll.optim.reduce_lr_on_plateau(factor=0.5, patience=1, base_lr=1.0)),
      # two param groups, float32 mu_product (NAdam), a momentum buffer with its first-step flag (SGD)
      "groups_nadam_sgd": ll.optim.param_groups(
          {"w": ll.optim.nadam(lr=0.01), "b": ll.optim.sgd(lr=ll.schedules.step_lr(0.05, 5), momentum=0.9)},
          {"w1": "w", "w2": "w", "b1": "b", "b2": "b"}),
  }


def _problem(dtype=jnp.float64):
  rng = np.random.default_rng(0)
  params = {"w1": rng.standard_normal((6, 8)) * 0.5, "b1": np.zeros(8),
            "w2": rng.standard_normal((8, 2)) * 0.5, "b2": np.zeros(2)}
  params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
  xs = jnp.asarray(rng.standard_normal((N + M, 16, 6)), dtype)   # a different minibatch every step
  ys = jnp.asarray(rng.standard_normal((N + M, 16, 2)), dtype)
  return params, xs, ys


def _loss(params, x, y):
  h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
  return jnp.mean((h @ params["w2"] + params["b2"][None, :] - y) ** 2)


def _make_step(tx):
  @jax.jit
  def step(params, state, x, y):
    loss, grads = jax.value_and_grad(_loss)(params, x, y)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  return step


def _run(step, params, state, xs, ys, start, stop):
  for k in range(start, stop):
    params, state = step(params, state, xs[k], ys[k])
  return params, state


@pytest.fixture
def orbax():
  """Tests that write checkpoints need orbax; the others (a missing orbax) run without it."""
  return pytest.importorskip("orbax.checkpoint")


def _assert_identical(a, b):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for u, v in zip(la, lb):
    assert u.dtype == v.dtype and u.shape == v.shape
    assert np.array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(_txs()))
def test_resume_from_checkpoint_is_bit_identical(orbax, tmp_path, name, dtype):
  tx = _txs()[name]
  step = _make_step(tx)
  params0, xs, ys = _problem(dtype)
  full = _run(step, params0, tx.init(params0), xs, ys, 0, N + M)

  params, state = _run(step, params0, tx.init(params0), xs, ys, 0, N)
  ckpt.save(tmp_path / "step_12", {"params": params, "opt_state": state})
  del params, state
  # a fresh process knows only the structure: restore into an abstract target, allocating nothing
  target = jax.eval_shape(lambda: {"params": params0, "opt_state": tx.init(params0)})
  restored = ckpt.restore(tmp_path / "step_12", target)
  resumed = _run(step, restored["params"], restored["opt_state"], xs, ys, N, N + M)
  _assert_identical(resumed, full)

  # the checkpointed optimizer state matters: resuming with a fresh one leaves the trajectory
  fresh = _run(step, restored["params"], tx.init(params0), xs, ys, N, N + M)
  assert not np.array_equal(np.asarray(fresh[0]["w1"]), np.asarray(full[0]["w1"]))


def test_plateau_and_schedule_state_survive_the_checkpoint(orbax, tmp_path):
  """The restored state holds the reduced lr, the plateau's counters and the schedule's step counter."""
  tx = _txs()["clip_adamw_onecycle_plateau"]
  step = _make_step(tx)
  params0, xs, ys = _problem()
  params, state = _run(step, params0, tx.init(params0), xs, ys, 0, N)
  ckpt.save(tmp_path / "c", {"opt_state": state})
  restored = ckpt.restore(tmp_path / "c", {"opt_state": tx.init(params0)})["opt_state"]
  plateau, adamw, clip = restored[2], restored[1], restored[0]
  assert float(plateau.lr) == float(state[2].lr) and float(plateau.lr) < 1.0   # it did reduce
  assert int(plateau.num_bad_epochs) == int(state[2].num_bad_epochs)
  assert int(adamw[3].step) == N and int(adamw[2].step) == N                   # lr counter, Adam step
  assert float(clip.total_norm) == float(state[0].total_norm) > 0


def test_plain_orbax_api_works_too(orbax, tmp_path):
  """Nothing in the optimizer state needs our helper: orbax's StandardCheckpointer round-trips it."""
  ocp = orbax
  tx = _txs()["groups_nadam_sgd"]
  step = _make_step(tx)
  params0, xs, ys = _problem()
  params, state = _run(step, params0, tx.init(params0), xs, ys, 0, 5)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(str(tmp_path / "c"), {"params": params, "opt_state": state})
  checkpointer.wait_until_finished()
  target = jax.eval_shape(lambda: {"params": params0, "opt_state": tx.init(params0)})
  restored = checkpointer.restore(str(tmp_path / "c"), target)
  _assert_identical(restored, {"params": params, "opt_state": state})


def test_restore_into_a_different_structure_fails(orbax, tmp_path):
  params0, _, _ = _problem()
  tx = ll.optim.adam(lr=1e-3)
  ckpt.save(tmp_path / "c", tx.init(params0))
  with pytest.raises(ValueError, match=r"^checkpoint.restore: .*c: "):
    ckpt.restore(tmp_path / "c", ll.optim.sgd(lr=1e-3, momentum=0.9).init(params0))
  with pytest.raises(ValueError):
    ckpt.save(tmp_path / "c", tx.init(params0))                       # exists, no overwrite
  ckpt.save(tmp_path / "c", tx.init(params0), overwrite=True)


def test_missing_orbax_gives_a_clear_error(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
  with pytest.raises(ImportError, match=r"losslab_jax\[checkpoint\]"):
    ckpt.save(tmp_path / "c", {"a": jnp.zeros(2)})


# --- damaged checkpoints: a clear error naming the path and what is wrong ---------------------------


def _truncate(path):
  data = pathlib.Path(path).read_bytes()
  pathlib.Path(path).write_bytes(data[: len(data) // 2])


def _empty(path):
  pathlib.Path(path).write_bytes(b"")


DAMAGE = {
    # name: (how to damage the checkpoint directory d, the error's pattern after the path)
    "emptied-directory": (lambda d: [shutil.rmtree(d), os.makedirs(d)],
                          r" is not a complete checkpoint: the directory is empty"),
    "metadata-emptied": (lambda d: _empty(os.path.join(d, "_METADATA")),
                         r" is not a complete checkpoint: _METADATA \(0 bytes\) is not valid JSON"),
    "metadata-truncated": (lambda d: _truncate(os.path.join(d, "_METADATA")),
                           r" is not a complete checkpoint: _METADATA \(\d+ bytes\) is not valid JSON.*truncated"),
    "metadata-removed": (lambda d: os.remove(os.path.join(d, "_METADATA")),
                         r" is not a complete checkpoint: it has no _METADATA file"),
    # refused before orbax reads anything (_METADATA says OCDBT; its manifest is gone)
    "array-data-removed": (lambda d: [shutil.rmtree(os.path.join(d, "d")), os.remove(os.path.join(d, "manifest.ocdbt"))],
                           r": the saved array data is missing or corrupted .*manifest.ocdbt is not in"),
    "array-manifest-removed": (lambda d: os.remove(os.path.join(d, "manifest.ocdbt")),
                               r": the saved array data is missing or corrupted .*manifest.ocdbt is not in"),
}


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
  pytest.importorskip("orbax.checkpoint")
  path = tmp_path_factory.mktemp("saved") / "c"
  tree = {"w": jnp.arange(3.0, dtype=jnp.float64), "state": (jnp.zeros(2, jnp.float64),)}
  ckpt.save(path, tree)
  return path, tree


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_names_the_path_and_the_problem(saved_checkpoint, tmp_path, damage):
  source, tree = saved_checkpoint
  d = tmp_path / "copy"
  shutil.copytree(source, d)
  hurt, pattern = DAMAGE[damage]
  if damage == "array-data-removed" and not os.path.isdir(os.path.join(d, "d")):
    pytest.fail(f"the orbax layout changed (no d/ in {sorted(os.listdir(d))}); update this case")
  hurt(str(d))
  with pytest.raises(ValueError, match="^checkpoint.restore: " + re.escape(str(d)) + pattern):
    ckpt.restore(d, tree)


def test_restore_of_a_missing_path_or_a_file(orbax, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"checkpoint.restore: no checkpoint at .*nowhere: the path does not exist"):
    ckpt.restore(tmp_path / "nowhere", {"w": jnp.zeros(2)})
  (tmp_path / "f").write_text("")
  with pytest.raises(ValueError, match=r"checkpoint.restore: .*f is not a complete checkpoint: it is a file"):
    ckpt.restore(tmp_path / "f", {"w": jnp.zeros(2)})


def _data_files(d):
  return [os.path.join(d, "d", n) for n in sorted(os.listdir(os.path.join(d, "d")))]


DATA_DAMAGE = {
    # found only when orbax reads the data; a one-leaf tree, so no other read is left in flight
    "data-files-removed": lambda d: shutil.rmtree(os.path.join(d, "d")),
    "data-file-truncated": lambda d: [_truncate(f) for f in _data_files(d)],
}


@pytest.mark.parametrize("damage", list(DATA_DAMAGE))
def test_damaged_array_data_found_by_orbax_is_named(orbax, tmp_path, damage):
  tree = {"w": jnp.arange(5.0, dtype=jnp.float64)}
  d = tmp_path / "c"
  ckpt.save(d, tree)
  if not os.path.isdir(os.path.join(d, "d")):
    pytest.fail(f"the orbax layout changed (no d/ in {sorted(os.listdir(d))}); update this case")
  DATA_DAMAGE[damage](str(d))
  pattern = "^checkpoint.restore: " + re.escape(str(d)) + ": the saved array data is missing or corrupted"
  with pytest.raises(ValueError, match=pattern):
    ckpt.restore(d, tree)

"""Save and restore training state (params, optimizer and schedule state) with orbax.

The optimizer states here are pytrees of arrays (NamedTuples such as ``AdamState``, schedule
counters, ``ReduceLROnPlateauState``), so a checkpoint of ``{"params": params, "opt_state":
opt_state}`` holds everything a run needs to continue: a run restored from it takes bit for bit the
steps the uninterrupted run would have taken. Learning-rate schedules are functions of the counters
inside the optimizer state, so they need nothing saved of their own.

orbax is optional (``pip install losslab_jax[checkpoint]``): it is imported when these functions
run, never when ``losslab_jax`` is imported.

Example:

.. code-block:: python

   import losslab_jax.checkpoint as ckpt

   ckpt.save("runs/a/step_100", {"params": params, "opt_state": opt_state})
   # later, in a fresh process: the structure alone (nothing allocated) is the target
   target = jax.eval_shape(lambda: {"params": init_params(), "opt_state": tx.init(init_params())})
   state = ckpt.restore("runs/a/step_100", target)
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax

__all__ = ["restore", "save"]


def _ocp():
  try:
    import orbax.checkpoint as ocp
  except ImportError as exc:
    raise ImportError("losslab_jax.checkpoint needs orbax: pip install 'losslab_jax[checkpoint]'"
                      " (or pip install orbax-checkpoint)") from exc
  return ocp


def save(path: str | os.PathLike, tree: Any, *, overwrite: bool = False) -> str:
  """Write ``tree`` (params, optimizer state, anything made of arrays) to the directory ``path``.

  Blocks until the checkpoint is complete on disk. orbax writes it atomically (to a temporary
  directory renamed at the end), so an interrupted save leaves no partial checkpoint behind.

  Args:
    path: a directory that does not exist yet (or ``overwrite=True``); made absolute.
    tree: a pytree of arrays; sharded arrays are saved shard by shard (every process of a
      multi-host run calls ``save`` with its part, as orbax requires).
    overwrite: replace an existing checkpoint at ``path``.

  Returns:
    The absolute path written.

  Raises:
    ImportError: orbax-checkpoint is not installed.
    ValueError: ``path`` exists and ``overwrite`` is False (orbax's error).
  """
  ocp = _ocp()
  path = os.path.abspath(os.fspath(path))
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, tree, force=overwrite)
  checkpointer.wait_until_finished()
  return path


def _abstract(leaf: Any) -> Any:
  """A ``ShapeDtypeStruct`` with a sharding for every leaf (orbax restores onto that sharding)."""
  sharding = getattr(leaf, "sharding", None)
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)


def restore(path: str | os.PathLike, target: Any) -> Any:
  """Read the checkpoint at ``path`` into the structure, dtypes and shardings of ``target``.

  Args:
    path: a directory written by :func:`save`.
    target: a pytree like the saved one: concrete arrays, or ``jax.ShapeDtypeStruct`` leaves (for
      example ``jax.eval_shape(lambda: (params, tx.init(params)))``, which allocates nothing).
      Each leaf's ``sharding`` (a ``NamedSharding`` for partitioned state) is where it is
      restored; leaves without one go to the default device.

  Returns:
    A pytree with ``target``'s structure (NamedTuple states included) holding the saved arrays.

  Raises:
    ImportError: orbax-checkpoint is not installed.
    FileNotFoundError: ``path`` does not exist.
    ValueError: ``path`` is not a complete checkpoint (a file, an empty directory, a directory
      without orbax's ``_METADATA``, a truncated or corrupted metadata or data file: the message
      names the path and what is wrong), or the checkpoint's structure or shapes differ from
      ``target``'s (orbax's error, with the path in front).
  """
  ocp = _ocp()
  path = os.path.abspath(os.fspath(path))
  if not os.path.exists(path):
    raise FileNotFoundError(f"checkpoint.restore: no checkpoint at {path}: the path does not exist")
  problem = _incomplete(path, deep=False)
  if problem:
    raise ValueError(f"checkpoint.restore: {path} is not a complete checkpoint: {problem}")
  problem = _missing_array_store(path)
  if problem:
    raise ValueError(f"checkpoint.restore: {path}: the saved array data is missing or corrupted"
                     f" (a truncated or partial copy?): {problem}")
  abstract = jax.tree.map(_abstract, target)
  try:
    return ocp.StandardCheckpointer().restore(path, abstract)
  except (ValueError, OSError) as exc:  # json.JSONDecodeError is a ValueError
    problem = _incomplete(path, deep=True)
    if problem:
      raise ValueError(f"checkpoint.restore: {path} is not a complete checkpoint: {problem}") from exc
    if isinstance(exc, json.JSONDecodeError):
      raise ValueError(f"checkpoint.restore: {path}: a metadata file is not valid JSON (truncated or"
                       f" corrupted?): {exc}") from exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if (any(code in first for code in ("DATA_LOSS", "NOT_FOUND", "OUT_OF_RANGE"))
        or isinstance(exc, FileNotFoundError)):
      raise ValueError(f"checkpoint.restore: {path}: the saved array data is missing or corrupted"
                       f" (a truncated or partial copy?): {first[:400]}") from exc
    raise ValueError(f"checkpoint.restore: {path}: {exc}") from exc


def _missing_array_store(path: str) -> str | None:
  """What is missing of the array store that ``_METADATA`` says the checkpoint has, or None.

  Checked before orbax runs: orbax reads the leaves concurrently, and when one read fails it
  returns while the others are still in flight, and their completions then land on a closed event
  loop (``Exception ignored ... Event loop is closed``, printed at some later moment). A missing
  store is the common damage (a partial copy) and needs no read to see, so it is refused here.
  """
  try:
    with open(os.path.join(path, "_METADATA"), encoding="utf-8") as f:
      meta = json.load(f)
  except (OSError, ValueError, UnicodeDecodeError):
    return None  # no or damaged _METADATA: orbax fails first, and the deep check names it
  if isinstance(meta, dict) and meta.get("use_ocdbt") is True:
    if not os.path.isfile(os.path.join(path, "manifest.ocdbt")):
      return ("_METADATA says the arrays are in an OCDBT store, but its manifest.ocdbt is not in"
              " the directory")
  return None


def _incomplete(path: str, *, deep: bool) -> str | None:
  """What makes ``path`` not a checkpoint, or None when nothing obvious is wrong.

  The shallow check (before orbax runs) looks for what no orbax version accepts: a file, an empty
  directory. The deep one (after orbax failed) also looks for orbax's ``_METADATA`` (the tree
  structure) and for metadata files that are not valid JSON.
  """
  if not os.path.isdir(path):
    return "it is a file, not a checkpoint directory"
  names = sorted(os.listdir(path))
  if not names:
    return "the directory is empty (an interrupted copy, or emptied?)"
  if not deep:
    return None
  if "_METADATA" not in names:
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return (f"it has no _METADATA file (the saved tree structure) and holds only {shown}; it was"
            " truncated, or not written by checkpoint.save")
  candidates = ["_METADATA", "_CHECKPOINT_METADATA"]
  meta_dir = os.path.join(path, "array_metadatas")
  if os.path.isdir(meta_dir):
    candidates += [os.path.join("array_metadatas", n) for n in sorted(os.listdir(meta_dir))]
  for rel in candidates:
    full = os.path.join(path, rel)
    if not os.path.isfile(full):
      continue
    try:
      with open(full, encoding="utf-8") as f:
        json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
      size = os.path.getsize(full)
      return f"{rel} ({size} bytes) is not valid JSON ({exc}); the file is truncated or corrupted"
  return None

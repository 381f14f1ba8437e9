"""``python -m parity compare MODULE:FACTORY``: run a user's factory and compare the two sides it returns.

The factory contract. ``FACTORY`` is a callable in ``MODULE`` (a dotted module importable from the
current directory, or a path to a ``.py`` file). Called with no arguments (or with
``dtype="float32"`` / ``"float64"`` for each ``--dtype`` given, which the factory must then
accept), it returns one comparison, or a list of them; a comparison is a dict:

* forward: ``{"torch": torch_module, "nnx": nnx_module, "inputs": (x, ...), **options}``, run as
  ``parity.compare_forward(torch, nnx, *inputs, **options)``;
* training: ``{"torch": torch_model, "nnx": nnx_model, "torch_optimizer": opt, "torch_loss_fn": f,
  "jax_loss_fn": g, "batches": [...], **options}``, run as ``parity.compare_training(...)``;

plus an optional ``"name"``. ``options`` are the functions' keyword arguments (``rtol``,
``scheduler``, ``teacher_forcing``, ...). Each report is printed; ``--json`` / ``--markdown``
write them all to files. The exit status is 0 when every comparison passed, 1 otherwise, 2 when
the factory cannot be loaded or returns something else.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

TRAINING_KEYS = ("torch_optimizer", "torch_loss_fn", "jax_loss_fn", "batches")


def load_factory(spec: str):
  """``"pkg.mod:fn"`` or ``"path/to/file.py:fn"`` -> the callable."""
  module_name, sep, attr = spec.rpartition(":")
  if not sep or not module_name or not attr:
    raise ValueError(f"parity compare: expected MODULE:FACTORY, got {spec!r}")
  if module_name.endswith(".py") or "/" in module_name:
    path = Path(module_name)
    if not path.is_file():
      raise ValueError(f"parity compare: no file {path}")
    mod_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[path.stem] = module
    mod_spec.loader.exec_module(module)
  else:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
      sys.path.insert(0, str(Path.cwd()))
    module = importlib.import_module(module_name)
  fn = getattr(module, attr, None)
  if not callable(fn):
    raise ValueError(f"parity compare: {module_name} has no callable {attr!r}")
  return fn


def run_comparison(spec: dict) -> Any:
  """One factory dict -> its report."""
  from parity._port import compare_forward, compare_training

  if not isinstance(spec, dict) or "torch" not in spec or "nnx" not in spec:
    raise ValueError("parity compare: the factory must return a dict with 'torch' and 'nnx' (and 'inputs' for a "
                     "forward comparison, or torch_optimizer, torch_loss_fn, jax_loss_fn, batches for training), "
                     f"or a list of such dicts; got {type(spec).__name__}")
  opts = {k: v for k, v in spec.items() if k not in ("torch", "nnx", "name", "inputs", *TRAINING_KEYS)}
  if all(k in spec for k in TRAINING_KEYS):
    return compare_training(spec["torch"], spec["torch_optimizer"], spec["torch_loss_fn"], spec["nnx"],
                            spec["jax_loss_fn"], spec["batches"], **opts)
  if "inputs" in spec:
    inputs = spec["inputs"]
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    return compare_forward(spec["torch"], spec["nnx"], *inputs, **opts)
  missing = [k for k in TRAINING_KEYS if k not in spec]
  raise ValueError(f"parity compare: a comparison needs 'inputs' (forward) or all of {TRAINING_KEYS} "
                   f"(training); missing {missing}")


def main(factory: str, dtypes: list[str] | None, json_path: str | None, md_path: str | None) -> int:
  from rich.console import Console

  console = Console(width=max(Console().width, 200), soft_wrap=True)
  try:
    fn = load_factory(factory)
  except (ValueError, ImportError) as exc:
    msg = str(exc) if str(exc).startswith("parity compare") else f"parity compare: cannot load {factory}: {exc}"
    console.print(msg, style="red", highlight=False, markup=False)
    return 2
  calls: list[tuple[str, Any]] = []
  if dtypes:
    if "dtype" not in inspect.signature(fn).parameters:
      console.print(f"parity compare: --dtype given but {factory} takes no dtype argument", style="red",
                    highlight=False, markup=False)
      return 2
    calls = [(d, fn(dtype=d)) for d in dtypes]
  else:
    calls = [("", fn())]
  results = []
  try:
    for tag, out in calls:
      specs = out if isinstance(out, (list, tuple)) else [out]
      for i, spec in enumerate(specs):
        name = (spec.get("name") if isinstance(spec, dict) else None) or f"{factory}[{i}]"
        if tag:
          name = f"{name} ({tag})"
        report = run_comparison(spec)
        console.rule(name)
        console.print(report)
        results.append((name, report))
  except ValueError as exc:
    console.print(str(exc), style="red", highlight=False, markup=False)
    return 2
  n_fail = sum(not r.passed for _, r in results)
  console.print(f"{len(results)} comparisons, {n_fail} failed")
  if json_path:
    Path(json_path).write_text(json.dumps({name: json.loads(r.to_json()) for name, r in results}, indent=2))
  if md_path:
    Path(md_path).write_text("\n".join(f"# {name}\n\n{r.to_markdown()}" for name, r in results))
  return 1 if n_fail else 0

"""Worker-process side of ``python -m parity``: each worker loads the registry once and runs cases."""

from __future__ import annotations

import time


PARITY_EXTRA_HINT = "install the parity extra: pip install -e '.[parity]' (torch, torchvision, lion-pytorch, rich)"


def missing_parity_extra() -> str | None:
  """A one-line message when a package of the ``parity`` extra cannot be imported, else None.

  ``python -m parity`` compares against torch and prints with rich; without them it says what to
  install instead of ending in a traceback.
  """
  import importlib

  for module in ("torch", "rich"):
    try:
      importlib.import_module(module)
    except ImportError as exc:
      return f"python -m parity needs {module}, which cannot be imported ({exc}); {PARITY_EXTRA_HINT}"
  return None


def plural(n: int, word: str, many: str | None = None) -> str:
  """``"1 worker process"``, ``"2 worker processes"``."""
  return f"{n} {word if n == 1 else (many or word + 's')}"


def ready() -> None:
  """A no-op task: submitting one per worker starts the workers (and their imports) early."""


def cost_rank(case) -> int:
  """A rough cost order for scheduling (0 runs first): training runs, trajectories, functions."""
  from parity._case import TrajectoryCase

  if getattr(case, "group", "") == "training":
    return 0
  return 1 if isinstance(case, TrajectoryCase) else 2


def setup_jax() -> None:
  import warnings

  # torch's F.kl_div(reduction="mean") warns by design; the kl_div cases exercise exactly that.
  warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss", category=UserWarning)
  import jax

  jax.config.update("jax_enable_x64", True)


_WORKER_REGISTRY = None


def worker_init() -> None:
  global _WORKER_REGISTRY
  setup_jax()
  try:
    import torch

    torch.set_num_threads(1)  # one core per worker process
  except ImportError:
    pass
  from parity._case import load_all

  _WORKER_REGISTRY = load_all()


def run_one(name: str, config_ids: list[str], dtypes: list[str]):
  from parity._compare import case_dtypes, run_config

  case = _WORKER_REGISTRY[name]
  t0 = time.perf_counter()
  results = [run_config(case, cfg, d) for d in case_dtypes(case, dtypes)
             for cfg in case.configs if cfg.id in config_ids]
  return name, results, time.perf_counter() - t0



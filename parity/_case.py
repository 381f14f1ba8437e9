"""Case dataclasses and the registry every parity face (CLI, pytest) reads.

Two kinds of case:

* :class:`FunctionCase` compares a function's value and its vector-Jacobian product (the same
  random cotangent on both sides) with respect to the inputs named in ``grad_argnums``.
* :class:`TrajectoryCase` compares two sequences of pytrees (an optimizer's parameters after every
  step, a schedule's value at every count, a training run's losses), element by element.

Each case carries several :class:`Config` objects (keyword arguments and input parameters); every
config runs in each requested dtype with its own seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

DTYPES = ("float32", "float64")

# Default tolerances (relative error, see parity._compare.rel_error). DEVELOPERS.md fixes these;
# a case that needs looser ones states why in ``tolerance_reason``.
DEFAULT_RTOL = {"float32": 1e-5, "float64": 1e-10}


@dataclasses.dataclass(frozen=True)
class Config:
  """One configuration of a case.

  Attributes:
    id: short readable id, unique within the case (``"weighted-smoothing"``).
    kwargs: keyword arguments passed to both the losslab_jax callable and its torch twin.
    params: parameters for the input generator (shapes, number of classes, ...).
  """

  id: str
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FunctionCase:
  """A function and its torch twin on the same inputs.

  Attributes:
    name: case id (``"cross_entropy"``); the report has one row per case.
    group: ``"losses"``, ``"activations"``, ...
    jax_fn: ``jax_fn(*arrays, **config.kwargs) -> array``.
    torch_fn: ``torch_fn(*tensors, **config.kwargs) -> tensor``. Inputs arrive in losslab_jax's
      layout (class axis last); the torch side moves axes itself, so input gradients come back
      in the same layout on both sides.
    make_inputs: ``make_inputs(rng, dtype, **config.params) -> tuple[np.ndarray, ...]``; floating
      inputs must be created in ``dtype``; integer inputs keep their integer dtype.
    configs: the configurations to run.
    grad_argnums: positions of the inputs that need gradients.
    rtol: per-dtype tolerance overrides, e.g. ``{"float32": 3e-5}``.
    value_floor: the scale of the quantities that cancel in the value (``1 - cos`` with cos near
      1: 1.0). Elements of the value smaller than it are judged relative to it, as the comparator
      judges small entries relative to 1e-3 of the largest one. 0 (the default): no such floor.
    tolerance_reason: required when ``rtol`` loosens a default or ``value_floor`` is set.
    default: part of the default ``python -m parity`` run (the pytest suite runs every case).
  """

  name: str
  group: str
  jax_fn: Callable[..., Any]
  torch_fn: Callable[..., Any]
  make_inputs: Callable[..., tuple[Any, ...]]
  configs: Sequence[Config]
  grad_argnums: tuple[int, ...] = (0,)
  rtol: Mapping[str, float] = dataclasses.field(default_factory=dict)
  value_floor: float = 0.0
  tolerance_reason: str = ""
  default: bool = True

  kind = "function"

  def tolerance(self, dtype: str) -> float:
    return self.rtol.get(dtype, DEFAULT_RTOL[dtype])


@dataclasses.dataclass(frozen=True)
class TrajectoryCase:
  """Two runs that each produce a sequence of pytrees of arrays, compared step by step.

  Attributes:
    name, group, configs, rtol, tolerance_reason, default: as in :class:`FunctionCase`.
    run_jax: ``run_jax(seed, dtype, **config.kwargs, **config.params) -> list[pytree]``.
    run_torch: ``run_torch(seed, dtype, **config.kwargs, **config.params) -> list[pytree]``,
      the same structure with numpy arrays (or tensors) as leaves.
    what: what the sequence holds, for the report (``"params per step"``).
  """

  name: str
  group: str
  run_jax: Callable[..., Sequence[Any]]
  run_torch: Callable[..., Sequence[Any]]
  configs: Sequence[Config]
  rtol: Mapping[str, float] = dataclasses.field(default_factory=dict)
  tolerance_reason: str = ""
  default: bool = True
  what: str = "trajectory"
  dtypes: tuple[str, ...] = DTYPES

  kind = "trajectory"

  def tolerance(self, dtype: str) -> float:
    return self.rtol.get(dtype, DEFAULT_RTOL[dtype])


Case = FunctionCase | TrajectoryCase

REGISTRY: dict[str, Case] = {}


def register(case: Case) -> Case:
  """Add ``case`` to the registry; names are unique."""
  if case.name in REGISTRY:
    raise ValueError(f"parity: a case named {case.name!r} is already registered")
  ids = [c.id for c in case.configs]
  if len(set(ids)) != len(ids):
    raise ValueError(f"parity: case {case.name!r} has duplicate config ids {ids}")
  looser = case.rtol and any(case.rtol.get(d, DEFAULT_RTOL[d]) > DEFAULT_RTOL[d] for d in DTYPES)
  if (looser or getattr(case, "value_floor", 0.0)) and not case.tolerance_reason:
    raise ValueError(f"parity: case {case.name!r} loosens a tolerance without a reason")
  REGISTRY[case.name] = case
  return case


def load_all() -> dict[str, Case]:
  """Import every module of ``parity.cases`` (each registers its cases) and return the registry."""
  import importlib
  import pkgutil

  import parity.cases as cases_pkg

  for mod in sorted(pkgutil.iter_modules(cases_pkg.__path__), key=lambda m: m.name):
    if not mod.name.startswith("_"):
      importlib.import_module(f"parity.cases.{mod.name}")
  return REGISTRY

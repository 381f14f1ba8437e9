"""Reports of :func:`parity.compare_forward` and :func:`parity.compare_training`.

Each report has ``passed``, ``first_divergence`` (``None`` when passed, else a :class:`Divergence`),
``traps`` (the flax-vs-torch traps recognised on the way, :class:`Trap`), prints as a rich table
(``print(report)``; names never wrap or get truncated, whatever the terminal width), and writes
``to_markdown()`` / ``to_json()``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from typing import Any

QUANTITIES = ("output", "loss", "grad", "update", "param", "buffer")


def fmt(x: float | None) -> str:
  if x is None:
    return "-"
  if x == 0:
    return "0"
  if math.isnan(x):
    return "nan"
  if math.isinf(x):
    return "inf"
  return f"{x:.1e}"


@dataclasses.dataclass(frozen=True)
class Trap:
  """A known flax-vs-torch difference recognised in the two models (or in their error pattern).

  Attributes:
    name: short id: ``"layernorm_eps"``, ``"batchnorm_momentum"``, ``"batchnorm_running_var"``,
      ``"gelu_tanh"``, ``"same_padding"``, ``"dropped_bias"``, ``"eps"``, ``"mode"``, ``"dropout"``.
    where: the torch submodule path (``""`` for the whole model).
    message: what differs and how to fix it.
    confirmed: True when the trap is shown to explain the measured difference (a counterfactual
      rerun of torch with the flax convention reproduces the flax output), False when it is only
      seen in the configuration.
    torch_fix: ``(attribute, value)`` that makes the torch module follow the flax configuration
      (used for the counterfactual rerun), or None.
  """

  name: str
  where: str
  message: str
  confirmed: bool = False
  torch_fix: tuple[str, Any] | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Divergence:
  """Where two runs first differ beyond tolerance.

  For :func:`~parity.compare_forward`: ``submodule`` (torch's dotted path, ``""`` the model
  itself) and ``quantity="output"``. For :func:`~parity.compare_training`: ``step`` (0-based, the
  mini-batch index), ``parameter`` (torch's parameter name, ``None`` for the loss) and
  ``quantity`` (``"loss"`` | ``"grad"`` | ``"update"`` | ``"param"`` | ``"buffer"``).

  Attributes:
    quantity: which quantity differs.
    rel_err: its relative error (parity's measure), ``inf`` for a shape mismatch.
    tolerance: the tolerance it exceeded.
    submodule: the torch submodule path (forward), else None.
    step: the training step (training), else None.
    parameter: the torch parameter (or buffer) name (training), else None.
    trap: the name of a recognised :class:`Trap` that explains it, if any.
    note: a sentence of context (what agreed just before, a shape mismatch, ...).
  """

  quantity: str
  rel_err: float
  tolerance: float
  submodule: str | None = None
  step: int | None = None
  parameter: str | None = None
  trap: str | None = None
  note: str = ""

  def where(self) -> str:
    if self.step is None:
      return f"submodule {self.submodule or '(the model)'!s}"
    what = f"step {self.step}"
    if self.parameter is not None:
      what += f", {self.parameter}"
    return what

  def __str__(self) -> str:
    s = f"{self.where()}: {self.quantity} differs, rel err {fmt(self.rel_err)} > {fmt(self.tolerance)}"
    if self.trap:
      s += f" [trap: {self.trap}]"
    if self.note:
      s += f" ({self.note})"
    return s


def _json_default(x: Any) -> Any:
  if isinstance(x, float) and not math.isfinite(x):
    return str(x)
  if hasattr(x, "tolist"):
    return x.tolist()
  if dataclasses.is_dataclass(x):
    return dataclasses.asdict(x)
  return str(x)


def _clean(x: Any) -> Any:
  """Non-finite floats as strings (JSON has no inf/nan), recursively."""
  if isinstance(x, float) and not math.isfinite(x):
    return str(x)
  if isinstance(x, dict):
    return {str(k): _clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_clean(v) for v in x]
  return x


class _Rendered:
  """Mixin: ``print(report)`` renders the rich table at a width that never truncates names."""

  WIDTH = 200

  def _tables(self) -> list[Any]:  # pragma: no cover - overridden
    raise NotImplementedError

  def _lines(self) -> list[str]:  # pragma: no cover - overridden
    raise NotImplementedError

  def __rich_console__(self, console, options):
    yield from self._tables()
    for line in self._lines():
      yield line

  def __str__(self) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=self.WIDTH, force_terminal=False, color_system=None,
                      highlight=False, soft_wrap=True)
    console.print(self)
    return buf.getvalue().rstrip() + "\n"

  def to_json(self, indent: int | None = 2) -> str:
    return json.dumps(_clean(self.as_dict()), indent=indent, default=_json_default)

  def as_dict(self) -> dict:  # pragma: no cover - overridden
    raise NotImplementedError


def _divergence_lines(passed: bool, first: Divergence | None, traps: list[Trap]) -> list[str]:
  lines = []
  for t in traps:
    mark = "confirmed by the numbers" if t.confirmed else "seen in the configuration"
    lines.append(f"trap {t.name} at {t.where or '(the model)'} ({mark}): {t.message}")
  if passed:
    lines.append("PASSED: every compared quantity agrees within tolerance.")
  elif first is not None:
    lines.append(f"FIRST DIVERGENCE: {first}")
  return lines


# --- forward ------------------------------------------------------------------------------------


@dataclasses.dataclass
class ForwardRow:
  """One submodule call: torch's path, the paired nnx path, shapes, input and output errors."""

  torch_path: str
  nnx_path: str | None
  call: int
  torch_type: str
  torch_shape: tuple | None
  nnx_shape: tuple | None
  input_rel: float | None
  output_rel: float | None
  local_rel: float | None  # nnx output vs torch's submodule rerun on the nnx inputs (only where output_rel fails)
  status: str  # "ok" | "DIVERGES" | "downstream" | "unpaired" | "no array output"


@dataclasses.dataclass
class ForwardReport(_Rendered):
  """The result of :func:`parity.compare_forward`.

  Attributes:
    passed: the model outputs agree and no submodule diverges.
    first_divergence: the first submodule (in torch's call order) whose output differs beyond
      tolerance while its inputs agreed, or None.
    rows: every torch submodule call in completion order (children before their parent).
    traps: the recognised flax-vs-torch traps.
    output_rel: the relative error of the model's output.
    dtype, tolerance: the comparison's dtype and relative tolerance.
  """

  passed: bool
  first_divergence: Divergence | None
  rows: list[ForwardRow]
  traps: list[Trap]
  output_rel: float
  dtype: str
  tolerance: float

  def _tables(self):
    from rich.table import Table

    t = Table(title=f"compare_forward ({self.dtype}, rtol {fmt(self.tolerance)}): torch submodules in call order")
    for col, kw in (("torch submodule", {"no_wrap": True}), ("nnx path", {"no_wrap": True}),
                    ("type", {"no_wrap": True}), ("torch shape", {"no_wrap": True}),
                    ("nnx shape", {"no_wrap": True}), ("input rel", {"justify": "right"}),
                    ("output rel", {"justify": "right"}), ("local rel", {"justify": "right"}),
                    ("status", {"no_wrap": True})):
      t.add_column(col, **kw)
    first = self.first_divergence
    for r in self.rows:
      status = r.status
      if first is not None and r.torch_path == first.submodule and r.status == "DIVERGES":
        status = "FIRST DIVERGENCE"
      t.add_row(r.torch_path or "(model)", r.nnx_path if r.nnx_path is not None else "-", r.torch_type,
                str(r.torch_shape) if r.torch_shape is not None else "-",
                str(r.nnx_shape) if r.nnx_shape is not None else "-", fmt(r.input_rel), fmt(r.output_rel),
                fmt(r.local_rel), status)
    return [t]

  def _lines(self):
    return [f"model output: rel err {fmt(self.output_rel)}"] + _divergence_lines(
        self.passed, self.first_divergence, self.traps)

  def as_dict(self) -> dict:
    return {"kind": "forward", "passed": self.passed, "dtype": self.dtype, "tolerance": self.tolerance,
            "output_rel": self.output_rel,
            "first_divergence": dataclasses.asdict(self.first_divergence) if self.first_divergence else None,
            "traps": [dataclasses.asdict(t) for t in self.traps],
            "rows": [dataclasses.asdict(r) for r in self.rows]}

  def to_markdown(self) -> str:
    lines = [f"## compare_forward: {'passed' if self.passed else 'FAILED'}", "",
             f"dtype {self.dtype}, relative tolerance {fmt(self.tolerance)}; model output rel err "
             f"{fmt(self.output_rel)}.", ""]
    if self.first_divergence is not None:
      lines += [f"**First divergence:** {self.first_divergence}", ""]
    lines += [f"- trap `{t.name}` at `{t.where or '(model)'}`: {t.message}" for t in self.traps]
    if self.traps:
      lines.append("")
    lines += ["| torch submodule | nnx path | type | torch shape | nnx shape | input rel | output rel | local rel | status |",
              "|---|---|---|---|---|---:|---:|---:|---|"]
    for r in self.rows:
      lines.append(f"| `{r.torch_path or '(model)'}` | `{r.nnx_path if r.nnx_path is not None else '-'}` | "
                   f"{r.torch_type} | {r.torch_shape} | {r.nnx_shape} | {fmt(r.input_rel)} | "
                   f"{fmt(r.output_rel)} | {fmt(r.local_rel)} | {r.status} |")
    return "\n".join(lines) + "\n"


# --- training -----------------------------------------------------------------------------------


@dataclasses.dataclass
class StepRecord:
  """The errors of one training step: the loss, and per quantity the worst parameter.

  ``errors[quantity][name]`` is the relative error of that parameter's quantity (``grad``,
  ``update``, ``param``: the value after the step; ``buffer``: a buffer after the step).
  """

  step: int
  loss_rel: float
  torch_loss: float
  jax_loss: float
  errors: dict[str, dict[str, float]]

  def worst(self, quantity: str, ignore: tuple[str, ...] = ()) -> tuple[str | None, float]:
    """The parameter with the largest error of ``quantity`` (names matching an ``ignore`` pattern left out)."""
    import fnmatch

    errs = {n: e for n, e in self.errors.get(quantity, {}).items()
            if not any(fnmatch.fnmatchcase(n, p) for p in ignore)}
    if not errs:
      return None, 0.0
    name = max(errs, key=lambda n: _sortable(errs[n]))
    return name, errs[name]


def _sortable(x: float) -> float:
  return math.inf if math.isnan(x) else x


@dataclasses.dataclass
class TrainingReport(_Rendered):
  """The result of :func:`parity.compare_training`.

  Attributes:
    passed: every compared quantity of every step agrees within tolerance.
    first_divergence: the first (step, quantity, parameter) beyond tolerance, in the order loss,
      gradients, updates, new values, buffers within a step, parameters in torch's order.
    steps: one :class:`StepRecord` per step.
    traps: recognised flax-vs-torch traps.
    teacher_forcing: whether the JAX optimizer was fed torch's gradients.
    dtype: the comparison's dtype.
    tolerance: ``{quantity: rtol}``.
    verdict: one sentence: model and optimizer agree, or which of them differs first.
    ignore: the ``ignore=`` patterns: those parameters are in ``steps`` but not in the verdict or table.
  """

  passed: bool
  first_divergence: Divergence | None
  steps: list[StepRecord]
  traps: list[Trap]
  teacher_forcing: bool
  dtype: str
  tolerance: dict[str, float]
  verdict: str = ""
  ignore: tuple[str, ...] = ()

  def curves(self) -> dict[str, list[float]]:
    """Per-step worst relative error of ``loss``, ``grads`` and ``params`` (for the drift plot)."""
    return {"loss": [s.loss_rel for s in self.steps],
            "grads": [s.worst("grad", self.ignore)[1] for s in self.steps],
            "params": [s.worst("param", self.ignore)[1] for s in self.steps]}

  def plot_drift(self, path, title: str = "compare_training") -> None:
    """Write the drift figure (running max of each per-step error, log y) to ``path`` (needs matplotlib)."""
    from parity._drift import plot_curves

    plot_curves({title: self.curves()}, path, tolerance=self.tolerance.get("param"))

  def _tables(self):
    from rich.table import Table

    mode = "teacher forcing: JAX optimizer fed torch's gradients" if self.teacher_forcing else "end to end"
    t = Table(title=f"compare_training ({self.dtype}, {mode}): worst relative error per step")
    t.add_column("step", justify="right")
    t.add_column("loss rel", justify="right")
    shown = ("grad", "update", "param") + (("buffer",) if any(s.errors.get("buffer") for s in self.steps) else ())
    for q in shown:
      t.add_column(f"{q} rel", justify="right")
      t.add_column(f"worst {q}", no_wrap=True)
    t.add_column("status", no_wrap=True)
    first = self.first_divergence
    for s in self.steps:
      cells = [str(s.step), fmt(s.loss_rel)]
      bad = False
      for q in shown:
        name, err = s.worst(q, self.ignore)
        cells += [fmt(err), name or "-"]
      for q, tol in self.tolerance.items():
        if q == "loss":
          bad |= not s.loss_rel <= tol
        else:
          bad |= not s.worst(q, self.ignore)[1] <= tol
      status = "ok" if not bad else "DIVERGES"
      if first is not None and first.step == s.step:
        status = f"FIRST DIVERGENCE ({first.quantity})"
      t.add_row(*cells, status)
    return [t]

  def _lines(self):
    lines = []
    if self.ignore:
      worst = max((s.worst(q)[1] for s in self.steps for q in ("grad", "update", "param")), default=0.0)
      lines.append(f"ignored (not judged): {', '.join(self.ignore)}; worst error over all parameters incl. "
                   f"these: {fmt(worst)}")
    return lines + _divergence_lines(self.passed, self.first_divergence, self.traps) + (
        [self.verdict] if self.verdict else [])

  def as_dict(self) -> dict:
    return {"kind": "training", "passed": self.passed, "dtype": self.dtype, "tolerance": self.tolerance,
            "teacher_forcing": self.teacher_forcing, "verdict": self.verdict, "ignore": list(self.ignore),
            "first_divergence": dataclasses.asdict(self.first_divergence) if self.first_divergence else None,
            "traps": [dataclasses.asdict(t) for t in self.traps],
            "steps": [dataclasses.asdict(s) for s in self.steps]}

  def to_markdown(self) -> str:
    lines = [f"## compare_training: {'passed' if self.passed else 'FAILED'}", "",
             f"dtype {self.dtype}, {'teacher forcing' if self.teacher_forcing else 'end to end'}, "
             "tolerances " + ", ".join(f"{q} {fmt(v)}" for q, v in self.tolerance.items()) + ".", ""]
    if self.first_divergence is not None:
      lines += [f"**First divergence:** {self.first_divergence}", ""]
    if self.verdict:
      lines += [self.verdict, ""]
    lines += [f"- trap `{t.name}` at `{t.where or '(model)'}`: {t.message}" for t in self.traps]
    if self.traps:
      lines.append("")
    lines += ["| step | loss rel | grad rel (worst) | update rel (worst) | param rel (worst) |",
              "|---:|---:|---|---|---|"]
    for s in self.steps:
      cells = [str(s.step), fmt(s.loss_rel)]
      for q in ("grad", "update", "param"):
        name, err = s.worst(q, self.ignore)
        cells.append(f"{fmt(err)} (`{name}`)" if name else "-")
      lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

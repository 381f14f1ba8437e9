"""``parity.compare_forward``: run a torch module and its nnx port on the same inputs, submodule by submodule."""

from __future__ import annotations

import copy
import dataclasses

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from parity._case import DEFAULT_RTOL
from parity._compare import array_error
from parity._port import _traps
from parity._port._capture import Call, nnx_calls, torch_calls
from parity._port._report import Divergence, ForwardReport, ForwardRow, Trap

LayoutHook = Callable[[str, np.ndarray, tuple], "np.ndarray | None"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
  return array_error(a, b).rel


def to_torch_layout(nnx_arr: np.ndarray, torch_shape: tuple, path: str = "",
                    output_layout: LayoutHook | None = None) -> np.ndarray | None:
  """An nnx array in torch's layout, or None when no rule fits.

  Rules, in order: the user's ``output_layout(path, nnx_array, torch_shape)`` (return None to fall
  through); equal shapes are taken as the same layout; a channels-last array ``(N, *S, C)`` whose
  torch twin is ``(N, C, *S)`` is moved to channels-first.
  """
  if output_layout is not None:
    out = output_layout(path, nnx_arr, torch_shape)
    if out is not None:
      return np.asarray(out)
  if nnx_arr.shape == tuple(torch_shape):
    return nnx_arr
  if nnx_arr.ndim >= 3 and nnx_arr.shape == (torch_shape[0], *torch_shape[2:], torch_shape[1]):
    return np.moveaxis(nnx_arr, -1, 1)
  return None


def _leaves_error(n_leaves: Sequence[np.ndarray], t_leaves: Sequence[np.ndarray], path: str,
                  output_layout: LayoutHook | None) -> tuple[float | None, str]:
  """Worst error over paired leaves; ``inf`` (and a note) when shapes cannot be aligned."""
  if not t_leaves:
    return None, "no array"
  if len(n_leaves) != len(t_leaves):
    return float("inf"), f"torch gives {len(t_leaves)} arrays, nnx {len(n_leaves)}"
  worst = 0.0
  for n, t in zip(n_leaves, t_leaves):
    aligned = to_torch_layout(n, t.shape, path, output_layout)
    if aligned is None:
      return float("inf"), f"shape mismatch: torch {tuple(t.shape)}, nnx {tuple(n.shape)}"
    worst = max(worst, _rel(aligned, t))
  return worst, ""


def _input_converter(input_layout: Any, torch_module: Any, nnx_module: Any) -> Callable[[np.ndarray], np.ndarray]:
  if callable(input_layout):
    return input_layout
  if input_layout == "auto":
    from flax import nnx
    from torch import nn

    t_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in torch_module.modules())
    n_conv = any(isinstance(m, (nnx.Conv, nnx.ConvTranspose)) for _, m in nnx.iter_modules(nnx_module))
    input_layout = "channels_last" if (t_conv and n_conv) else "same"
  if input_layout == "same":
    return lambda x: x
  if input_layout == "channels_last":
    return lambda x: np.moveaxis(x, 1, -1) if (x.ndim >= 3 and x.dtype.kind == "f") else x
  raise ValueError(f"compare_forward: expected input_layout 'auto', 'same', 'channels_last' or a callable, "
                   f"got {input_layout!r}")


def _as_numpy(x: Any, dtype: Any) -> np.ndarray:
  if hasattr(x, "detach"):
    x = x.detach().cpu().numpy()
  a = np.asarray(x)
  if dtype is not None and a.dtype.kind == "f":
    a = a.astype(dtype)
  return a


def _model_dtype(torch_module: Any) -> str | None:
  for p in torch_module.parameters():
    return str(p.dtype).replace("torch.", "")
  return None


def compare_forward(torch_module: Any, nnx_module: Any, *inputs: Any, rtol: float | None = None,
                    dtype: str | None = None, input_layout: Any = "auto",
                    output_layout: LayoutHook | None = None, module_map: Mapping[str, str] | None = None,
                    probe: bool = True, weight_map: Any = None) -> ForwardReport:
  """Run a torch module and its nnx port on the same inputs; compare every submodule's output.

  Every submodule call is recorded on both sides (torch with forward hooks; nnx by temporarily
  wrapping ``__call__`` of the submodule classes, restored afterwards even on error). Submodules
  are paired by path: torch's ``layer1.0.conv1`` is nnx's ``('layer1', 0, 'conv1')`` (and
  ``nnx.Sequential``'s ``layers`` step is skipped, as torch's ``nn.Sequential`` has none); the
  k-th call of a torch submodule pairs with the k-th call of its nnx twin. For each call the
  report gives the output shapes and the relative error (parity's measure, see
  :mod:`parity._compare`) of the inputs and of the outputs.

  The **first divergence** is the first submodule, in torch's completion order (children before
  their parent), whose output differs beyond ``rtol`` while its inputs agreed. "Its inputs
  agreed" is tested directly: torch's submodule is rerun on the nnx submodule's own inputs (in
  torch's layout; buffers restored afterwards) and the nnx output must still differ from that
  (column ``local rel``), so float32 rounding amplified from upstream is not blamed on a correct
  layer (status ``downstream``). Where no rerun is possible the recorded inputs must agree within
  ``rtol``. Below float64, a submodule whose nnx output is as close to torch's float64 rerun (on
  the same inputs) as 4x torch's own output plus ``rtol`` is within rounding (status
  ``rounding``: a float32 matmul whose entries cancel carries ~1e-5 relative error in any
  implementation), and the model passes when its output is within ``rtol`` or within rounding. When the first divergence is a parent whose children all agree, the note names the
  first child whose inputs already differ: the difference is in the parent's own code before it.

  Both models are left as they were: buffers and nnx state a training-mode forward pass changes
  (BatchNorm statistics) are restored afterwards.

  Known flax-vs-torch traps are recognised on the paired modules' configuration (LayerNorm /
  GroupNorm / BatchNorm eps, BatchNorm momentum convention, mode and running variance, a dropped
  bias, asymmetric ``'SAME'`` padding, active dropout; see :mod:`parity._port._traps`) and, at the
  first divergence, by rerunning the diverging torch submodule on its recorded inputs with the
  flax convention patched in (tanh GELU, flax's norm epsilons): a rerun that reproduces the flax
  output confirms the trap.

  Args:
    torch_module: the reference ``torch.nn.Module`` (put it in ``eval()`` mode unless you want
      training-mode behaviour on both sides).
    nnx_module: the port, a ``flax.nnx.Module``, called eagerly as ``nnx_module(*inputs)``.
    *inputs: the inputs in torch's layout (numpy arrays or tensors).
    rtol: relative tolerance; default float32 1e-5, float64 1e-10.
    dtype: the dtype floating inputs are cast to (default: the torch module's parameter dtype).
    input_layout: how a torch-layout input becomes the nnx input: ``"auto"`` (channels-last, axis
      1 moved last, for floating inputs of rank >= 3 when both models hold convolutions; else
      unchanged), ``"same"``, ``"channels_last"``, or a callable ``array -> array``.
    output_layout: optional ``(torch_path, nnx_array, torch_shape) -> array in torch layout``, for
      layouts the automatic rule (equal shapes; ``(N, *S, C)`` <-> ``(N, C, *S)``) cannot see.
      Return None to fall through to the automatic rule.
    module_map: ``{torch path: nnx dotted path}`` overrides for submodules whose names differ.
    probe: rerun the diverging torch submodule under each known trap to name it (default True).
    weight_map: the map :func:`parity.copy_weights` returned; when given, the nnx parameters are
      first compared with torch's through it, and any that differ are reported (trap
      ``weights_differ``, naming them; a divergence at a module holding one says so).

  Returns:
    A :class:`~parity._port._report.ForwardReport`.

  Examples:
    >>> import numpy as np, torch
    >>> from flax import nnx
    >>> import parity
    >>> t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    >>> n = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.LayerNorm(4, rngs=nnx.Rngs(0)))
    >>> wm = parity.copy_weights(t, n)
    >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)
    >>> r = parity.compare_forward(t, n, x, rtol=1e-7)  # flax's LayerNorm epsilon is 1e-6, torch's 1e-5
    >>> r.passed, r.first_divergence.submodule, r.first_divergence.trap
    (False, '1', 'layernorm_eps')
    >>> n.layers[1].epsilon = 1e-5
    >>> parity.compare_forward(t, n, x).passed
    True
  """
  tol = rtol if rtol is not None else None
  dtype = dtype or _model_dtype(torch_module) or "float32"
  if tol is None:
    tol = DEFAULT_RTOL.get(dtype, 1e-5)
  import jax.numpy as jnp
  import torch

  arrays = [_as_numpy(x, dtype) for x in inputs]
  to_nnx = _input_converter(input_layout, torch_module, nnx_module)
  t_in = [torch.from_numpy(np.array(a, copy=True)) for a in arrays]
  n_in = [jnp.asarray(np.ascontiguousarray(to_nnx(a))) for a in arrays]
  import jax
  from flax import nnx

  saved_torch = {n: b.detach().clone() for n, b in torch_module.named_buffers()}
  saved_nnx = jax.tree_util.tree_map(lambda v: v, nnx.state(nnx_module))  # fresh variables, same arrays
  try:
    with torch_calls(torch_module) as t_calls, torch.no_grad():
      torch_module(*t_in)
    with nnx_calls(nnx_module) as n_calls:
      nnx_module(*n_in)
  finally:  # leave both models as they were (a training-mode BatchNorm updated its statistics)
    with torch.no_grad():
      for n, b in torch_module.named_buffers():
        if n in saved_torch:
          b.copy_(saved_torch[n])
    nnx.update(nnx_module, saved_nnx)
  report = _build_report(torch_module, nnx_module, list(t_calls), list(n_calls), tol, dtype,
                         output_layout, dict(module_map or {}), probe)
  if weight_map is not None:
    _check_weights(report, torch_module, nnx_module, weight_map)
  return report


def _check_weights(report: ForwardReport, torch_module: Any, nnx_module: Any, weight_map: Any) -> None:
  """Compare the nnx parameters with torch's through ``weight_map``; report those that differ."""
  from flax import nnx

  ours = weight_map.tree_to_torch(nnx.state(nnx_module, nnx.Param))
  bad = [n for n, p in torch_module.named_parameters()
         if n in ours and not np.array_equal(np.asarray(ours[n]), p.detach().cpu().numpy())]
  if not bad:
    return
  report.traps.insert(0, Trap("weights_differ", "", f"the nnx parameters {bad} differ from torch's (through the "
                              "weight map): copy the weights again (parity.copy_weights) after changing either "
                              "model", confirmed=True))
  d = report.first_divergence
  if d is not None:
    owner = d.submodule or ""
    mine = [n for n in bad if n.rpartition(".")[0] == owner or (owner and n.startswith(owner + "."))
            or not owner]
    if mine:
      report.first_divergence = dataclasses.replace(d, trap=d.trap or "weights_differ",
                                                    note=(d.note + "; " if d.note else "") + f"its weights {mine} "
                                                    "differ from torch's")


def _pair_path(torch_path: str, module_map: Mapping[str, str]) -> str:
  return module_map.get(torch_path, torch_path)


def _substitute(args: Any, kwargs: Any, leaves: list[Any]) -> tuple[Any, Any]:
  """``(args, kwargs)`` with their tensors replaced, in :func:`torch_leaves` order, by ``leaves``."""
  import torch

  it = iter(leaves)

  def walk(x):
    if isinstance(x, torch.Tensor):
      return next(it)
    if isinstance(x, dict):
      return {k: walk(v) for k, v in x.items()}
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
      return tuple(walk(v) for v in x)
    if isinstance(x, list):
      return [walk(v) for v in x]
    return x

  return walk(args), walk(kwargs)


def _local_args(tc: Call, nc: Call, output_layout: LayoutHook | None) -> tuple[Any, Any] | None:
  """torch's recorded arguments of ``tc`` with the nnx side's inputs put in (torch layout), or None."""
  import torch

  from parity._port._capture import torch_leaves

  t_leaves = torch_leaves((tc.args, tc.kwargs))
  if len(nc.inputs) != len(t_leaves) or not t_leaves:
    return None
  new = []
  for n_arr, t in zip(nc.inputs, t_leaves):
    aligned = to_torch_layout(n_arr, tuple(t.shape), tc.path, output_layout)
    if aligned is None:
      return None
    new.append(torch.from_numpy(np.array(aligned, copy=True)).to(t.dtype))
  return _substitute(tc.args, tc.kwargs, new)


def _run_in_place(module: Any, args: Any, kwargs: Any) -> list[np.ndarray]:
  """``module(*args, **kwargs)`` without gradients, its buffers (BatchNorm statistics) restored afterwards."""
  import torch

  from parity._port._capture import torch_leaves

  saved = {n: b.detach().clone() for n, b in module.named_buffers()}
  try:
    with torch.no_grad():
      out = module(*args, **kwargs)
  finally:
    with torch.no_grad():
      for n, b in module.named_buffers():
        if n in saved:
          b.copy_(saved[n])
  return [t.detach().cpu().numpy() for t in torch_leaves(out)]


def _local_error(tc: Call, nc: Call, output_layout: LayoutHook | None) -> float | None:
  """The nnx output's error against torch's submodule run on the nnx submodule's own inputs."""
  local = _local_args(tc, nc, output_layout)
  if local is None:
    return None
  try:
    out = _run_in_place(tc.module, *local)
  except Exception:  # noqa: BLE001 - no local rerun possible: fall back to comparing inputs
    return None
  err, _ = _leaves_error(nc.outputs, out, tc.path, output_layout)
  return err


ROUNDING_FACTOR = 4.0


def _within_rounding(tc: Call, nc: Call, output_layout: LayoutHook | None, tol: float) -> bool:
  """Low precision only: is the nnx output as close to torch's float64 rerun (on the nnx inputs) as a few
  times torch's own low-precision output is? Then the difference is rounding, not a bug."""
  import torch

  local = _local_args(tc, nc, output_layout)
  if local is None:
    return False
  try:
    own = _run_in_place(tc.module, *local)
    wide = copy.deepcopy(tc.module).double()
    up = lambda t: t.double() if t.is_floating_point() else t  # noqa: E731
    args, kwargs = _substitute(*local, [up(t) for t in _torch_leaves(local)])
    with torch.no_grad():
      ref = [t.detach().cpu().numpy() for t in _torch_leaves(wide(*args, **kwargs))]
  except Exception:  # noqa: BLE001 - no float64 rerun possible: not provably rounding
    return False
  e_torch, _ = _leaves_error([np.asarray(o) for o in own], ref, tc.path, None)
  e_nnx, _ = _leaves_error(nc.outputs, ref, tc.path, output_layout)
  if e_torch is None or e_nnx is None:
    return False
  return e_nnx <= ROUNDING_FACTOR * e_torch + tol


def _torch_leaves(x):
  from parity._port._capture import torch_leaves

  return torch_leaves(x)


def _build_report(torch_module, nnx_module, t_calls: list[Call], n_calls: list[Call], tol: float, dtype: str,
                  output_layout, module_map, probe) -> ForwardReport:
  by_key = {(c.path, c.call): c for c in n_calls}
  rows: list[ForwardRow] = []
  pairs: dict[int, Call] = {}
  traps: list[Trap] = []
  seen_traps: set[tuple[str, str]] = set()
  notes: dict[int, str] = {}
  for i, tc in enumerate(t_calls):
    npath = _pair_path(tc.path, module_map)
    nc = by_key.get((npath, tc.call))
    t_shape = tuple(tc.outputs[0].shape) if tc.outputs else None
    if nc is None or nc.traced:
      rows.append(ForwardRow(tc.path, None if nc is None else npath, tc.call, tc.type, t_shape, None, None, None,
                             None, "unpaired" if nc is None else "traced (not comparable)"))
      continue
    pairs[i] = nc
    if tc.call == 0:
      for trap in _traps.config_traps(tc.module, nc.module, tc.path):
        if (trap.name, trap.where) not in seen_traps:
          seen_traps.add((trap.name, trap.where))
          traps.append(trap)
    out_rel, note = _leaves_error(nc.outputs, tc.outputs, tc.path, output_layout)
    in_rel, _ = _leaves_error(nc.inputs, tc.inputs, tc.path, output_layout)
    n_shape = tuple(nc.outputs[0].shape) if nc.outputs else None
    local_rel = None
    if out_rel is None:
      status = "no array output"
    elif out_rel <= tol:
      status = "ok"
    else:
      local_rel = _local_error(tc, nc, output_layout) if not note else None
      if local_rel is not None:
        status = "DIVERGES" if not local_rel <= tol else "downstream"
      else:
        status = "DIVERGES" if (in_rel is None or in_rel <= tol) else "downstream"
      if status == "DIVERGES" and np.dtype(dtype).itemsize < 8 and _within_rounding(tc, nc, output_layout, tol):
        status = "rounding"
    rows.append(ForwardRow(tc.path, npath, tc.call, tc.type, t_shape, n_shape, in_rel, out_rel, local_rel, status))
    notes[len(rows) - 1] = note
  root = next((r for r in reversed(rows) if r.torch_path == "" and r.output_rel is not None), None)
  output_rel = root.output_rel if root is not None else float("inf")
  first = None
  for i, row in enumerate(rows):
    if row.status != "DIVERGES":
      continue
    tc = t_calls[i]
    trap_name, traps = _explain(tc, pairs[i], traps, tol, output_layout, probe)
    note = notes.get(i) or _inside_note(rows, i)
    first = Divergence("output", float(row.output_rel), tol, submodule=row.torch_path, trap=trap_name, note=note)
    break
  root_ok = root is not None and root.status in ("ok", "rounding")
  passed = first is None and root_ok
  if first is None and not passed:
    first = Divergence("output", output_rel, tol, submodule="",
                       note="every submodule agrees when run on the same inputs: float rounding amplified "
                            "through the model; loosen rtol if this is the expected scale")
  return ForwardReport(passed, first, rows, traps, output_rel, dtype, tol)


def _inside_note(rows: list[ForwardRow], i: int) -> str:
  """For a diverging parent: the first descendant whose inputs already differ, or that they all agree."""
  parent = rows[i].torch_path
  prefix = parent + "." if parent else ""
  kids = [r for r in rows[:i] if r.torch_path.startswith(prefix) and r.torch_path != parent
          and r.output_rel is not None]
  bad_in = next((r for r in kids if r.status == "downstream"), None)
  if bad_in is not None:
    j = rows.index(bad_in)
    start = max((k for k in range(j) if rows[k] in kids and rows[k].status == "ok"), default=-1)
    unpaired = [r.torch_path for r in rows[start + 1:j]
                if r.status == "unpaired" and r.torch_path.startswith(prefix)]
    where = f" (torch runs {', '.join(unpaired)} there, which has no nnx twin)" if unpaired else ""
    return (f"its submodules agree until the inputs of {bad_in.torch_path} already differ: the difference "
            f"is in {parent or 'the model'}'s own forward code before {bad_in.torch_path}{where}")
  if kids:
    return f"every submodule inside it agrees: the difference is in {parent or 'the model'}'s own forward code"
  return ""


def _explain(tc: Call, nc: Call, traps: list[Trap], tol: float, output_layout, probe: bool
             ) -> tuple[str | None, list[Trap]]:
  """The trap that explains the divergence at ``tc``.

  A configuration trap at or inside it is confirmed when torch's submodule, rerun on the nnx inputs
  with the flax setting (``Trap.torch_fix``), reproduces the nnx output; failing those, each probe
  of :data:`parity._port._traps.PROBES` (tanh GELU, flax's norm epsilons) is tried the same way. A
  rerun confirms only when it brings the error within tolerance and 10x below the unpatched rerun.
  """
  prefix = tc.path + "." if tc.path else ""
  inside = [t for t in traps if t.where == tc.path or t.where.startswith(prefix)]
  observed = [t for t in inside if t.name not in ("batchnorm_running_var", "batchnorm_momentum")]
  local = _local_args(tc, nc, output_layout) or (tc.args, tc.kwargs)
  base = _local_error(tc, nc, output_layout)

  def reproduces(out: list[np.ndarray]) -> bool:
    err, _ = _leaves_error(nc.outputs, out, tc.path, output_layout)
    return err is not None and err <= 10 * tol and (base is None or err < base / 10)

  if probe:
    for trap in observed:
      if trap.torch_fix is None:
        continue
      rel = trap.where[len(prefix):] if prefix else trap.where
      try:
        if reproduces(_traps.rerun(tc.module, *local, None, {rel: trap.torch_fix})):
          return trap.name, [dataclasses.replace(t, confirmed=True) if t is trap else t for t in traps]
      except Exception:  # noqa: BLE001 - a failed rerun only means the trap is not confirmed
        pass
    for name, patch, message in _traps.PROBES:
      try:
        out = _traps.rerun(tc.module, *local, patch)
      except Exception:  # noqa: BLE001 - a probe that cannot run explains nothing
        continue
      if reproduces(out):
        return name, [*traps, Trap(name, tc.path, message, confirmed=True)]
  if observed:
    return observed[0].name, traps
  return None, traps

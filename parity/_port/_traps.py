"""The usual flax-vs-torch porting traps: recognised in the configuration, confirmed by a rerun.

* ``layernorm_eps`` / ``groupnorm_eps``: flax's ``LayerNorm`` and ``GroupNorm`` default to
  ``epsilon=1e-6``, torch's to ``eps=1e-5``.
* ``batchnorm_eps``: the two BatchNorm epsilons differ.
* ``batchnorm_momentum``: flax's running average keeps ``momentum`` of the old value
  (``ra = momentum * ra + (1 - momentum) * batch``), torch's replaces ``momentum`` of it
  (``ra = (1 - momentum) * ra + momentum * batch``): flax ``momentum = 1 - torch momentum``
  (torch 0.1 is flax 0.9; flax's default 0.99 is torch 0.01).
* ``batchnorm_running_var``: in training mode torch stores the *unbiased* batch variance
  (``n / (n - 1)`` times the biased one) in ``running_var``; flax stores the biased one. The
  outputs in training mode agree (both normalise with the biased variance); the running
  variances, and every evaluation-mode output after training, do not.
* ``batchnorm_mode``: torch's module is in training mode and the flax one uses running averages,
  or the other way round.
* ``gelu_tanh``: ``flax.nnx.gelu`` (and ``jax.nn.gelu``) default to ``approximate=True``, the tanh
  form; torch's ``nn.GELU()`` / ``F.gelu`` default to the exact erf form.
* ``same_padding``: flax's ``padding="SAME"`` pads asymmetrically (the extra row and column at
  the end) for even kernels or strides above 1; torch's integer ``padding=k // 2`` is symmetric.
* ``dropped_bias``: one side has a bias and the other has none.
* ``dropout``: a torch Dropout with ``p > 0`` in training mode makes the outputs random.

Configuration checks look at the paired modules' attributes. A rerun (:func:`probes`) reruns the
diverging torch submodule on its recorded inputs with the flax convention patched in (tanh GELU,
flax's LayerNorm epsilon, ...) and confirms the trap when that reproduces the flax output.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

from parity._port._report import Trap


def _tuple(x: Any) -> tuple:
  if isinstance(x, (tuple, list)):
    return tuple(x)
  return (x,)


def config_traps(torch_mod: Any, nnx_mod: Any, where: str) -> list[Trap]:
  """Traps visible in the configuration of a torch module and its paired nnx module."""
  from flax import nnx
  from torch import nn

  out: list[Trap] = []
  if isinstance(torch_mod, nn.LayerNorm) and isinstance(nnx_mod, nnx.LayerNorm):
    if torch_mod.eps != nnx_mod.epsilon:
      out.append(Trap("layernorm_eps", where, f"LayerNorm eps: torch {torch_mod.eps:g}, flax {nnx_mod.epsilon:g} "
                      f"(flax's default is 1e-6, torch's 1e-5): build the flax LayerNorm with "
                      f"epsilon={torch_mod.eps:g}", torch_fix=("eps", nnx_mod.epsilon)))
  if isinstance(torch_mod, nn.GroupNorm) and isinstance(nnx_mod, nnx.GroupNorm):
    if torch_mod.eps != nnx_mod.epsilon:
      out.append(Trap("groupnorm_eps", where, f"GroupNorm eps: torch {torch_mod.eps:g}, flax {nnx_mod.epsilon:g} "
                      f"(flax's default is 1e-6): pass epsilon={torch_mod.eps:g}",
                      torch_fix=("eps", nnx_mod.epsilon)))
  if isinstance(torch_mod, nn.modules.batchnorm._BatchNorm) and isinstance(nnx_mod, nnx.BatchNorm):
    out += _batchnorm_traps(torch_mod, nnx_mod, where)
  if isinstance(torch_mod, (nn.Linear, nn.modules.conv._ConvNd)) and isinstance(
      nnx_mod, (nnx.Linear, nnx.Conv, nnx.ConvTranspose)):
    t_bias, n_bias = torch_mod.bias is not None, bool(getattr(nnx_mod, "use_bias", True))
    if t_bias != n_bias:
      out.append(Trap("dropped_bias", where, f"bias: torch {'has one' if t_bias else 'has none'}, flax "
                      f"{'has one' if n_bias else 'has none (use_bias=False)'}"))
  if isinstance(torch_mod, nn.modules.conv._ConvNd) and isinstance(nnx_mod, (nnx.Conv, nnx.ConvTranspose)):
    out += _padding_traps(torch_mod, nnx_mod, where)
  if isinstance(torch_mod, nn.modules.dropout._DropoutNd) and torch_mod.training and torch_mod.p > 0:
    out.append(Trap("dropout", where, f"torch Dropout(p={torch_mod.p}) is in training mode: outputs are random; "
                    "call torch_module.eval() (and run the nnx model deterministic) to compare"))
  return out


def _batchnorm_traps(t: Any, n: Any, where: str) -> list[Trap]:
  out = []
  if t.eps != n.epsilon:
    out.append(Trap("batchnorm_eps", where, f"BatchNorm eps: torch {t.eps:g}, flax {n.epsilon:g}",
                    torch_fix=("eps", n.epsilon)))
  if t.momentum is None:
    out.append(Trap("batchnorm_momentum", where, "torch momentum=None (a cumulative average of every batch) "
                    "has no flax equivalent"))
  elif abs(n.momentum - (1.0 - t.momentum)) > 1e-12:
    out.append(Trap("batchnorm_momentum", where,
                    f"BatchNorm momentum: torch {t.momentum:g} replaces that fraction of the running average, "
                    f"flax {n.momentum:g} keeps that fraction; flax momentum must be 1 - torch momentum = "
                    f"{1.0 - t.momentum:g}"))
  if t.training == bool(n.use_running_average) and t.track_running_stats:
    out.append(Trap("batchnorm_mode", where,
                    f"torch BatchNorm is in {'training' if t.training else 'eval'} mode but flax "
                    f"use_running_average={n.use_running_average}"))
  if t.training and t.track_running_stats:
    out.append(Trap("batchnorm_running_var", where,
                    "in training mode torch updates running_var with the unbiased batch variance "
                    "(n/(n-1) x the biased one), flax's BatchNorm with the biased one: outputs agree in "
                    "training mode, the running variances (and eval outputs after training) do not"))
  return out


def _padding_traps(t: Any, n: Any, where: str) -> list[Trap]:
  pad = n.padding
  if not (isinstance(pad, str) and pad.upper() == "SAME") or isinstance(t.padding, str):
    return []
  strides = _tuple(n.strides if n.strides is not None else 1)
  kernel = _tuple(n.kernel_size)
  if any(s > 1 for s in strides) or any(k % 2 == 0 for k in kernel):
    return [Trap("same_padding", where,
                 f"flax padding='SAME' with kernel {kernel} and strides {strides} pads asymmetrically "
                 f"(the extra row/column at the end); torch padding={t.padding} is symmetric: give flax "
                 f"explicit padding={tuple((p, p) for p in t.padding)}")]
  return []


# --- reruns -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
  old = getattr(obj, name)
  setattr(obj, name, value)
  try:
    yield
  finally:
    setattr(obj, name, old)


def _gelu_tanh() -> contextlib.AbstractContextManager:
  import torch.nn.functional as F

  exact = F.gelu

  def gelu(input, approximate="none"):  # noqa: A002 - torch's name
    return exact(input, approximate="tanh")

  return _patched(F, "gelu", gelu)


def _norm_eps(fn_name: str, eps: float) -> Callable[[], contextlib.AbstractContextManager]:
  def make():
    import torch.nn.functional as F

    original = getattr(F, fn_name)

    def patched(*args, **kwargs):
      if len(args) >= 5:  # F.layer_norm / F.group_norm: eps is the fifth argument
        args = (*args[:4], eps, *args[5:])
      else:
        kwargs["eps"] = eps
      return original(*args, **kwargs)

    return _patched(F, fn_name, patched)

  return make


PROBES: tuple[tuple[str, Callable[[], contextlib.AbstractContextManager], str], ...] = (
    ("gelu_tanh", _gelu_tanh, "torch's GELU is exact (erf), the flax side uses the tanh approximation "
     "(nnx.gelu / jax.nn.gelu default approximate=True): call nnx.gelu(x, approximate=False)"),
    ("layernorm_eps", _norm_eps("layer_norm", 1e-6), "the flax side normalises with LayerNorm epsilon 1e-6 "
     "(flax's default), torch with 1e-5: pass epsilon=1e-5"),
    ("groupnorm_eps", _norm_eps("group_norm", 1e-6), "the flax side normalises with GroupNorm epsilon 1e-6 "
     "(flax's default), torch with 1e-5: pass epsilon=1e-5"),
)


def rerun(module: Any, args: Any, kwargs: Any, patch: Callable[[], contextlib.AbstractContextManager] | None,
          setattrs: dict[str, tuple[str, Any]] | None = None) -> list[Any]:
  """Rerun a deep copy of a torch module on recorded inputs under ``patch`` (the original is untouched).

  ``setattrs``: ``{submodule path: (attribute, value)}`` set on the copy before the rerun.
  """
  import torch

  from parity._port._capture import torch_leaves

  clone = copy.deepcopy(module)
  for path, (attr, value) in (setattrs or {}).items():
    setattr(clone.get_submodule(path) if path else clone, attr, value)
  with torch.no_grad(), (patch() if patch else contextlib.nullcontext()):
    out = clone(*copy.deepcopy(args), **copy.deepcopy(kwargs))
  return [t.detach().cpu().numpy() for t in torch_leaves(out)]

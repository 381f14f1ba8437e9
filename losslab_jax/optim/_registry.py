"""The torch twin of each optimizer: one small :class:`TorchTwin` entry beside each optimizer.

Every optimizer module ends with a block that registers its twin::

    # --- torch twin (read by ll.interop.torch and the docs) ---
    from losslab_jax.optim import _registry  # noqa: E402

    _registry.register_torch_twin(_registry.TorchTwin(
        torch_class="torch.optim.SGD", factory=sgd, state_type=SGDState, torch_keeps_step=False,
        kwarg_map={"momentum": "momentum", "dampening": "dampening", "weight_decay": "weight_decay",
                   "nesterov": "nesterov", "maximize": "maximize"},
        momentum_key="momentum"))

``ll.interop.torch`` (conversion of torch optimizers and their state), ``parity`` and the docs
read the entries through :func:`torch_twins`; nothing else keeps per-optimizer facts. This module
never imports torch: a twin names its torch class by its public dotted path.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

import optax


@dataclasses.dataclass(frozen=True)
class TorchTwin:
  """What converting between a losslab_jax optimizer and its torch twin needs to know.

  Attributes:
    torch_class: the twin's public dotted path, e.g. ``"torch.optim.SGD"`` or
      ``"lion_pytorch.Lion"`` (module, then class name); a converter imports the module lazily and
      matches the optimizer's class by identity (subclasses are never taken for their parent).
    factory: the losslab_jax alias, e.g. ``ll.optim.sgd``; called with ``lr=`` and the mapped
      keywords.
    state_type: the NamedTuple state of the ``scale_by_<name>`` transformation inside the alias
      (its fields are torch's per-parameter state keys, plus ``step``).
    torch_keeps_step: whether torch keeps a per-parameter ``"step"`` in its state (SGD, Lion and
      Muon keep none: their count must then come from elsewhere, e.g. a scheduler).
    kwarg_map: torch param-group key -> keyword of ``factory``, for every hyperparameter except
      ``lr`` (always passed as ``lr=``). Keys missing from a torch group are left to the
      factory's default (which is torch's). Group keys not named here and not torch kernel
      switches (``foreach``, ``fused``, ``capturable``, ``differentiable``) are unknown to the
      converter.
    momentum_key: the torch group key a momentum-cycling scheduler (OneCycleLR, CyclicLR) drives:
      ``"momentum"`` (the value itself) or ``"betas"`` (its first element); ``None`` if the
      optimizer has no momentum a scheduler can cycle.
    scalar_fields: state fields torch keeps as one 0-d tensor per parameter, besides ``step``
      (NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``): a converter checks they agree across
      a group and stores one value.
    build: optional ``build(kwargs, optimizer) -> tx`` used instead of ``factory(**kwargs)`` when
      the torch object holds a fact outside its param groups (lion-pytorch's decoupled decay
      divides by the initial lr). ``kwargs`` are the mapped keywords with plain Python values
      (``lr`` included, possibly a schedule); ``optimizer`` is the torch optimizer or ``None``.
    notes: one line for the docs (differences, restrictions), may be empty.

  Examples:
    >>> import losslab_jax as ll
    >>> twin = ll.optim.torch_twins()["torch.optim.Adam"]
    >>> twin.state_type.__name__, twin.torch_keeps_step, twin.kwarg_map["betas"]
    ('AdamState', True, 'betas')
  """

  torch_class: str
  factory: Callable[..., optax.GradientTransformation]
  state_type: type
  torch_keeps_step: bool
  kwarg_map: Mapping[str, str]
  momentum_key: str | None = None
  scalar_fields: tuple[str, ...] = ()
  build: Callable[[Mapping[str, Any], Any], optax.GradientTransformation] | None = None
  notes: str = ""

  def __post_init__(self):
    if "." not in self.torch_class:
      raise ValueError(f"TorchTwin: expected torch_class as 'module.Class', got {self.torch_class!r}")
    if self.momentum_key not in (None, "momentum", "betas"):
      raise ValueError(f"TorchTwin: expected momentum_key None, 'momentum' or 'betas', got {self.momentum_key!r}")
    object.__setattr__(self, "kwarg_map", types.MappingProxyType(dict(self.kwarg_map)))
    object.__setattr__(self, "scalar_fields", tuple(self.scalar_fields))

  @property
  def torch_name(self) -> str:
    """The class name alone, e.g. ``"SGD"``."""
    return self.torch_class.rsplit(".", 1)[1]

  def make(self, kwargs: Mapping[str, Any], optimizer: Any = None) -> optax.GradientTransformation:
    """The transformation for one param group's mapped keywords (``lr`` included)."""
    if self.build is not None:
      return self.build(kwargs, optimizer)
    return self.factory(**kwargs)


_TWINS: dict[str, TorchTwin] = {}


def register_torch_twin(twin: TorchTwin) -> TorchTwin:
  """Add ``twin`` to the registry (keyed by ``twin.torch_class``); returns it.

  Raises:
    ValueError: another twin is registered for the same torch class.
  """
  old = _TWINS.get(twin.torch_class)
  if old is not None and old != twin:
    raise ValueError(f"register_torch_twin: expected one twin per torch class, got a second for {twin.torch_class}")
  _TWINS[twin.torch_class] = twin
  return twin


def torch_twins() -> Mapping[str, TorchTwin]:
  """Every registered twin, ``{torch_class: TorchTwin}`` in registration order (read-only)."""
  return types.MappingProxyType(dict(_TWINS))

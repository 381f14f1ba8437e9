"""``Scheme``: a loss, an optimizer and its schedule, plus why they were chosen."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import optax


@dataclasses.dataclass(frozen=True, eq=False)
class Scheme:
  """A training recipe: ``loss_fn``, ``optimizer`` (schedule and clipping included), ``schedule``.

  Unpacks like the 3-tuple of API.md §5, ``loss_fn, optimizer, schedule = scheme``; the other
  fields are read by name.

  Attributes:
    loss_fn: ``loss_fn(*arrays) -> scalar``. Its arguments depend on the task (see the scheme or
      the config's loss section): ``(logits, labels)``, ``(prediction, target)``, ``(anchor,
      positive, negative)``, ``(x1, x2, target)``.
    optimizer: an ``optax.GradientTransformationExtraArgs`` that already contains gradient
      clipping, parameter groups and the learning-rate schedule. Use it as is with
      ``optax.apply_updates`` or ``flax.nnx.Optimizer``; do not apply ``schedule`` a second time.
    schedule: the learning-rate schedule ``count -> lr`` of the default parameter group, for
      logging (``schedule(step)`` is the lr the ``step``-th update, 0-based, uses). ``None`` for a
      constant lr or a metric-driven ``reduce_lr_on_plateau``.
    rationale: why these components were chosen, in words.
    spec: the configuration mapping this scheme was built from. ``config.build(scheme.spec)``
      builds the same scheme again; edit a copy of it to derive a variant.
  """

  loss_fn: Callable[..., jax.Array]
  optimizer: optax.GradientTransformationExtraArgs
  schedule: Callable[[Any], jax.Array] | None
  rationale: str = ""
  spec: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __iter__(self) -> Iterator[Any]:
    """``loss_fn, optimizer, schedule = scheme``."""
    return iter((self.loss_fn, self.optimizer, self.schedule))

  def __repr__(self) -> str:
    first = self.rationale.strip().splitlines()[0] if self.rationale.strip() else ""
    return f"Scheme(loss={_loss_label(self.spec)!s}, optimizer={_opt_label(self.spec)!s}, rationale={first!r})"


def _loss_label(spec: Mapping[str, Any]) -> str:
  loss = spec.get("loss", {}) if isinstance(spec, Mapping) else {}
  if "terms" in loss:
    return " + ".join(str(t.get("name")) for t in loss["terms"])
  return str(loss.get("name"))


def _opt_label(spec: Mapping[str, Any]) -> str:
  opt = spec.get("optimizer", {}) if isinstance(spec, Mapping) else {}
  return str(opt.get("name"))

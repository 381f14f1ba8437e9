"""torch parameter groups (differential learning rates, frozen parameters) as one optax transformation."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import optax


def _check_labels(transforms: Mapping[Hashable, Any], labels: Any) -> None:
  used = set(jax.tree.leaves(labels))
  unknown = sorted(map(repr, used - set(transforms)))
  if unknown:
    groups = ", ".join(sorted(map(repr, transforms)))
    raise ValueError(
        f"param_groups: expected every label to name a group in `transforms` ({groups}), got unknown labels"
        f" {', '.join(unknown)}; add a transform for each (optax.set_to_zero() for a frozen group)")


def param_groups(transforms: Mapping[Hashable, optax.GradientTransformation],
                 labels: Any | Callable[[optax.Params], Any]) -> optax.GradientTransformationExtraArgs:
  """torch's parameter groups: a different optimizer (or hyperparameters) per group of leaves.

  ``torch.optim.Adam([{"params": backbone, "lr": 1e-4}, {"params": head, "lr": 1e-3}])`` becomes

  .. code-block:: python

     tx = ll.optim.param_groups(
         {"backbone": ll.optim.adam(lr=1e-4), "head": ll.optim.adam(lr=1e-3)},
         labels={"backbone": "backbone", "head": "head"})  # a label per leaf, or a prefix of the tree

  Each group's transformation sees only its own leaves (its state holds nothing for the others)
  and keeps its own step count, as each torch group's parameters do. Per-group schedules work as
  torch's per-group ``LambdaLR`` lambdas do: give each group's optimizer its own schedule.

  Frozen parameters. In torch a parameter whose ``.grad`` is ``None`` (``requires_grad=False``, or
  not reached by ``backward``) is skipped: it does not move, and its state (``step``, moments) does
  not advance or is never created. A zero gradient is *not* the same: Adam still moves a parameter
  with zero gradient, and its step count advances. To get torch's behaviour, label the frozen
  leaves with a group mapped to ``optax.set_to_zero()``::

    tx = ll.optim.param_groups({"train": ll.optim.adamw(1e-3), "frozen": optax.set_to_zero()},
                               labels=lambda params: {"encoder": "frozen", "head": "train"})

  Those leaves then get a zero update (``apply_updates`` leaves them unchanged, even with weight
  decay) and no optimizer state at all; the other groups' states and step counts are unaffected.
  (``jax.lax.stop_gradient`` alone is not enough: the optimizer still sees a zero gradient.)

  Args:
    transforms: group name -> transformation (any optax transformation; an optimizer from
      ``ll.optim``, ``optax.set_to_zero()`` for frozen leaves, a chain with clipping, ...).
    labels: a pytree with the params' structure (or a prefix of it) whose leaves are group names,
      or a callable ``params -> labels``. The containers must match the params' (an ``nnx.State``
      for ``nnx.Optimizer``): build them from the paths, e.g. ``lambda params:
      jax.tree_util.tree_map_with_path(lambda path, _: "frozen" if path[0].key == "encoder" else
      "train", params)``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (``optax.multi_transform``); extra keyword
    arguments such as ``value=`` reach every group.

  Raises:
    TypeError: ``transforms`` is not a non-empty mapping of transformations.
    ValueError: a label names no group in ``transforms`` (for callable ``labels``: at ``init``).

  Notes:
    Torch twin: ``torch.optim.Optimizer`` parameter groups (``param_groups``). Differences:
    torch's gradient clipping (``clip_grad_norm_``) sees all groups' gradients at once; chain
    :func:`~losslab_jax.optim.clip_grad_norm` *before* ``param_groups`` to get the same, not
    inside a group. torch's ``LBFGS`` has no parameter groups.
    Parity: float64 <= 1e-10, float32 <= 1e-5 (case ``param_groups``).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> params = {k: jnp.array(1.0, jnp.float32) for k in "abc"}
    >>> tx = ll.optim.param_groups({"slow": ll.optim.rprop(lr=0.01), "fast": ll.optim.rprop(lr=0.1),
    ...                             "frozen": optax.set_to_zero()}, {"a": "slow", "b": "fast", "c": "frozen"})
    >>> u, _ = tx.update({"a": jnp.array(2.0), "b": jnp.array(2.0), "c": jnp.array(2.0)}, tx.init(params))
    >>> print({k: round(float(v), 6) for k, v in optax.apply_updates(params, u).items()})
    {'a': 0.99, 'b': 0.9, 'c': 1.0}
  """
  if not isinstance(transforms, Mapping) or not transforms:
    raise TypeError(f"param_groups: expected `transforms` to be a non-empty dict of group name ->"
                    f" optax transformation, got {type(transforms).__name__} {transforms!r}")
  for name, tx in transforms.items():
    if not isinstance(tx, optax.GradientTransformation):
      raise TypeError(f"param_groups: expected `transforms[{name!r}]` to be an optax transformation,"
                      f" got {type(tx).__name__}")
  if not callable(labels):
    _check_labels(transforms, labels)
    return optax.multi_transform(dict(transforms), labels)

  def checked_labels(params):
    out = labels(params)
    _check_labels(transforms, out)
    return out

  return optax.multi_transform(dict(transforms), checked_labels)

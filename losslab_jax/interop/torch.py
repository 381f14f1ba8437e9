"""Move a PyTorch training run to losslab_jax / flax.nnx and back: weights, optimizer, its state, scheduler.

A run stopped in PyTorch continues in flax.nnx on the same trajectory::

    import losslab_jax.interop.torch as llt

    wm = llt.copy_weights(torch_model, nnx_model)            # weights + buffers, flax layouts, in place
    opt = llt.nnx_optimizer_from_torch(nnx_model, optimizer, scheduler, weight_map=wm,
                                       steps_per_epoch=1)    # scheduler.step() after every optimizer.step()
    # ... opt.update(nnx_model, grads) as usual

or, with plain optax and a params dict in torch layout::

    params = llt.params_from_torch(model.named_parameters())            # {name: jax.Array}
    names = llt.torch_param_names(optimizer, model.named_parameters())  # torch's parameter order
    tx = llt.from_torch_optimizer(optimizer, scheduler, param_names=names, steps_per_epoch=1)
    opt_state = llt.optimizer_state_from_torch(tx, optimizer.state_dict(), params,
                                               param_names=names, scheduler=scheduler)

and back: ``optimizer.load_state_dict(llt.optimizer_state_to_torch(opt_state, params, optimizer,
param_names=names))``.

Conversions never guess; each of these is a clear error at conversion time, never wrong numbers:

- **Parameter order.** torch numbers an optimizer's parameters 0, 1, 2, ... (param groups in
  order) and keys its state by those numbers. They are paired with the leaves of a params tree
  only through a weight map (torch names by identity), ``param_names`` (leaf names: a leaf's key
  path joined with dots, ``{"fc": {"weight": w}}`` -> ``"fc.weight"``), the names torch >= 2.6
  keeps in groups built from ``model.named_parameters()``, or shapes that identify every
  parameter. Two parameters that could be confused (a LayerNorm's weight and bias) are refused.
- **Step counts.** torch keeps no step count for SGD and Lion; their state needs ``step_count=``
  (or ``scheduler=``).
- **Scheduler cadence.** A scheduler stepped once per epoch needs ``steps_per_epoch=``; without
  it, conversion is refused unless torch's counters prove per-step stepping.
- **Lambdas.** LambdaLR/MultiplicativeLR lambdas are traced by jax at conversion and checked
  against torch's values; Hugging Face transformers' ``get_*_schedule*`` lambdas become the
  ``ll.schedules`` functions of the same name.
- **Layouts.** :func:`copy_weights` refuses, in one error, every torch tensor it cannot place
  and every nnx variable left unfilled; its :class:`WeightMap` moves optimizer moments into
  flax layouts with their weights (``weight_map=``).

Supported optimizers: every torch class with a registered twin (``ll.optim.torch_twins()``:
torch.optim SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop, Adagrad, Adadelta, Rprop, ASGD,
``lion_pytorch.Lion``, ...). Supported schedulers (:data:`SUPPORTED_SCHEDULERS`): StepLR,
MultiStepLR, ExponentialLR, ConstantLR, LinearLR, PolynomialLR, CosineAnnealingLR,
CosineAnnealingWarmRestarts, OneCycleLR and CyclicLR (with momentum cycling), LambdaLR and
MultiplicativeLR, SequentialLR, ChainedScheduler.

This module imports ``torch`` only inside its functions.
"""

from __future__ import annotations

from losslab_jax.interop._naming import leaf_names as leaf_names
from losslab_jax.interop._naming import params_from_torch as params_from_torch
from losslab_jax.interop._naming import params_to_torch as params_to_torch
from losslab_jax.interop._naming import torch_param_names as torch_param_names
from losslab_jax.interop._state import nnx_optimizer_from_torch as nnx_optimizer_from_torch
from losslab_jax.interop._state import optimizer_state_from_torch as optimizer_state_from_torch
from losslab_jax.interop._state import optimizer_state_to_torch as optimizer_state_to_torch
from losslab_jax.interop._translate import SUPPORTED_SCHEDULERS as SUPPORTED_SCHEDULERS
from losslab_jax.interop._translate import from_torch_optimizer as from_torch_optimizer
from losslab_jax.interop._translate import supported_optimizers as supported_optimizers
from losslab_jax.interop._weights import Placement as Placement
from losslab_jax.interop._weights import WeightEntry as WeightEntry
from losslab_jax.interop._weights import WeightMap as WeightMap
from losslab_jax.interop._weights import copy_weights as copy_weights
from losslab_jax.interop._weights import default_layout as default_layout

SUPPORTED_OPTIMIZERS = supported_optimizers()
"""Class names of the torch optimizers :func:`from_torch_optimizer` converts (at import time; see
:func:`supported_optimizers` for the live registry)."""

__all__ = ["SUPPORTED_OPTIMIZERS", "SUPPORTED_SCHEDULERS", "Placement", "WeightEntry", "WeightMap", "copy_weights",
           "default_layout", "from_torch_optimizer", "leaf_names", "nnx_optimizer_from_torch",
           "optimizer_state_from_torch", "optimizer_state_to_torch", "params_from_torch", "params_to_torch",
           "supported_optimizers", "torch_param_names"]

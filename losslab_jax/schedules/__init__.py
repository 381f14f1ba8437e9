"""Learning-rate schedules as jit-safe functions ``count -> lr`` with torch's numbers. See API.md §3.

``schedule(k)`` equals ``torch_scheduler.get_last_lr()[0]`` after ``k`` calls of
``scheduler.step()``, for every ``k`` (past the end too), so a schedule passed as an optimizer's
``lr=`` reproduces torch's training loop ``optimizer.step(); scheduler.step()``.
"""

from losslab_jax.schedules._compose import chained as chained
from losslab_jax.schedules._compose import lambda_lr as lambda_lr
from losslab_jax.schedules._compose import multiplicative_lr as multiplicative_lr
from losslab_jax.schedules._compose import per_epoch as per_epoch
from losslab_jax.schedules._compose import sequential_lr as sequential_lr
from losslab_jax.schedules._cosine import cosine_annealing_lr as cosine_annealing_lr
from losslab_jax.schedules._cosine import cosine_annealing_warm_restarts as cosine_annealing_warm_restarts
from losslab_jax.schedules._cosine import warmup_cosine as warmup_cosine
from losslab_jax.schedules._cyclic import cyclic_lr as cyclic_lr
from losslab_jax.schedules._cyclic import cyclic_momentum as cyclic_momentum
from losslab_jax.schedules._cyclic import one_cycle_lr as one_cycle_lr
from losslab_jax.schedules._cyclic import one_cycle_momentum as one_cycle_momentum
from losslab_jax.schedules._hf import constant_schedule_with_warmup as constant_schedule_with_warmup
from losslab_jax.schedules._hf import cosine_schedule_with_warmup as cosine_schedule_with_warmup
from losslab_jax.schedules._hf import cosine_with_hard_restarts_schedule_with_warmup as cosine_with_hard_restarts_schedule_with_warmup
from losslab_jax.schedules._hf import cosine_with_min_lr_schedule_with_warmup as cosine_with_min_lr_schedule_with_warmup
from losslab_jax.schedules._hf import inverse_sqrt_schedule as inverse_sqrt_schedule
from losslab_jax.schedules._hf import linear_schedule_with_warmup as linear_schedule_with_warmup
from losslab_jax.schedules._hf import polynomial_decay_schedule_with_warmup as polynomial_decay_schedule_with_warmup
from losslab_jax.schedules._hf import wsd_schedule as wsd_schedule
from losslab_jax.schedules._step import constant_lr as constant_lr
from losslab_jax.schedules._step import exponential_lr as exponential_lr
from losslab_jax.schedules._step import linear_lr as linear_lr
from losslab_jax.schedules._step import multistep_lr as multistep_lr
from losslab_jax.schedules._step import polynomial_lr as polynomial_lr
from losslab_jax.schedules._step import step_lr as step_lr

__all__ = [
    "chained",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "lambda_lr",
    "linear_lr",
    "multiplicative_lr",
    "multistep_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "per_epoch",
    "polynomial_lr",
    "sequential_lr",
    "step_lr",
    "warmup_cosine",
]
__all__ += [
    "constant_schedule_with_warmup",
    "cosine_schedule_with_warmup",
    "cosine_with_hard_restarts_schedule_with_warmup",
    "cosine_with_min_lr_schedule_with_warmup",
    "inverse_sqrt_schedule",
    "linear_schedule_with_warmup",
    "polynomial_decay_schedule_with_warmup",
    "wsd_schedule",
]
from losslab_jax.schedules._swa import swa_lr as swa_lr  # noqa: E402
__all__ += ["swa_lr"]

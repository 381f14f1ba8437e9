"""The shared optimizer parity problem: a small non-quadratic model on a pytree of mixed shapes.

``optimizer_case`` builds a :class:`~parity.TrajectoryCase` that runs the same optimizer in
losslab_jax and in torch for ``steps`` steps from the same start and compares every step's
parameters.

Gradients. By default both optimizers receive the *same* gradient arrays at every step: torch's,
recorded along torch's trajectory (teacher forcing). Then a difference can only come from the
optimizer's own arithmetic and state, which is what this case is about. When each framework
computes its own gradients, ulp-level differences feed back through the loss and are amplified
by the dynamics (measured: optax.adam vs torch Adam, lr 0.05, 50 steps: 9e-4 relative in float32,
3e-13 in float64), which says more about the problem than about the optimizer; that end-to-end
drift is measured by the whole-model training cases.

Both trajectories start with the initial parameters (identical by construction), so that the error
measure's magnitude history (``parity._compare``) includes where each parameter started. Closure-driven optimizers (LBFGS) evaluate
the loss at points of their own choosing, so they always run end to end.

The loss (identical in both frameworks)::

    h   = tanh(X @ w1 + b1)                       w1 (6, 5), b1 (5,)
    out = s * (h @ w2) + b2                       w2 (5, 3), b2 (3,), s () scalar
    L   = mean(log(cosh(out - Y))) + 0.05 * mean(w1 ** 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from parity._case import Config, TrajectoryCase

PARAM_NAMES = ("b1", "b2", "s", "w1", "w2")  # sorted: the order torch receives them in


def initial(seed: int, dtype: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  params = {
      "w1": rng.standard_normal((6, 5)) * 0.7,
      "b1": rng.standard_normal(5) * 0.1,
      "w2": rng.standard_normal((5, 3)) * 0.7,
      "b2": np.zeros(3),
      "s": np.array(1.0),
  }
  x = rng.standard_normal((16, 6))
  y = rng.standard_normal((16, 3))
  return ({k: v.astype(dtype) for k, v in params.items()}, x.astype(dtype), y.astype(dtype))


def jax_loss(params, x, y):
  import jax.numpy as jnp

  h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])  # explicit broadcast: rank promotion may raise
  out = params["s"] * (h @ params["w2"]) + params["b2"][None, :]
  return jnp.mean(jnp.log(jnp.cosh(out - y))) + 0.05 * jnp.mean(params["w1"] ** 4)


def torch_loss(params, x, y):
  import torch

  h = torch.tanh(x @ params["w1"] + params["b1"])
  out = params["s"] * (h @ params["w2"]) + params["b2"]
  return torch.mean(torch.log(torch.cosh(out - y))) + 0.05 * torch.mean(params["w1"] ** 4)


def run_jax(seed: int, dtype: str, *, jax_factory: Callable[..., Any], steps: int, closure: bool,
            torch_grads: Sequence[tuple[float, dict]] | None = None, **kwargs) -> list[dict]:
  """losslab_jax's trajectory; with ``torch_grads`` ((loss, grads) per step), those are the gradients."""
  import jax
  import jax.numpy as jnp
  import optax

  p0, x, y = initial(seed, dtype)
  params = {k: jnp.asarray(v) for k, v in p0.items()}
  x, y = jnp.asarray(x), jnp.asarray(y)
  tx = jax_factory(**kwargs)
  state = tx.init(params)
  loss_fn = lambda p: jax_loss(p, x, y)  # noqa: E731

  @jax.jit
  def step(params, state, value, grads):
    extra = {"value": value, "grad": grads, "value_fn": loss_fn} if closure else {"value": value}
    updates, state = tx.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state

  out = [jax.tree.map(np.asarray, params)]  # the start: it sets each element's magnitude history
  for k in range(steps):
    if torch_grads is None:
      value, grads = jax.value_and_grad(loss_fn)(params)
    else:
      value, grads = torch_grads[k]
      value, grads = jnp.asarray(value), {n: jnp.asarray(g) for n, g in grads.items()}
    params, state = step(params, state, value, grads)
    out.append(jax.tree.map(np.asarray, params))
  return out


def run_torch(seed: int, dtype: str, *, torch_factory: Callable[..., Any], steps: int, closure: bool,
              torch_pre_step: Callable[[dict], None] | None = None, record: list | None = None,
              **kwargs) -> list[dict]:
  """torch's trajectory; appends ``(loss, raw grads)`` of every step to ``record`` if given."""
  import torch

  p0, x, y = initial(seed, dtype)
  params = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  x, y = torch.from_numpy(x), torch.from_numpy(y)
  opt = torch_factory(params, **kwargs)

  def closure_fn():
    opt.zero_grad()
    loss = torch_loss(params, x, y)
    loss.backward()
    return loss

  out = [{k: v.detach().numpy().copy() for k, v in params.items()}]
  for _ in range(steps):
    if closure:
      opt.step(closure_fn)
    else:
      loss = closure_fn()
      if record is not None:
        record.append((loss.detach().numpy().copy(),
                       {k: v.grad.detach().numpy().copy() for k, v in params.items()}))
      if torch_pre_step is not None:
        torch_pre_step(params)
      opt.step()
    out.append({k: v.detach().numpy().copy() for k, v in params.items()})
  return out


def optimizer_case(name: str, jax_factory: Callable[..., Any], torch_factory: Callable[..., Any],
                   configs: Sequence[Config], *, steps: int = 50, closure: bool = False,
                   torch_pre_step: Callable[[dict], None] | None = None, group: str = "optim",
                   **case_kwargs) -> TrajectoryCase:
  """A trajectory case for an optimizer.

  Args:
    jax_factory: ``jax_factory(**config.kwargs) -> optax transformation``.
    torch_factory: ``torch_factory(named_params: dict[str, Tensor], **config.kwargs) -> Optimizer``;
      ``named_params`` is ordered as ``PARAM_NAMES``.
    closure: drive both sides with the loss function (torch ``step(closure)``; optax extra args
      ``value``, ``grad``, ``value_fn``), as LBFGS needs.
    torch_pre_step: called with the named params after ``backward`` and before ``step``
      (gradient clipping).
    case_kwargs: passed to :class:`TrajectoryCase` (``rtol``, ``tolerance_reason``, ``default``).
  """

  cache: dict[Any, tuple[list, list]] = {}

  def torch_run(seed, dtype, kw):
    key = (seed, dtype, repr(sorted(kw.items())))
    if key not in cache:
      cache.clear()
      record: list = []
      traj = run_torch(seed, dtype, torch_factory=torch_factory, steps=steps, closure=closure,
                       torch_pre_step=torch_pre_step, record=None if closure else record, **kw)
      cache[key] = (traj, record)
    return cache[key]

  def rj(seed, dtype, **kw):
    grads = None if closure else torch_run(seed, dtype, kw)[1]
    return run_jax(seed, dtype, jax_factory=jax_factory, steps=steps, closure=closure, torch_grads=grads, **kw)

  def rt(seed, dtype, **kw):
    return torch_run(seed, dtype, kw)[0]

  return TrajectoryCase(name, group, rj, rt, configs, what=f"params after each of {steps} steps",
                        **case_kwargs)

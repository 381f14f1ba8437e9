"""losslab_jax.interop.torch: stop a torch run, convert, continue in JAX on torch's trajectory.

The resume tests run 50 torch steps on the shared optimizer problem (parity/cases/_optim_problem.py),
convert weights, optimizer state and scheduler, and run 50 more steps in both frameworks. The JAX
continuation receives torch's gradients (teacher forcing, as the optimizer parity cases do) so a
difference can only come from the converted state and the optimizer arithmetic; the error measure
is parity's (relative, judged against each element's magnitude history). An end-to-end check with
JAX's own gradients is in ``test_resume_end_to_end``.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
import losslab_jax.interop.torch as llt
from parity._compare import trajectory_errors
from parity.cases._optim_problem import PARAM_NAMES, initial, jax_loss, torch_loss
from tests._optional import optional_import

# imported on first use inside a test: a missing torch skips the tests that use it, not the file
torch = optional_import("torch")
S = optional_import("torch.optim.lr_scheduler")

TOL = {"float64": 1e-10, "float32": 1e-5}


def _groups(tp, g0, g1):
  """Two torch param groups: biases and scale (``g0`` options), weights (``g1`` options)."""
  return [{"params": [tp["b1"], tp["b2"], tp["s"]], **g0}, {"params": [tp["w1"], tp["w2"]], **g1}]


# name -> (optimizer factory on the named torch params, scheduler factory or None)
CASES = {
    "sgd_nesterov": (lambda tp: torch.optim.SGD(tp.values(), lr=0.05, momentum=0.9, nesterov=True,
                                                weight_decay=1e-3), None),
    "sgd_plain": (lambda tp: torch.optim.SGD(tp.values(), lr=0.1), None),
    "adam_amsgrad": (lambda tp: torch.optim.Adam(tp.values(), lr=0.02, amsgrad=True, weight_decay=0.01), None),
    "adamw": (lambda tp: torch.optim.AdamW(tp.values(), lr=0.02, betas=(0.8, 0.99), weight_decay=0.1), None),
    "adamax": (lambda tp: torch.optim.Adamax(tp.values(), lr=0.02), None),
    "nadam": (lambda tp: torch.optim.NAdam(tp.values(), lr=0.02, weight_decay=0.01), None),
    "nadamw": (lambda tp: torch.optim.NAdam(tp.values(), lr=0.02, weight_decay=0.1, decoupled_weight_decay=True),
               None),
    "radam": (lambda tp: torch.optim.RAdam(tp.values(), lr=0.02), None),
    "rmsprop_centered": (lambda tp: torch.optim.RMSprop(tp.values(), lr=0.005, momentum=0.5, centered=True),
                         None),
    "adagrad": (lambda tp: torch.optim.Adagrad(tp.values(), lr=0.1, lr_decay=0.01,
                                               initial_accumulator_value=0.1), None),
    "adadelta": (lambda tp: torch.optim.Adadelta(tp.values(), lr=1.0, rho=0.8), None),
    "rprop": (lambda tp: torch.optim.Rprop(tp.values(), lr=0.01), None),
    "asgd": (lambda tp: torch.optim.ASGD(tp.values(), lr=0.05, t0=20), None),
    "lion": (lambda tp: _lion()(tp.values(), lr=0.003, weight_decay=0.1), None),
    # schedulers
    "adam_onecycle": (lambda tp: torch.optim.Adam(tp.values(), lr=0.01),
                      lambda o: S.OneCycleLR(o, max_lr=0.05, total_steps=120)),
    "sgd_cyclic": (lambda tp: torch.optim.SGD(tp.values(), lr=0.01, momentum=0.9),
                   lambda o: S.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=15, mode="triangular2")),
    "adamw_steplr": (lambda tp: torch.optim.AdamW(tp.values(), lr=0.03),
                     lambda o: S.StepLR(o, step_size=20, gamma=0.5)),
    "rmsprop_sequential": (lambda tp: torch.optim.RMSprop(tp.values(), lr=0.01),
                           lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, total_iters=10),
                                                        S.CosineAnnealingLR(o, T_max=80)], milestones=[10])),
    # two param groups
    "adam_two_groups": (lambda tp: torch.optim.Adam(_groups(tp, {"lr": 0.01}, {"lr": 0.03, "amsgrad": True})),
                        None),
    "sgd_two_groups_cosine": (lambda tp: torch.optim.SGD(_groups(tp, {"lr": 0.02}, {"lr": 0.1, "momentum": 0.9}),
                                                         lr=0.1),
                              lambda o: S.CosineAnnealingLR(o, T_max=100, eta_min=1e-3)),
}


def _lion():
  lion_pytorch = pytest.importorskip("lion_pytorch")
  return lion_pytorch.Lion


def _torch_steps(tp, opt, sched, x, y, n, record=None):
  traj = []
  for _ in range(n):
    opt.zero_grad()
    loss = torch_loss(tp, x, y)
    loss.backward()
    if record is not None:
      record.append({k: v.grad.detach().numpy().copy() for k, v in tp.items()})
    opt.step()
    if sched is not None:
      sched.step()
    traj.append({k: v.detach().numpy().copy() for k, v in tp.items()})
  return traj


def _start(name, dtype, pre=50):
  """Build the torch run for CASES[name] and take ``pre`` steps."""
  make_opt, make_sched = CASES[name]
  p0, x, y = initial(7, dtype)
  tp = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  opt = make_opt(tp)
  sched = make_sched(opt) if make_sched else None
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)
  _torch_steps(tp, opt, sched, xt, yt, pre)
  return tp, opt, sched, (x, y, xt, yt)


def _convert(tp, opt, sched, pre):
  """The conversion a user writes: names from the model, per-step scheduler said so, SGD/Lion count given."""
  names = llt.torch_param_names(opt, tp)
  spe = 1 if sched is not None else None
  tx = llt.from_torch_optimizer(opt, sched, param_names=names, steps_per_epoch=spe)
  params = llt.params_from_torch(tp)
  state = llt.optimizer_state_from_torch(tx, opt.state_dict(), params, param_names=names, scheduler=sched,
                                         step_count=pre)
  return tx, params, state, names


def _jit_step(tx):
  @jax.jit
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_resume_in_jax_matches_torch(name, dtype):
  tp, opt, sched, (_, _, xt, yt) = _start(name, dtype)
  tx, params, state, _ = _convert(tp, opt, sched, 50)
  start = jax.tree.map(np.asarray, params)
  grads: list = []
  torch_traj = _torch_steps(tp, opt, sched, xt, yt, 50, record=grads)
  step = _jit_step(tx)
  jax_traj = []
  for g in grads:
    params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
    jax_traj.append(jax.tree.map(np.asarray, params))
  for k in params:
    assert params[k].dtype == np.dtype(dtype)
  errs = trajectory_errors([start, *jax_traj], [start, *torch_traj])
  worst = max(e.rel for e in errs)
  assert worst <= TOL[dtype], f"{name}/{dtype}: worst relative error {worst:.2e} over 50 resumed steps"


def test_resume_end_to_end():
  """JAX computes its own gradients after the switch (float64): torch's trajectory to ~1e-12.

  Measured worst relative error over the 50 resumed steps: 1.0e-14 (adam_onecycle); differences in
  the last ulp of the gradients are amplified by the dynamics, so the bound is parity's 1e-10.
  """
  tp, opt, sched, (x, y, xt, yt) = _start("adam_onecycle", "float64")
  tx, params, state, _ = _convert(tp, opt, sched, 50)
  start = jax.tree.map(np.asarray, params)
  torch_traj = _torch_steps(tp, opt, sched, xt, yt, 50)
  xj, yj = jnp.asarray(x), jnp.asarray(y)

  @jax.jit
  def step(params, state):
    grads = jax.grad(jax_loss)(params, xj, yj)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  jax_traj = []
  with jax.numpy_rank_promotion("allow"):   # the shared problem's loss broadcasts biases
    for _ in range(50):
      params, state = step(params, state)
      jax_traj.append(jax.tree.map(np.asarray, params))
  worst = max(e.rel for e in trajectory_errors([start, *jax_traj], [start, *torch_traj]))
  assert worst <= 1e-10


@pytest.mark.parametrize("name", ["sgd_nesterov", "adam_amsgrad", "nadam", "rmsprop_centered", "adagrad",
                                  "adadelta", "rprop", "asgd", "lion", "adam_two_groups",
                                  "sgd_two_groups_cosine"])
def test_round_trip_state_torch_state_is_exact(name):
  """JAX state -> torch state_dict -> JAX state gives back every array bit for bit (and dtype)."""
  tp, opt, sched, _ = _start(name, "float64", pre=0)
  names = llt.torch_param_names(opt, tp)
  tx = llt.from_torch_optimizer(opt, sched, param_names=names, steps_per_epoch=1 if sched else None)
  params = llt.params_from_torch(tp)
  state = tx.init(params)
  rng = np.random.default_rng(3)
  step = _jit_step(tx)
  for _ in range(7):
    params, state = step(params, state, {k: jnp.asarray(rng.standard_normal(v.shape)) for k, v in params.items()})
  sd = llt.optimizer_state_to_torch(state, params, opt, param_names=names)
  back = llt.optimizer_state_from_torch(tx, sd, params, param_names=names, step_count=7)
  a, ta = jax.tree.flatten(state)
  b, tb = jax.tree.flatten(back)
  assert ta == tb
  for u, v in zip(a, b):
    assert u.dtype == v.dtype and np.array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("name", ["adam_amsgrad", "nadam", "asgd", "adam_two_groups"])
def test_round_trip_torch_state_torch_is_exact(name):
  """torch state_dict -> JAX state -> torch state_dict: the same keys and tensors, bit for bit."""
  tp, opt, sched, _ = _start(name, "float64", pre=30)
  tx, params, state, names = _convert(tp, opt, sched, 30)
  sd = opt.state_dict()
  sd2 = llt.optimizer_state_to_torch(state, params, opt, param_names=names)
  assert sd2["param_groups"] == sd["param_groups"]
  assert sorted(sd2["state"]) == sorted(sd["state"])
  for i, entry in sd["state"].items():
    assert sorted(entry) == sorted(sd2["state"][i])
    for key, t in entry.items():
      u = sd2["state"][i][key]
      assert u.dtype == t.dtype and torch.equal(u, t), (i, key)


def test_state_loaded_into_torch_continues_the_jax_run():
  """JAX -> torch: a fresh torch optimizer loaded with the converted state takes JAX's next steps."""
  p0, x, y = initial(11, "float64")
  tp = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  opt = torch.optim.NAdam(tp.values(), lr=0.02, weight_decay=0.01)
  tx = ll.optim.nadam(lr=0.02, weight_decay=0.01)
  params = {k: jnp.asarray(v) for k, v in p0.items()}
  state = tx.init(params)
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  step = _jit_step(tx)
  with jax.numpy_rank_promotion("allow"):   # the shared problem's loss broadcasts biases
    for _ in range(20):
      params, state = step(params, state, jax.grad(jax_loss)(params, xj, yj))
  opt.load_state_dict(llt.optimizer_state_to_torch(state, params, opt))
  with torch.no_grad():
    for k, t in llt.params_to_torch(params).items():
      tp[k].copy_(t)
  start = jax.tree.map(np.asarray, params)
  grads: list = []
  torch_traj = _torch_steps(tp, opt, None, torch.from_numpy(x), torch.from_numpy(y), 20, record=grads)
  jax_traj = []
  for g in grads:
    params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
    jax_traj.append(jax.tree.map(np.asarray, params))
  assert max(e.rel for e in trajectory_errors([start, *jax_traj], [start, *torch_traj])) <= 1e-10


def test_named_parameters_and_nested_params():
  """Leaf names follow torch's dotted names; the order comes from torch_param_names or the groups."""
  model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
  opt = torch.optim.Adam(model.named_parameters(), lr=0.01)  # keeps param_names in its groups
  x = torch.randn(5, 3, dtype=torch.float64)
  for _ in range(3):
    opt.zero_grad()
    model(x).square().sum().backward()
    opt.step()
  flat = llt.params_from_torch(model)
  assert list(flat) == ["0.weight", "0.bias", "2.weight", "2.bias"]
  assert llt.torch_param_names(opt, model) == list(flat)
  nested = [{"weight": flat["0.weight"], "bias": flat["0.bias"]}, None,
            {"weight": flat["2.weight"], "bias": flat["2.bias"]}]
  assert llt.leaf_names(nested) == ["0.bias", "0.weight", "2.bias", "2.weight"]
  tx = llt.from_torch_optimizer(opt)
  state = llt.optimizer_state_from_torch(tx, opt.state_dict(), nested)  # names from the groups
  adam = state[2]
  assert int(adam.step) == 3
  assert np.array_equal(np.asarray(adam.exp_avg[2]["bias"]), opt.state[model[2].bias]["exp_avg"].numpy())
  assert np.array_equal(np.asarray(adam.exp_avg_sq[0]["weight"]),
                        opt.state[model[0].weight]["exp_avg_sq"].numpy())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_resume_with_scheduler_created_later(dtype):
  """A scheduler attached after 10 optimizer steps: last_epoch (40) != torch's step (50), offset -10."""
  p0, x, y = initial(5, dtype)
  tp = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  opt = torch.optim.Adam(tp.values(), lr=0.03)
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)
  _torch_steps(tp, opt, None, xt, yt, 10)
  sched = S.MultiStepLR(opt, milestones=[45, 60, 60], gamma=0.5)
  _torch_steps(tp, opt, sched, xt, yt, 40)
  assert sched.last_epoch == 40 and int(opt.state[tp["s"]]["step"]) == 50
  with pytest.raises(ValueError, match=r"position \(last_epoch=40\) and param group 0's optimizer step count \(50\)"
                                       r" disagree.*steps_per_epoch=1"):
    llt.from_torch_optimizer(opt, sched)   # per epoch or created late? torch's counters cannot tell
  tx, params, state, _ = _convert(tp, opt, sched, 50)
  start = jax.tree.map(np.asarray, params)
  grads: list = []
  torch_traj = _torch_steps(tp, opt, sched, xt, yt, 40, record=grads)
  step = _jit_step(tx)
  jax_traj = []
  for g in grads:
    params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
    jax_traj.append(jax.tree.map(np.asarray, params))
  assert max(e.rel for e in trajectory_errors([start, *jax_traj], [start, *torch_traj])) <= TOL[dtype]


def test_fresh_optimizer_gives_init_state():
  tp, opt, sched, _ = _start("adam_onecycle", "float64", pre=0)
  tx, params, state, _ = _convert(tp, opt, sched, 0)
  for u, v in zip(jax.tree.leaves(state), jax.tree.leaves(tx.init(params))):
    assert np.array_equal(np.asarray(u), np.asarray(v))


def test_library_import_does_not_import_torch():
  code = "import sys, losslab_jax, losslab_jax.interop.torch; assert 'torch' not in sys.modules, 'imported torch'"
  subprocess.run([sys.executable, "-c", code], check=True)


# --- errors -------------------------------------------------------------------------------------


def test_unsupported_optimizer_names_the_supported_ones():
  w = torch.nn.Parameter(torch.zeros(2))
  with pytest.raises(NotImplementedError,
                     match=r"supported optimizers \(.*Adam, .*SGD.*\), got torch\.optim\.lbfgs\.LBFGS"):
    llt.from_torch_optimizer(torch.optim.LBFGS([w]))

  class MyAdam(torch.optim.Adam):
    pass

  with pytest.raises(NotImplementedError, match="MyAdam"):
    llt.from_torch_optimizer(MyAdam([w]))


def test_unsupported_scheduler():
  w = torch.nn.Parameter(torch.zeros(2))
  opt = torch.optim.SGD([w], lr=0.1)
  with pytest.raises(NotImplementedError, match="ReduceLROnPlateau.*reduce_lr_on_plateau"):
    llt.from_torch_optimizer(opt, S.ReduceLROnPlateau(opt))
  other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
  with pytest.raises(ValueError, match="attached to another optimizer"):
    llt.from_torch_optimizer(opt, S.StepLR(other, 2))


def test_shape_mismatch_names_the_parameter():
  tp, opt, sched, _ = _start("adam_amsgrad", "float64", pre=3)
  tx, params, _, names = _convert(tp, opt, sched, 3)
  bad = dict(params, w2=jnp.zeros((3, 5)))
  with pytest.raises(ValueError, match=r"'w2'.*shape \(3, 5\).*got shape \(5, 3\)"):
    llt.optimizer_state_from_torch(tx, opt.state_dict(), bad, param_names=names)


def test_structure_mismatch():
  tp, opt, sched, _ = _start("adam_amsgrad", "float64", pre=3)
  tx, params, _, names = _convert(tp, opt, sched, 3)
  sd = opt.state_dict()
  with pytest.raises(ValueError, match="one leaf per torch parameter \\(5\\), got 4"):
    llt.optimizer_state_from_torch(tx, sd, {k: v for k, v in params.items() if k != "s"})
  with pytest.raises(ValueError, match=r"\['scale'\] which\s+do not"):
    llt.optimizer_state_from_torch(tx, sd, params, param_names=["b1", "b2", "scale", "w1", "w2"])
  with pytest.raises(ValueError, match="distinct"):
    llt.optimizer_state_from_torch(tx, sd, params, param_names=["b1", "b1", "s", "w1", "w2"])
  # state of another optimizer (no amsgrad): torch's keys differ from the transformation's fields
  with pytest.raises(ValueError, match="max_exp_avg_sq"):
    llt.optimizer_state_from_torch(ll.optim.adam(lr=0.02), sd, params)
  with pytest.raises(ValueError, match="expected the torch state of torch parameter 0"):
    llt.optimizer_state_from_torch(ll.optim.sgd(lr=0.1, momentum=0.9), sd, params)
  with pytest.raises(ValueError, match="expected a torch optimizer state_dict"):
    llt.optimizer_state_from_torch(tx, {"state": {}}, params)
  with pytest.raises(ValueError, match="no optimizer|found none"):
    llt.optimizer_state_from_torch(optax.identity(), sd, params)
  state = tx.init(params)
  with pytest.raises(ValueError, match="SGDState for torch's SGD, got a AdamState"):
    llt.optimizer_state_to_torch(state, params, torch.optim.SGD(tp.values(), lr=0.1))


def test_group_with_different_step_counts():
  tp, opt, sched, (_, _, xt, yt) = _start("adam_amsgrad", "float64", pre=2)
  opt.zero_grad()
  torch_loss(tp, xt, yt).backward()
  tp["s"].grad = None                                        # torch skips s: its step stays at 2
  opt.step()
  tx, params = llt.from_torch_optimizer(opt), llt.params_from_torch(tp)
  with pytest.raises(ValueError, match="share torch's 'step', got \\[2.0, 3.0\\]"):
    llt.optimizer_state_from_torch(tx, opt.state_dict(), params)


# --- conversions that used to be silently wrong ---------------------------------------------------


def _teacher_forced(tx, params, state, grads):
  step = _jit_step(tx)
  traj = []
  for g in grads:
    params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
    traj.append(jax.tree.map(np.asarray, params))
  return traj


def _epochs(tp, opt, sched, xt, yt, epochs, batches, record=None):
  """The pytorch/examples MNIST loop: ``scheduler.step()`` once per epoch of ``batches`` optimizer steps."""
  traj = []
  for _ in range(epochs):
    traj += _torch_steps(tp, opt, None, xt, yt, batches, record=record)
    sched.step()
  return traj


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_per_epoch_scheduler_needs_steps_per_epoch(dtype):
  """Adadelta + StepLR stepped per epoch. Before: converted as per-step (wrong lrs, no warning)."""
  p0, x, y = initial(3, dtype)
  tp = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  opt = torch.optim.Adadelta(tp.values(), lr=1.0)
  sched = S.StepLR(opt, step_size=1, gamma=0.7)
  with pytest.raises(ValueError, match="neither the scheduler nor the optimizer has stepped"):
    llt.from_torch_optimizer(opt, sched)                     # fresh: the cadence is unknowable
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)
  _epochs(tp, opt, sched, xt, yt, epochs=2, batches=4)
  with pytest.raises(ValueError, match=r"last_epoch=2\) and param group 0's optimizer step count \(8\) disagree"):
    llt.from_torch_optimizer(opt, sched)
  with pytest.raises(ValueError, match=r"steps_per_epoch=5, a scheduler at last_epoch=2 fits an optimizer step"
                                       r" count in \[10, 15\), got 8"):
    llt.from_torch_optimizer(opt, sched, steps_per_epoch=5)
  names = llt.torch_param_names(opt, tp)
  tx = llt.from_torch_optimizer(opt, sched, param_names=names, steps_per_epoch=4)
  params = llt.params_from_torch(tp)
  state = llt.optimizer_state_from_torch(tx, opt, params, param_names=names)
  start = jax.tree.map(np.asarray, params)
  grads: list = []
  torch_traj = _epochs(tp, opt, sched, xt, yt, epochs=3, batches=4, record=grads)
  jax_traj = _teacher_forced(tx, params, state, grads)
  assert max(e.rel for e in trajectory_errors([start, *jax_traj], [start, *torch_traj])) <= TOL[dtype]


@pytest.mark.parametrize("name", ["sgd_nesterov", "lion"])
def test_state_without_torch_step_count_needs_one(name):
  """SGD/Lion keep no step count. Before: count 1 was assumed (22% loss error with a schedule)."""
  tp, opt, _, _ = _start(name, "float64", pre=5)
  names = llt.torch_param_names(opt, tp)
  tx, params = llt.from_torch_optimizer(opt, param_names=names), llt.params_from_torch(tp)
  with pytest.raises(ValueError, match="keeps no step count.*step_count="):
    llt.optimizer_state_from_torch(tx, opt.state_dict(), params, param_names=names)
  state = llt.optimizer_state_from_torch(tx, opt.state_dict(), params, param_names=names, step_count=5)
  assert all(int(s.step) == 5 for s in jax.tree.leaves(state, is_leaf=lambda s: hasattr(s, "step"))
             if hasattr(s, "step"))
  sched = S.StepLR(opt, step_size=3)
  with pytest.raises(ValueError, match="keeps no step count, so whether the scheduler"):
    llt.from_torch_optimizer(opt, sched, param_names=names)
  with pytest.raises(ValueError, match="with a per-epoch scheduler pass step_count="):
    llt.from_torch_optimizer(opt, sched, param_names=names, steps_per_epoch=5)
  llt.from_torch_optimizer(opt, sched, param_names=names, steps_per_epoch=5, step_count=3)   # mid-epoch 0


def _layernorm_adam(steps=3):
  ln = torch.nn.LayerNorm(4).double()
  with torch.no_grad():
    ln.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
  opt = torch.optim.Adam(list(ln.parameters()), lr=0.1)      # a plain list: torch keeps no names
  x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
  for _ in range(steps):
    opt.zero_grad()
    (ln(x) * torch.arange(4.0, dtype=torch.float64)).square().sum().backward()
    opt.step()
  return ln, opt


def test_same_shape_parameters_are_never_paired_by_position():
  """LayerNorm weight and bias share a shape. Before: jax leaf order (bias, weight) took torch's
  (weight, bias) moments swapped, silently."""
  ln, opt = _layernorm_adam()
  params = {"weight": jnp.asarray(ln.weight.detach().numpy()), "bias": jnp.asarray(ln.bias.detach().numpy())}
  tx = llt.from_torch_optimizer(opt)
  with pytest.raises(ValueError, match=r"torch parameters \[0, 1\] and leaves \['bias', 'weight'\] all have shape"
                                       r" \(4,\).*param_names="):
    llt.optimizer_state_from_torch(tx, opt.state_dict(), params)
  with pytest.raises(ValueError, match=r"all have shape \(4,\)"):
    llt.optimizer_state_to_torch(tx.init(params), params, opt)
  state = llt.optimizer_state_from_torch(tx, opt.state_dict(), params, param_names=["weight", "bias"])
  assert np.array_equal(np.asarray(state[2].exp_avg["bias"]), opt.state[ln.bias]["exp_avg"].numpy())
  assert np.array_equal(np.asarray(state[2].exp_avg["weight"]), opt.state[ln.weight]["exp_avg"].numpy())


def test_distinct_shapes_pair_by_shape_and_mismatches_name_the_right_parameter():
  """Before: position pairing gave a shape error naming the wrong parameter; now shapes identify them."""
  lin = torch.nn.Linear(3, 2).double()
  opt = torch.optim.Adam(list(lin.parameters()), lr=0.1)        # torch order: weight (2, 3), bias (2,)
  lin(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
  opt.step()
  params = {"weight": jnp.asarray(lin.weight.detach().numpy()), "bias": jnp.asarray(lin.bias.detach().numpy())}
  tx = llt.from_torch_optimizer(opt)
  state = llt.optimizer_state_from_torch(tx, opt.state_dict(), params)       # leaves: bias, weight
  assert np.array_equal(np.asarray(state[2].exp_avg["weight"]), opt.state[lin.weight]["exp_avg"].numpy())
  bad = dict(params, weight=params["weight"].T)
  with pytest.raises(ValueError, match=r"torch parameter 0 \(shape \(2, 3\)\) matches the shape of no leaf"):
    llt.optimizer_state_from_torch(tx, opt.state_dict(), bad)


def test_two_groups_without_names_or_distinct_shapes_are_refused():
  ln = torch.nn.LayerNorm(4)
  opt = torch.optim.AdamW([{"params": [ln.weight]}, {"params": [ln.bias], "weight_decay": 0.0}])
  tx = llt.from_torch_optimizer(opt)
  with pytest.raises(ValueError, match=r"all have shape \(4,\)"):
    tx.init({"weight": jnp.zeros(4), "bias": jnp.zeros(4)})


def _lr_trajectory(tx, k):
  """The learning rates of ``k`` updates of an lr-scaled-identity ``tx`` (SGD without momentum)."""
  params = {"w": jnp.zeros((), jnp.float64)}
  state = tx.init(params)
  out = []
  for _ in range(k):
    u, state = tx.update({"w": jnp.ones((), jnp.float64)}, state, params)
    out.append(-float(u["w"]))
  return out


def _torch_lrs(opt, sched, k):
  out = []
  for _ in range(k):
    out.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
  return out


def test_lambda_with_python_control_flow_is_refused_at_conversion():
  """Before: converted without complaint, then TracerBoolConversionError at the first jitted update."""
  w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
  opt = torch.optim.SGD([w], lr=0.1)
  with pytest.raises(ValueError, match=r"LambdaLR.lr_lambdas\[0\] \(.*<lambda>\) cannot be traced by jax"
                                       r" \(TracerBoolConversionError.*jnp.where"):
    llt.from_torch_optimizer(opt, S.LambdaLR(opt, lambda e: 1.0 if e < 5 else 0.5), steps_per_epoch=1)
  opt = torch.optim.SGD([w], lr=0.1)
  with pytest.raises(ValueError, match=r"MultiplicativeLR.lr_lambdas\[0\].*cannot be traced"):
    llt.from_torch_optimizer(opt, S.MultiplicativeLR(opt, lambda e: min(1.0, 0.9 + e)), steps_per_epoch=1)
  opt = torch.optim.SGD([w], lr=0.1)
  with pytest.raises(ValueError, match=r"gives lr .* at step 1, torch gives"):   # traces, but not torch's numbers
    llt.from_torch_optimizer(opt, S.LambdaLR(opt, lambda e: 1.0 / (1 + e) if isinstance(e, int) else 1.0),
                             steps_per_epoch=1)
  opt = torch.optim.SGD([w], lr=0.1)
  sched = S.LambdaLR(opt, lambda e: jnp.where(e < 5, 1.0, 0.5) * 0.9 ** e)
  tx = llt.from_torch_optimizer(opt, sched, steps_per_epoch=1)
  np.testing.assert_allclose(_lr_trajectory(tx, 8), _torch_lrs(opt, sched, 8), rtol=1e-12)


HF = {  # transformers factory name -> keyword arguments
    "get_constant_schedule_with_warmup": {"num_warmup_steps": 3},
    "get_linear_schedule_with_warmup": {"num_warmup_steps": 3, "num_training_steps": 10},
    "get_cosine_schedule_with_warmup": {"num_warmup_steps": 2, "num_training_steps": 11, "num_cycles": 0.4},
    "get_cosine_with_hard_restarts_schedule_with_warmup": {"num_warmup_steps": 2, "num_training_steps": 12,
                                                           "num_cycles": 2},
    "get_polynomial_decay_schedule_with_warmup": {"num_warmup_steps": 2, "num_training_steps": 10, "lr_end": 1e-3,
                                                  "power": 2.0},
    "get_inverse_sqrt_schedule": {"num_warmup_steps": 3},
    "get_wsd_schedule": {"num_warmup_steps": 2, "num_decay_steps": 4, "num_training_steps": 11,
                         "decay_type": "linear"},
    "get_cosine_with_min_lr_schedule_with_warmup": {"num_warmup_steps": 2, "num_training_steps": 10,
                                                    "min_lr": 1e-3},
}


@pytest.mark.parametrize("name", list(HF))
def test_hugging_face_schedules_are_recognised(name):
  """transformers' get_*_schedule lambdas (Python control flow) become ll.schedules functions: torch's lrs."""
  w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))   # torch first: transformers needs it
  transformers = pytest.importorskip("transformers")
  factory = getattr(transformers.optimization, name, None)
  if factory is None:
    pytest.skip(f"this transformers has no {name}")
  opt = torch.optim.SGD([w], lr=0.1)
  sched = factory(opt, **HF[name])
  tx = llt.from_torch_optimizer(opt, sched, steps_per_epoch=1)
  np.testing.assert_allclose(_lr_trajectory(tx, 14), _torch_lrs(opt, sched, 14), rtol=1e-12, atol=1e-15)
  # mid-run: the schedule continues at torch's position (SGD: the count comes from step_count)
  tx = llt.from_torch_optimizer(opt, sched, steps_per_epoch=1)
  state = llt.optimizer_state_from_torch(tx, opt, {"w": jnp.zeros((), jnp.float64)}, step_count=14)
  u, _ = tx.update({"w": jnp.ones((), jnp.float64)}, state, {"w": jnp.zeros((), jnp.float64)})
  np.testing.assert_allclose(-float(u["w"]), opt.param_groups[0]["lr"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["Adafactor", "Muon"])
def test_resume_adafactor_and_muon(name):
  """Twins registered by their own modules convert too: Adafactor's per-shape state keys (row/col factors
  for matrices, a full variance for vectors) and Muon's missing step count (its lr counter needs step_count)."""
  cls = getattr(torch.optim, name, None)
  if cls is None:
    pytest.skip(f"torch {torch.__version__} has no torch.optim.{name}")
  p0, x, y = initial(9, "float64")
  tp = {k: torch.tensor(p0[k], requires_grad=True) for k in PARAM_NAMES}
  keys = ["w1", "w2"] if name == "Muon" else list(PARAM_NAMES)            # Muon takes matrices only
  opt = cls([tp[k] for k in keys], lr=0.02)
  sched = S.CosineAnnealingLR(opt, T_max=40)
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)
  _torch_steps(tp, opt, sched, xt, yt, 10)
  names = llt.torch_param_names(opt, tp)
  tx = llt.from_torch_optimizer(opt, sched, param_names=names, steps_per_epoch=1)
  params = {k: v for k, v in llt.params_from_torch(tp).items() if k in keys}
  state = llt.optimizer_state_from_torch(tx, opt, params, param_names=names, step_count=10)
  start = jax.tree.map(np.asarray, params)
  grads: list = []
  torch_traj = [{k: v[k] for k in keys} for v in _torch_steps(tp, opt, sched, xt, yt, 10, record=grads)]
  jax_traj = _teacher_forced(tx, params, state, [{k: g[k] for k in keys} for g in grads])
  assert max(e.rel for e in trajectory_errors([start, *jax_traj], [start, *torch_traj])) <= 1e-10
  back = llt.optimizer_state_to_torch(state, params, opt, param_names=names)
  sd = opt.state_dict()["state"]
  assert {i: sorted(e) for i, e in back["state"].items()} == {i: sorted(e) for i, e in sd.items()}

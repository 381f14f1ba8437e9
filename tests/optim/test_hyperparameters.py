"""Every optimizer's hyperparameter checks and state layout, as one table.

* torch's range checks, in torch's wording (``Invalid learning rate: -0.1``);
* NaN for every float hyperparameter of every optimizer, ``scale_by_*`` and building block is
  refused with the same wording (a ``value < 0`` check lets NaN through; torch raises
  ``Invalid learning rate: nan``). The NaN cases are generated from the signatures, so a new
  hyperparameter is covered without editing this file;
* wrongly typed hyperparameters raise ``TypeError`` naming them;
* the state of every ``scale_by_*``: torch's field names, an int32 scalar step, per-leaf fields in
  the param dtype (float32 and bfloat16 leaves), switched-off fields as ``()``;
* gradients an update cannot use (integer dtype, a tree that is not the params' tree) raise a clear
  error naming both structures.
"""

from __future__ import annotations

import inspect
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll

O = ll.optim

# --- torch's range checks ------------------------------------------------------------------------

BAD = [
    (O.sgd, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.sgd, {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    (O.sgd, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.sgd, {"momentum": 0.0, "nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    (O.sgd, {"momentum": 0.9, "dampening": 0.1, "nesterov": True},
     "Nesterov momentum requires a momentum and zero dampening"),
    *[(f, kw, m) for f in (O.adam, O.adamw) for kw, m in [
        ({"lr": -0.1}, "Invalid learning rate: -0.1"),
        ({"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        ({"betas": (1.2, 0.999)}, "Invalid beta parameter at index 0: 1.2"),
        ({"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1")]],
    (O.adamax, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.adamax, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (O.adamax, {"betas": (-0.1, 0.999)}, "Invalid beta parameter at index 0: -0.1"),
    (O.adamax, {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
    (O.adamax, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.nadam, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.nadam, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (O.nadam, {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    (O.nadam, {"betas": (0.9, -0.5)}, "Invalid beta parameter at index 1: -0.5"),
    (O.nadam, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.nadam, {"momentum_decay": -0.1}, "Invalid momentum_decay value: -0.1"),
    (O.radam, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.radam, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (O.radam, {"betas": (1.5, 0.999)}, "Invalid beta parameter at index 0: 1.5"),
    (O.radam, {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    (O.radam, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.rmsprop, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.rmsprop, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (O.rmsprop, {"momentum": -0.1}, "Invalid momentum value: -0.1"),
    (O.rmsprop, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.rmsprop, {"alpha": -0.5}, "Invalid alpha value: -0.5"),
    (O.adagrad, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.adagrad, {"lr_decay": -0.1}, "Invalid lr_decay value: -0.1"),
    (O.adagrad, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.adagrad, {"initial_accumulator_value": -0.1}, "Invalid initial_accumulator_value value: -0.1"),
    (O.adagrad, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (O.adadelta, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.adadelta, {"rho": 1.5}, "Invalid rho value: 1.5"),
    (O.adadelta, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (O.adadelta, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.rprop, {"lr": -0.1}, "Invalid learning rate: -0.1"),
    (O.rprop, {"etas": (1.2, 0.5)}, "Invalid eta values: 1.2, 0.5"),
    (O.rprop, {"etas": (0.5, 0.9)}, "Invalid eta values: 0.5, 0.9"),
    (O.rprop, {"step_sizes": (1.0, 0.1)}, "rprop: expected step_sizes=(min, max) with min <= max"),
    (O.asgd, {"lr": -1.0}, "Invalid learning rate: -1.0"),
    (O.asgd, {"lambd": -1.0}, "Invalid lambd value: -1.0"),
    (O.asgd, {"alpha": -1.0}, "Invalid alpha value: -1.0"),
    (O.asgd, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    (O.lion, {"lr": 0.0}, "Invalid learning rate: 0.0"),
    (O.lion, {"betas": (1.5, 0.99)}, "Invalid beta parameter at index 0: 1.5"),
    (O.lion, {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    (O.lion, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (O.lbfgs, {"lr": -1.0}, "Invalid learning rate: -1.0"),
    # Adafactor and Muon (their own wording, NaN included)
    (O.adafactor, {"lr": -0.1}, "Learning rate should be >= 0 but is: -0.1"),
    (O.adafactor, {"lr": math.nan}, "Learning rate should be >= 0 but is: nan"),
    (O.adafactor, {"beta2_decay": 0.5}, "beta2_decay should be <= 0 but is: 0.5"),
    (O.adafactor, {"beta2_decay": math.nan}, "beta2_decay should be <= 0 but is: nan"),
    (O.adafactor, {"eps": (-1.0, 1e-3)}, "epsilon1 should be >= 0 but is: -1.0"),
    (O.adafactor, {"eps": (None, math.nan)}, "epsilon2 should be >= 0 but is: nan"),
    (O.adafactor, {"d": 0.5}, "Clipping threshold d should be >= 1 but is: 0.5"),
    (O.adafactor, {"d": math.nan}, "Clipping threshold d should be >= 1 but is: nan"),
    (O.adafactor, {"weight_decay": -1.0}, "weight_decay should be >= 0 but is: -1.0"),
    (O.adafactor, {"weight_decay": math.nan}, "weight_decay should be >= 0 but is: nan"),
    (O.muon, {"lr": -0.1}, "Learning rate should be >= 0 but is: -0.1"),
    (O.muon, {"lr": math.nan}, "Learning rate should be >= 0 but is: nan"),
    (O.muon, {"momentum": -0.5}, "momentum should be >= 0 but is: -0.5"),
    (O.muon, {"momentum": math.nan}, "momentum should be >= 0 but is: nan"),
    (O.muon, {"weight_decay": math.nan}, "weight decay should be >= 0 but is: nan"),
    (O.muon, {"adjust_lr_fn": "sqrt"}, "Adjust learning rate function sqrt is not supported"),
]


@pytest.mark.parametrize("factory,kwargs,message", BAD, ids=[f"{f.__name__}-{m}" for f, _, m in BAD])
def test_out_of_range_hyperparameters_use_torch_wording(factory, kwargs, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    factory(**kwargs)


# --- NaN for every float hyperparameter -----------------------------------------------------------

WORDING = {  # torch's wording where torch checks the value; the same form where it does not
    "lr": "Invalid learning rate", "eps": "Invalid epsilon value", "weight_decay": "Invalid weight_decay value",
    "momentum": "Invalid momentum value", "dampening": "Invalid dampening value", "alpha": "Invalid alpha value",
    "lambd": "Invalid lambd value", "t0": "Invalid t0 value", "rho": "Invalid rho value",
    "lr_decay": "Invalid lr_decay value", "initial_accumulator_value": "Invalid initial_accumulator_value value",
    "momentum_decay": "Invalid momentum_decay value", "tolerance_grad": "Invalid tolerance_grad value",
    "tolerance_change": "Invalid tolerance_change value", "betas": "Invalid beta parameter at index {i}",
    "etas": "Invalid eta values", "step_sizes": "Invalid step_sizes values",
}
OURS = ("clip_grad_norm", "clip_grad_value", "reduce_lr_on_plateau")  # no torch wording: ours
REQUIRED = {"clip_grad_norm": {"max_norm": 1.0}, "clip_grad_value": {"clip_value": 1.0}}
FACTORIES = ["sgd", "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "rprop",
             "asgd", "lion", "lbfgs", "scale_by_sgd", "scale_by_adam", "scale_by_adamax", "scale_by_nadam",
             "scale_by_radam", "scale_by_rmsprop", "scale_by_adagrad", "scale_by_adadelta", "scale_by_rprop",
             "scale_by_asgd", "scale_by_lion", *OURS]


def _nan_cases():
  """(factory name, kwargs with one NaN, expected message) for every float hyperparameter."""
  cases = []
  for name in FACTORIES:
    for p in inspect.signature(getattr(O, name)).parameters.values():
      default = REQUIRED.get(name, {}).get(p.name, p.default)
      if isinstance(default, float):
        kwargs = {**REQUIRED.get(name, {}), p.name: math.nan}
        if name in OURS:
          cases.append((name, kwargs, f"{name}: expected `{p.name}` to be a number, got nan"))
        else:
          cases.append((name, kwargs, f"{WORDING[p.name]}: nan"))
      elif isinstance(default, tuple) and all(isinstance(v, float) for v in default):
        for i in range(len(default)):
          pair = tuple(math.nan if j == i else v for j, v in enumerate(default))
          shown = ", ".join(str(v) for v in pair)
          message = (WORDING[p.name].format(i=i) + ": nan" if p.name == "betas" else f"{WORDING[p.name]}: {shown}")
          cases.append((name, {p.name: pair}, message))
  return cases


NAN = _nan_cases()


def test_the_nan_table_covers_every_optimizer_and_hyperparameter():
  covered = {(name, key) for name, kw, _ in NAN for key in kw if key not in REQUIRED.get(name, {}) or
             math.isnan(kw[key])}
  assert {name for name, _ in covered} == set(FACTORIES)
  assert ("sgd", "dampening") in covered and ("asgd", "t0") in covered and ("lbfgs", "tolerance_change") in covered
  assert ("reduce_lr_on_plateau", "min_lr") in covered and ("clip_grad_norm", "norm_type") in covered
  assert len(NAN) > 80


@pytest.mark.parametrize("name,kwargs,message", NAN, ids=[f"{n}-{next(iter(k))}-{m[-12:]}" for n, k, m in NAN])
def test_nan_hyperparameter_is_refused(name, kwargs, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    getattr(O, name)(**kwargs)


def test_nan_in_a_concrete_array_is_refused_too():
  with pytest.raises(ValueError, match=re.escape("Invalid learning rate: nan")):
    O.adam(lr=jnp.asarray(math.nan))


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": "fast"}, "Invalid learning rate: expected a float or a schedule, got str 'fast'"),
    ({"lr": True}, "Invalid learning rate: expected a float or a schedule, got bool True"),
    ({"weight_decay": None}, "Invalid weight_decay value: expected a float or a schedule, got NoneType None"),
    ({"betas": ("a", 0.999)}, "Invalid beta parameter at index 0: expected a float or a schedule, got str 'a'"),
], ids=["str", "bool", "none", "beta-str"])
def test_wrongly_typed_hyperparameters_raise_type_error(kwargs, message):
  with pytest.raises(TypeError, match=re.escape(message)):
    O.adam(**kwargs)


def test_schedules_and_injected_hyperparameters_skip_the_value_checks():
  O.adam(lr=lambda k: 0.1, betas=(lambda k: 0.9, 0.999))
  tx = optax.inject_hyperparams(O.adam)(lr=0.1)
  p = jnp.ones(2, jnp.float64)
  jax.jit(tx.update)(p, tx.init(p), p)  # traced hyperparameters: no Python check can run


# --- state layout ---------------------------------------------------------------------------------

STATES = [  # (scale_by_*, kwargs, state type, fields, per-leaf fields, fields switched off by default)
    ("scale_by_sgd", {"momentum": 0.9}, O.SGDState, ("step", "momentum_buffer"), ("momentum_buffer",),
     ("momentum_buffer",)),
    ("scale_by_adam", {"amsgrad": True}, O.AdamState, ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
     ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ("max_exp_avg_sq",)),
    ("scale_by_adamax", {}, O.AdamaxState, ("step", "exp_avg", "exp_inf"), ("exp_avg", "exp_inf"), ()),
    ("scale_by_nadam", {}, O.NAdamState, ("step", "mu_product", "exp_avg", "exp_avg_sq"), ("exp_avg", "exp_avg_sq"),
     ()),
    ("scale_by_radam", {}, O.RAdamState, ("step", "exp_avg", "exp_avg_sq"), ("exp_avg", "exp_avg_sq"), ()),
    ("scale_by_rmsprop", {"momentum": 0.9, "centered": True}, O.RMSpropState,
     ("step", "square_avg", "momentum_buffer", "grad_avg"), ("square_avg", "momentum_buffer", "grad_avg"),
     ("momentum_buffer", "grad_avg")),
    ("scale_by_adagrad", {}, O.AdagradState, ("step", "sum"), ("sum",), ()),
    ("scale_by_adadelta", {}, O.AdadeltaState, ("step", "square_avg", "acc_delta"), ("square_avg", "acc_delta"),
     ()),
    ("scale_by_rprop", {}, O.RpropState, ("step", "prev", "step_size"), ("prev", "step_size"), ()),
    ("scale_by_asgd", {}, O.ASGDState, ("step", "eta", "mu", "ax"), ("ax",), ()),
    ("scale_by_lion", {}, O.LionState, ("step", "exp_avg"), ("exp_avg",), ()),
]


@pytest.mark.parametrize("name,kwargs,state_type,fields,per_leaf,off", STATES, ids=[s[0] for s in STATES])
def test_state_fields_and_dtypes(name, kwargs, state_type, fields, per_leaf, off):
  params = {"w": jnp.zeros((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.bfloat16)}
  state = getattr(O, name)(**kwargs).init(params)
  assert isinstance(state, state_type) and state._fields == fields
  assert state.step.dtype == jnp.int32 and state.step.shape == ()
  for field in per_leaf:
    leaves = getattr(state, field)
    assert leaves["w"].dtype == jnp.float32 and leaves["b"].dtype == jnp.bfloat16, field
    assert leaves["w"].shape == (2, 3) and leaves["b"].shape == (3,), field
  plain = getattr(O, name)().init(params)
  for field in off:
    assert getattr(plain, field) == (), field


# --- gradients an update cannot use ---------------------------------------------------------------

ALIASES = ["sgd", "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "rprop", "asgd",
           "lion"]


def _make(name):
  return getattr(O, name)(**({"momentum": 0.9} if name == "sgd" else {}))


def _shown(name):
  return "adam" if name == "adamw" else name  # adamw is adam's chain: its messages name adam


@pytest.mark.parametrize("name", ALIASES)
def test_grads_with_another_structure_name_both_structures(name):
  tx = _make(name)
  params = {"b": jnp.zeros(2, jnp.float32), "w": jnp.zeros(3, jnp.float32)}
  state = tx.init(params)
  with pytest.raises(ValueError) as info:
    tx.update({"w": jnp.zeros(3, jnp.float32)}, state, params)
  text = str(info.value)
  assert text.startswith(f"{_shown(name)}: expected gradients with the structure of the")
  # the expected (state/params) structure first, then the gradients' own
  expected, given = text.index("'b'"), text.index("got gradients with structure")
  assert expected < given and "{'w': *}" in text[given:]


@pytest.mark.parametrize("name", ALIASES)
def test_integer_gradients_raise_type_error(name):
  tx = _make(name)
  params = {"w": jnp.zeros(3, jnp.float32)}
  with pytest.raises(TypeError, match=re.escape(f"{_shown(name)}: expected floating-point gradients, got a leaf of"
                                                " dtype int32")):
    tx.update({"w": jnp.zeros(3, jnp.int32)}, tx.init(params), params)


def test_integer_gradients_raise_before_weight_decay_rounds_them():
  tx = O.sgd(lr=0.1, weight_decay=0.5)
  p = jnp.ones(2, jnp.float32)
  with pytest.raises(TypeError, match="sgd: expected floating-point gradients"):
    tx.update(jnp.ones(2, jnp.int32), tx.init(p), p)


@pytest.mark.parametrize("tx", [O.clip_grad_norm(1.0), O.clip_grad_value(1.0)], ids=["norm", "value"])
def test_clipping_refuses_integer_gradients(tx):
  g = jnp.ones(2, jnp.int32)
  with pytest.raises(TypeError, match="expected floating-point gradients"):
    tx.update(g, tx.init(g))


def test_the_structure_check_runs_under_jit():
  tx = O.adam()
  p = {"w": jnp.zeros(3, jnp.float32)}
  with pytest.raises(ValueError, match="adam: expected gradients with the structure"):
    jax.jit(tx.update)({"v": jnp.zeros(3, jnp.float32)}, tx.init(p), p)
  np.testing.assert_array_equal(jax.jit(tx.update)(p, tx.init(p), p)[0]["w"], np.zeros(3, np.float32))

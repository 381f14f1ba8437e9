"""config.build: sections, validation messages, lr/schedule plumbing, clipping, param groups.

Expected numbers come from hand math (schedules, SGD updates, clipping coefficients), numpy
(losses), or torch where torch is the specification (ReduceLROnPlateau).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from losslab_jax import config
from tests.helpers import assert_close

F64 = jnp.float64


def base(**extra):
  cfg = {"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1}}
  cfg.update(extra)
  return cfg


def sgd_updates(scheme, params, grads, steps):
  """The updates of ``steps`` consecutive calls with the same gradients."""
  state = scheme.optimizer.init(params)
  out = []
  for _ in range(steps):
    u, state = scheme.optimizer.update(grads, state, params)
    out.append(u)
  return out


def np_cross_entropy(logits, labels, weight=None, label_smoothing=0.0):
  logits = np.asarray(logits, np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  n, c = logp.shape
  w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
  nll = -logp[np.arange(n), labels] * w[labels]
  smooth = -(logp * w).sum(-1) / c
  loss = (1 - label_smoothing) * nll + label_smoothing * smooth
  return loss.sum() / w[labels].sum()


# --- the Scheme object -------------------------------------------------------------------------------


def test_scheme_unpacks_into_loss_optimizer_schedule():
  scheme = config.build(base(schedule={"name": "step_lr", "step_size": 3}))
  loss_fn, tx, schedule = scheme
  assert loss_fn is scheme.loss_fn and tx is scheme.optimizer and schedule is scheme.schedule
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  assert "sgd" in repr(scheme) and "mse_loss" in repr(scheme)


def test_no_schedule_gives_none_and_a_constant_lr():
  scheme = config.build(base())
  assert scheme.schedule is None
  p = {"w": jnp.ones(2, F64)}
  for u in sgd_updates(scheme, p, {"w": jnp.full(2, 2.0, F64)}, 3):
    assert_close(u["w"], [-0.2, -0.2])


def test_spec_is_a_copy_and_rebuilds_the_same_scheme():
  cfg = base(schedule={"name": "step_lr", "step_size": 2, "gamma": 0.5})
  scheme = config.build(cfg)
  cfg["optimizer"]["lr"] = 99.0  # mutating the input does not reach the scheme
  again = config.build(scheme.spec)
  for k in range(6):
    assert_close(again.schedule(k), scheme.schedule(k))
  assert_close(scheme.schedule(0), 0.1)


def test_rationale_starts_with_description_and_lists_components():
  scheme = config.build(base(description="my recipe", gradient_clipping={"max_norm": 2.0}))
  assert scheme.rationale.startswith("my recipe")
  assert "mse_loss" in scheme.rationale and "sgd(lr=0.1)" in scheme.rationale
  assert "clip_grad_norm(max_norm=2.0)" in scheme.rationale


# --- losses ------------------------------------------------------------------------------------------


def test_loss_kwargs_reach_the_loss():
  rng = np.random.default_rng(0)
  logits, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
  scheme = config.build({"loss": {"name": "cross_entropy", "weight": [1.0, 2.0, 0.5, 3.0],
                                  "label_smoothing": 0.2}, "optimizer": {"name": "adam"}})
  got = scheme.loss_fn(jnp.asarray(logits, F64), jnp.asarray(labels))
  assert_close(got, np_cross_entropy(logits, labels, [1.0, 2.0, 0.5, 3.0], 0.2))


def test_list_kwargs_take_the_dtype_of_the_input():
  scheme = config.build({"loss": {"name": "cross_entropy", "weight": [1.0, 3.0]}, "optimizer": {"name": "adam"}})
  logits = jnp.asarray([[0.5, -1.0], [2.0, 0.0]], jnp.float32)
  out = scheme.loss_fn(logits, jnp.asarray([1, 0]))
  assert out.dtype == jnp.float32
  assert_close(out, np_cross_entropy(np.asarray(logits), np.array([1, 0]), [1.0, 3.0]), rtol=1e-6)  # float32 input, float64 reference


def test_loss_terms_are_a_weighted_sum():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  scheme = config.build({"loss": {"terms": [{"name": "mse_loss", "scale": 2.0},
                                            {"name": "l1_loss", "scale": 0.5}]},
                         "optimizer": {"name": "adam"}})
  expected = 2.0 * np.mean((x - y) ** 2) + 0.5 * np.mean(np.abs(x - y))
  assert_close(scheme.loss_fn(jnp.asarray(x, F64), jnp.asarray(y, F64)), expected)
  assert "mse_loss + l1_loss" in repr(scheme)


def test_loss_terms_default_scale_is_one():
  x, y = jnp.asarray([1.0, 2.0], F64), jnp.asarray([0.0, 0.0], F64)
  scheme = config.build({"loss": {"terms": [{"name": "mse_loss"}, {"name": "l1_loss"}]},
                         "optimizer": {"name": "adam"}})
  assert_close(scheme.loss_fn(x, y), 2.5 + 1.5)


def test_loss_call_errors_name_the_config_path():
  scheme = config.build({"loss": {"name": "mse_loss", "reduction": "avg"}, "optimizer": {"name": "adam"}})
  with pytest.raises(ValueError, match=r"^config.build: loss \(mse_loss\): mse_loss: expected reduction"):
    scheme.loss_fn(jnp.ones(2, F64), jnp.ones(2, F64))


def test_loss_list_of_strings_is_refused():
  with pytest.raises(config.ConfigError, match=r"loss.weight: expected a list of numbers"):
    config.build({"loss": {"name": "cross_entropy", "weight": ["a", "b"]}, "optimizer": {"name": "adam"}})


# --- validation messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("cfg,pattern", [
    pytest.param(base(shedule={"name": "step_lr"}), r"top level: unknown key 'shedule' \(did you mean 'schedule'\?\);"
                 r" allowed keys: description, gradient_clipping, loss, name, optimizer, param_groups, schedule",
                 id="top-level-key"),
    pytest.param({"loss": {"name": "mse_loss"}, "optimizer": {"name": "adamw", "beta": [0.9, 0.9]}},
                 r"optimizer: unknown key 'beta' \(did you mean 'betas'\?\); allowed keys for adamw: amsgrad, betas,"
                 r" eps, lr, maximize, name, weight_decay", id="optimizer-key"),
    pytest.param({"loss": {"name": "mse_loss", "delta": 1.0}, "optimizer": {"name": "adam"}},
                 r"loss: unknown key 'delta'; allowed keys for mse_loss: name, reduction", id="loss-key"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": 2, "gama": 0.5}),
                 r"schedule: unknown key 'gama' \(did you mean 'gamma'\?\); allowed keys for step_lr: gamma, lr, name,"
                 r" step_size, steps_per_epoch", id="schedule-key"),
    pytest.param(base(gradient_clipping={"max_norm": 1.0, "type": 2}),
                 r"gradient_clipping: unknown key 'type' \(did you mean 'norm_type'\?\); allowed keys: clip_value, max_norm, norm_type", id="clip-key"),
    pytest.param({"loss": {"name": "crossentropy"}, "optimizer": {"name": "adam"}},
                 r"loss.name: unknown loss 'crossentropy' \(did you mean 'cross_entropy'.*; allowed: asymmetric_mse_loss,"
                 r" binary_cross_entropy, .*triplet_margin_loss$", id="loss-name"),
    pytest.param({"loss": {"name": "mse_loss"}, "optimizer": {"name": "adamx"}},
                 r"optimizer.name: unknown optimizer 'adamx' .*; allowed: adadelta, adagrad, adam, adamax, adamw, asgd,"
                 r" lbfgs, lion, nadam, radam, rmsprop, rprop, sgd$", id="optimizer-name"),
    pytest.param(base(schedule={"name": "cosine"}),
                 r"schedule.name: unknown schedule 'cosine' \(did you mean 'warmup_cosine'.*\); allowed: chained, constant_lr, cosine_annealing_lr, .*"
                 r" warmup_cosine$", id="schedule-name"),
    pytest.param({"optimizer": {"name": "adam"}}, r"missing required key 'loss'", id="no-loss"),
    pytest.param({"loss": {"name": "mse_loss"}}, r"missing required key 'optimizer'", id="no-optimizer"),
    pytest.param({"loss": {"name": "mse_loss"}, "optimizer": {"lr": 0.1}}, r"optimizer: missing key 'name'",
                 id="no-optimizer-name"),
    pytest.param({"loss": "mse_loss", "optimizer": {"name": "adam"}}, r"loss: expected a mapping, got str",
                 id="loss-not-mapping"),
    pytest.param(base(schedule={"name": "step_lr"}), r"schedule: step_lr needs 'step_size'", id="missing-arg"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": 2, "lr": 0.5}),
                 r"the learning rate is set twice, optimizer.lr=0.1 and schedule.lr=0.5", id="lr-twice"),
    pytest.param(base(gradient_clipping={"norm_type": 2.0}), r"expected exactly one of 'max_norm'", id="clip-none"),
    pytest.param(base(gradient_clipping={"max_norm": 1.0, "clip_value": 1.0}), r"expected exactly one of 'max_norm'",
                 id="clip-both"),
    pytest.param(base(schedule={"name": "lambda_lr", "fn": "lambda k: 0.9 ** k"}),
                 r"schedule.fn: lambda_lr needs a Python callable", id="lambda-from-yaml"),
    pytest.param(base(schedule={"name": "sequential_lr", "milestones": [2], "schedules": []}),
                 r"schedule.schedules: expected a non-empty list", id="sequential-empty"),
    pytest.param(base(schedule={"name": "sequential_lr", "milestones": [2],
                                "schedules": [{"name": "reduce_lr_on_plateau"}]}),
                 r"reduce_lr_on_plateau is driven by a metric and can only be the top-level schedule", id="nested-plateau"),
    pytest.param(base(name=3), r"name: expected a string, got 3", id="name-not-str"),
])
def test_bad_configs_raise_config_errors_that_name_the_key(cfg, pattern):
  with pytest.raises(config.ConfigError, match=pattern):
    config.build(cfg)


@pytest.mark.parametrize("cfg,pattern", [
    # a bool is not a number: lr: true used to become 1.0 silently
    pytest.param(base(optimizer={"name": "sgd", "lr": True}),
                 r"^config.build: optimizer.lr: expected a number, got True \(a bool is not a number\)$", id="lr-true"),
    pytest.param(base(optimizer={"name": "sgd", "lr": "fast"}), r"^config.build: optimizer.lr: expected a number, got 'fast'$",
                 id="lr-string"),
    pytest.param(base(optimizer={"name": "adam", "betas": ["a", "b"]}),
                 r"^config.build: optimizer.betas: expected a list of numbers, got \('a', 'b'\)$", id="betas-strings"),
    pytest.param(base(optimizer={"name": "adam", "betas": 0.9}),
                 r"^config.build: optimizer.betas: expected a list of numbers, got 0.9$", id="betas-number"),
    pytest.param(base(optimizer={"name": "adamw", "weight_decay": None}),
                 r"^config.build: optimizer.weight_decay: expected a number, got None$", id="weight-decay-null"),
    pytest.param(base(optimizer={"name": "sgd", "lr": 0.1, "nesterov": "yes"}),
                 r"^config.build: optimizer.nesterov: expected true or false, got 'yes'$", id="nesterov-string"),
    pytest.param(base(optimizer={"name": "sgd", "lr": 0.1, "nesterov": 1}),
                 r"^config.build: optimizer.nesterov: expected true or false, got 1$", id="nesterov-int"),
    pytest.param(base(param_groups=[{"match": "w", "lr": True}]),
                 r"^config.build: param_groups\[0\].lr: expected a number, got True \(a bool is not a number\)$",
                 id="group-lr-true"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": 2.5}),
                 r"^config.build: schedule.step_size: expected an integer, got 2.5$", id="step-size-float"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": True}),
                 r"^config.build: schedule.step_size: expected an integer, got True \(a bool is not a number\)$",
                 id="step-size-bool"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": 2, "gamma": "half"}),
                 r"^config.build: schedule.gamma: expected a number, got 'half'$", id="gamma-string"),
    pytest.param(base(schedule={"name": "multistep_lr", "milestones": [2, "x"]}),
                 r"^config.build: schedule.milestones: expected a list of integers, got \[2, 'x'\]$", id="milestones"),
    pytest.param(base(schedule={"name": "sequential_lr", "milestones": [2],
                                "schedules": [{"name": "step_lr", "step_size": 2, "gamma": None}]}),
                 r"^config.build: schedule.schedules\[0\].gamma: expected a number, got None$", id="nested-schedule"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": 2, "steps_per_epoch": "10"}),
                 r"^config.build: schedule.steps_per_epoch: expected an integer, got '10'$", id="steps-per-epoch"),
    pytest.param(base(schedule={"name": "reduce_lr_on_plateau", "patience": "3"}),
                 r"^config.build: schedule.patience: expected an integer, got '3'$", id="plateau-patience"),
    pytest.param(base(gradient_clipping={"max_norm": True}),
                 r"^config.build: gradient_clipping.max_norm: expected a number, got True \(a bool is not a number\)$",
                 id="clip-bool"),
    pytest.param(base(gradient_clipping={"clip_value": "1"}),
                 r"^config.build: gradient_clipping.clip_value: expected a number, got '1'$", id="clip-string"),
    pytest.param({"loss": {"name": "cross_entropy", "label_smoothing": True}, "optimizer": {"name": "adam"}},
                 r"^config.build: loss.label_smoothing: expected a number, got True \(a bool is not a number\)$",
                 id="loss-bool"),
    pytest.param({"loss": {"name": "cross_entropy", "ignore_index": 1.5}, "optimizer": {"name": "adam"}},
                 r"^config.build: loss.ignore_index: expected an integer, got 1.5$", id="loss-int"),
    pytest.param({"loss": {"name": "mse_loss", "reduction": 1}, "optimizer": {"name": "adam"}},
                 r"^config.build: loss.reduction: expected a string, got 1$", id="loss-reduction-int"),
    pytest.param({"loss": {"terms": [{"name": "mse_loss", "scale": True}]}, "optimizer": {"name": "adam"}},
                 r"^config.build: loss.terms\[0\].scale: expected a number, got True$", id="scale-bool"),
])
def test_wrongly_typed_values_raise_config_errors_that_name_the_key(cfg, pattern):
  with pytest.raises(config.ConfigError, match=pattern):
    config.build(cfg)


def test_numbers_from_numpy_jax_and_callables_from_a_dict_are_accepted():
  scheme = config.build(base(optimizer={"name": "adam", "lr": np.float64(0.1), "betas": (np.float32(0.5), 0.9),
                                        "eps": jnp.asarray(1e-8, F64)},
                             schedule={"name": "step_lr", "step_size": np.int64(2)}))
  assert_close([scheme.schedule(k) for k in range(3)], [0.1, 0.1, 0.01])
  scheme = config.build(base(schedule={"name": "step_lr", "step_size": 2e0}))   # YAML's 2e0: a whole float
  assert_close([scheme.schedule(k) for k in range(3)], [0.1, 0.1, 0.01])
  scheme = config.build(base(optimizer={"name": "sgd", "lr": lambda k: 0.5 ** k}))
  p = {"w": jnp.ones(1, F64)}
  assert_close([u["w"][0] for u in sgd_updates(scheme, p, {"w": jnp.ones(1, F64)}, 2)], [-1.0, -0.5])


def test_config_error_is_a_value_error():
  assert issubclass(config.ConfigError, ValueError)


@pytest.mark.parametrize("cfg,exc,pattern", [
    pytest.param({"loss": {"name": "mse_loss"}, "optimizer": {"name": "adam", "betas": [1.5, 0.999]}},
                 ValueError, r"^config.build: optimizer: Invalid beta parameter at index 0: 1.5", id="adam-beta"),
    pytest.param(base(optimizer={"name": "sgd", "lr": -1.0}), ValueError, r"^config.build: optimizer: .*-1.0",
                 id="sgd-negative-lr"),
    pytest.param(base(schedule={"name": "step_lr", "step_size": 0}), ValueError, r"^config.build: schedule: step_lr",
                 id="step-size-0"),
    pytest.param(base(gradient_clipping={"max_norm": -1.0}), ValueError, r"^config.build: gradient_clipping: ",
                 id="clip-negative"),
])
def test_factory_errors_propagate_with_the_config_path(cfg, exc, pattern):
  with pytest.raises(exc, match=pattern):
    config.build(cfg)


def test_build_rejects_other_sources():
  with pytest.raises(TypeError, match="config.build: expected a path to a YAML file or a mapping, got int"):
    config.build(3)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    config.build("/nonexistent/recipe.yaml")


# --- schedules and the optimizer's lr -----------------------------------------------------------------


def test_schedule_lr_defaults_to_optimizer_lr_and_drives_the_updates():
  scheme = config.build(base(schedule={"name": "step_lr", "step_size": 2, "gamma": 0.5}))
  assert_close([scheme.schedule(k) for k in range(5)], [0.1, 0.1, 0.05, 0.05, 0.025])
  p = {"w": jnp.zeros(2, F64)}
  ups = sgd_updates(scheme, p, {"w": jnp.ones(2, F64)}, 5)
  assert_close([u["w"][0] for u in ups], [-0.1, -0.1, -0.05, -0.05, -0.025])


def test_schedule_lr_falls_back_to_the_optimizer_default():
  scheme = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "adamw"},
                         "schedule": {"name": "step_lr", "step_size": 1}})
  assert_close(scheme.schedule(0), 1e-3)  # torch.optim.AdamW's default lr
  assert_close(scheme.schedule(1), 1e-4)


def test_one_cycle_max_lr_from_the_optimizer_or_the_schedule():
  from_opt = config.build(base(schedule={"name": "one_cycle_lr", "total_steps": 10}))
  assert_close(from_opt.schedule(0), 0.1 / 25)  # initial lr = max_lr / div_factor
  from_sched = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd"},
                             "schedule": {"name": "one_cycle_lr", "max_lr": 0.5, "total_steps": 10}})
  assert_close(from_sched.schedule(0), 0.5 / 25)


def test_steps_per_epoch_makes_the_schedule_count_epochs():
  scheme = config.build(base(schedule={"name": "step_lr", "step_size": 2, "steps_per_epoch": 3}))
  assert_close([scheme.schedule(k) for k in (0, 5, 6, 11, 12)], [0.1, 0.1, 0.01, 0.01, 0.001])


def test_sequential_lr_fills_the_lr_of_every_child():
  scheme = config.build(base(schedule={
      "name": "sequential_lr", "milestones": [2],
      "schedules": [{"name": "constant_lr", "factor": 0.5, "total_iters": 2},
                    {"name": "exponential_lr", "gamma": 0.5}]}))
  # torch SequentialLR: k < 2 -> ConstantLR(0.1, 0.5) = 0.05; k >= 2 -> 0.1 * 0.5 ** (k - 2)
  assert_close([scheme.schedule(k) for k in range(5)], [0.05, 0.05, 0.1, 0.05, 0.025])


def test_lambda_lr_from_a_dict_with_a_callable():
  scheme = config.build(base(schedule={"name": "lambda_lr", "fn": lambda k: 1.0 / (1.0 + k)}))
  assert_close([scheme.schedule(k) for k in range(3)], [0.1, 0.05, 0.1 / 3])


def test_a_scheduled_optimizer_lr_and_a_schedule_section_conflict():
  with pytest.raises(config.ConfigError, match=r"optimizer.lr: optimizer.lr is already a schedule"):
    config.build(base(optimizer={"name": "sgd", "lr": ll.schedules.step_lr(0.1, 2)},
                      schedule={"name": "step_lr", "step_size": 2}))
  scheme = config.build(base(optimizer={"name": "sgd", "lr": ll.schedules.step_lr(0.1, 1)}))  # fine alone
  ups = sgd_updates(scheme, {"w": jnp.zeros(1, F64)}, {"w": jnp.ones(1, F64)}, 2)
  assert_close([u["w"][0] for u in ups], [-0.1, -0.01])


def test_array_kwargs_from_a_dict_are_cast_like_lists():
  w = np.asarray([1.0, 3.0], np.float64)
  scheme = config.build({"loss": {"name": "cross_entropy", "weight": w}, "optimizer": {"name": "adam"}})
  out = scheme.loss_fn(jnp.asarray([[0.5, -1.0], [2.0, 0.0]], jnp.float32), jnp.asarray([1, 0]))
  assert out.dtype == jnp.float32


def test_optimizer_lists_become_tuples():
  scheme = config.build({"loss": {"name": "mse_loss"},
                         "optimizer": {"name": "adamw", "lr": 0.01, "betas": [0.5, 0.9], "weight_decay": 0.0}})
  direct = ll.optim.adamw(lr=0.01, betas=(0.5, 0.9), weight_decay=0.0)
  p = {"w": jnp.asarray([1.0, -2.0], F64)}
  grads = [{"w": jnp.asarray([0.3, 0.1], F64)}, {"w": jnp.asarray([-0.2, 0.4], F64)}]
  s1, s2 = scheme.optimizer.init(p), direct.init(p)
  for g in grads:
    u1, s1 = scheme.optimizer.update(g, s1, p)
    u2, s2 = direct.update(g, s2, p)
    assert_close(u1["w"], u2["w"])


# --- gradient clipping ---------------------------------------------------------------------------------


def test_gradient_clipping_by_norm_before_the_step():
  scheme = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 1.0},
                         "gradient_clipping": {"max_norm": 1.0}})
  g = {"a": jnp.asarray([3.0], F64), "b": jnp.asarray([4.0], F64)}  # global norm 5
  (u,) = sgd_updates(scheme, {"a": jnp.zeros(1, F64), "b": jnp.zeros(1, F64)}, g, 1)
  coef = 1.0 / (5.0 + 1e-6)  # torch's clip_grad_norm_ coefficient
  assert_close([u["a"][0], u["b"][0]], [-3.0 * coef, -4.0 * coef])


def test_gradient_clipping_by_value():
  scheme = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 1.0},
                         "gradient_clipping": {"clip_value": 0.5}})
  (u,) = sgd_updates(scheme, {"w": jnp.zeros(3, F64)}, {"w": jnp.asarray([-2.0, 0.1, 3.0], F64)}, 1)
  assert_close(u["w"], [0.5, -0.1, -0.5])


# --- param groups --------------------------------------------------------------------------------------


def group_params():
  return {"embed": {"table": jnp.ones(2, F64)},
          "backbone": {"kernel": jnp.ones(2, F64), "bias": jnp.ones(2, F64)},
          "head": {"kernel": jnp.ones(2, F64), "bias": jnp.ones(2, F64)}}


def test_param_groups_lr_frozen_and_first_match_wins():
  cfg = {"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.5},
         "param_groups": [{"match": "^embed/", "frozen": True},
                          {"match": "^backbone/", "lr": 0.01},
                          {"match": "bias$", "weight_decay": 0.0}]}
  scheme = config.build(cfg)
  p = group_params()
  g = jax.tree.map(lambda x: jnp.full_like(x, 2.0), p)
  (u,) = sgd_updates(scheme, p, g, 1)
  # SGD with L2 decay: -lr * (g + wd * p) = -lr * (2 + wd)
  assert_close(u["embed"]["table"], [0.0, 0.0])
  assert_close(u["backbone"]["kernel"], [-0.01 * 2.5] * 2)
  assert_close(u["backbone"]["bias"], [-0.01 * 2.5] * 2)  # the backbone group came first
  assert_close(u["head"]["kernel"], [-0.1 * 2.5] * 2)  # default group
  assert_close(u["head"]["bias"], [-0.1 * 2.0] * 2)  # no decay
  assert "param group 0 ('^embed/'): frozen" in scheme.rationale


def test_param_groups_each_get_the_schedule_on_their_own_lr():
  cfg = {"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1},
         "schedule": {"name": "step_lr", "step_size": 2},
         "param_groups": [{"match": "^backbone/", "lr": 0.01}]}
  scheme = config.build(cfg)
  p = {"backbone": {"w": jnp.zeros(1, F64)}, "head": {"w": jnp.zeros(1, F64)}}
  ups = sgd_updates(scheme, p, jax.tree.map(jnp.ones_like, p), 3)
  assert_close([u["backbone"]["w"][0] for u in ups], [-0.01, -0.01, -0.001])
  assert_close([u["head"]["w"][0] for u in ups], [-0.1, -0.1, -0.01])
  assert_close(scheme.schedule(2), 0.01)  # Scheme.schedule: the default group's


def test_param_groups_with_clipping_clip_over_all_groups():
  cfg = {"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 1.0},
         "gradient_clipping": {"max_norm": 1.0}, "param_groups": [{"match": "^a$", "lr": 0.5}]}
  (u,) = sgd_updates(config.build(cfg), {"a": jnp.zeros(1, F64), "b": jnp.zeros(1, F64)},
                     {"a": jnp.asarray([3.0], F64), "b": jnp.asarray([4.0], F64)}, 1)
  coef = 1.0 / (5.0 + 1e-6)
  assert_close([u["a"][0], u["b"][0]], [-0.5 * 3.0 * coef, -4.0 * coef])


def test_param_group_matching_nothing_raises_at_init_with_the_paths():
  scheme = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1},
                         "param_groups": [{"match": "^backbon/", "lr": 0.01}]})
  with pytest.raises(config.ConfigError, match=r"param_groups\[0\].match: pattern '\^backbon/' matches no parameter"
                     r".*parameter paths: backbone/bias, backbone/kernel"):
    scheme.optimizer.init(group_params())


@pytest.mark.parametrize("group,pattern", [
    pytest.param({"lr": 0.1}, r"param_groups\[0\].match: expected a regular expression string, got None", id="no-match"),
    pytest.param({"match": "(", "lr": 0.1}, r"param_groups\[0\].match: invalid regular expression", id="bad-regex"),
    pytest.param({"match": "a", "lr_rate": 0.1},
                 r"param_groups\[0\]: unknown key 'lr_rate'; allowed keys for a param group of sgd: dampening, frozen, lr, match, maximize,",
                 id="unknown-key"),
    pytest.param({"match": "a", "frozen": True, "lr": 0.1}, r"a frozen group takes no hyperparameters, got \['lr'\]",
                 id="frozen-with-lr"),
    pytest.param({"match": "a", "frozen": "yes"}, r"param_groups\[0\].frozen: expected true or false", id="frozen-str"),
])
def test_bad_param_groups(group, pattern):
  with pytest.raises(config.ConfigError, match=pattern):
    config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1}, "param_groups": [group]})


def test_param_groups_must_be_a_list():
  with pytest.raises(config.ConfigError, match=r"param_groups: expected a list of group mappings, got dict"):
    config.build(base(param_groups={"match": "a"}))


def test_param_paths_of_an_nnx_model_drop_the_variable_value():
  nnx = pytest.importorskip("flax.nnx")

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.backbone = nnx.Linear(2, 3, rngs=rngs)
      self.layers = nnx.List([nnx.Linear(3, 3, rngs=rngs)])

  state = nnx.state(Net(nnx.Rngs(0)), nnx.Param)
  assert config.param_paths(state) == ["backbone/bias", "backbone/kernel", "layers/0/bias", "layers/0/kernel"]


def test_param_groups_with_nnx_optimizer():
  nnx = pytest.importorskip("flax.nnx")

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.backbone = nnx.Linear(2, 2, rngs=rngs)
      self.head = nnx.Linear(2, 1, rngs=rngs)

    def __call__(self, x):
      return self.head(self.backbone(x))

  model = Net(nnx.Rngs(0))
  before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  scheme = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1},
                         "param_groups": [{"match": "^backbone/", "frozen": True}]})
  opt = nnx.Optimizer(model, scheme.optimizer, wrt=nnx.Param)
  x, y = jnp.ones((4, 2), F64), jnp.zeros((4, 1), F64)
  grads = nnx.grad(lambda m: scheme.loss_fn(m(x), y))(model)
  opt.update(model, grads)
  after = nnx.state(model, nnx.Param)
  assert_close(after["backbone"]["kernel"][...], before["backbone"]["kernel"][...])
  expected = before["head"]["kernel"][...] - 0.1 * grads["head"]["kernel"][...]
  assert_close(after["head"]["kernel"][...], expected)


# --- reduce_lr_on_plateau ------------------------------------------------------------------------------


def test_reduce_lr_on_plateau_follows_torch():
  torch = pytest.importorskip("torch")
  metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.6, 0.7, 0.8]
  scheme = config.build({"loss": {"name": "mse_loss"}, "optimizer": {"name": "sgd", "lr": 0.1},
                         "schedule": {"name": "reduce_lr_on_plateau", "factor": 0.5, "patience": 1}})
  assert scheme.schedule is None
  p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
  topt = torch.optim.SGD([p], lr=0.1)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=1)
  params = {"w": jnp.zeros(1, F64)}
  state = scheme.optimizer.init(params)
  for m in metrics:
    sched.step(m)
    u, state = scheme.optimizer.update({"w": jnp.ones(1, F64)}, state, params, value=jnp.asarray(m, F64))
    assert_close(u["w"][0], -topt.param_groups[0]["lr"], err_msg=f"metric {m}")


# --- YAML ----------------------------------------------------------------------------------------------


def test_yaml_file_builds_like_its_dict(tmp_path):
  pytest.importorskip("yaml")
  path = tmp_path / "recipe.yaml"
  path.write_text("loss:\n  name: mse_loss\noptimizer:\n  name: sgd\n  lr: 1e-2   # YAML 1.1 reads this as a string\n"
                  "schedule:\n  name: step_lr\n  step_size: 2\n  gamma: 5.0e-1\n")
  data = config.load(path)
  assert data["optimizer"]["lr"] == 0.01 and isinstance(data["optimizer"]["lr"], float)
  scheme = config.build(path)
  assert_close([scheme.schedule(k) for k in range(3)], [0.01, 0.01, 0.005])


def test_yaml_errors_name_the_file(tmp_path):
  pytest.importorskip("yaml")
  path = tmp_path / "bad.yaml"
  path.write_text("loss: {name: mse_loss}\noptimizer: {name: sgd}\nclipping: {max_norm: 1}\n")
  with pytest.raises(config.ConfigError, match=r"^config.build\(bad.yaml\): top level: unknown key 'clipping'"):
    config.build(path)
  (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
  with pytest.raises(config.ConfigError, match=r"expected a mapping at the top level, got list"):
    config.build(tmp_path / "list.yaml")


def test_yaml_duplicate_keys_are_an_error(tmp_path):
  """PyYAML alone keeps the last of two equal keys; a config that says lr twice is a mistake."""
  pytest.importorskip("yaml")
  path = tmp_path / "twice.yaml"
  path.write_text("loss: {name: mse_loss}\noptimizer:\n  name: sgd\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.5\n")
  with pytest.raises(config.ConfigError, match=r"^config.load\(twice.yaml\): line 6: duplicate key 'lr'"
                                               r" \(first given on line 4\)"):
    config.load(path)
  with pytest.raises(config.ConfigError, match=r"duplicate key 'lr'"):
    config.build(path)
  path.write_text("loss: {name: mse_loss}\noptimizer: {name: sgd}\nloss: {name: l1_loss}\n")
  with pytest.raises(config.ConfigError, match=r"line 3: duplicate key 'loss' \(first given on line 1\)"):
    config.load(path)
  # the same key in different mappings, and YAML merge keys, are fine
  path.write_text("base: &b {lr: 0.1}\nloss: {name: mse_loss}\noptimizer: {<<: *b, name: sgd}\n")
  assert config.load(path)["optimizer"] == {"lr": 0.1, "name": "sgd"}


def test_yaml_numbers_only_coerce_number_strings():
  from losslab_jax.config._build import _coerce_yaml_numbers
  assert _coerce_yaml_numbers({"a": "1e-3", "b": ["-2E+2", "cos", "1e"], "c": ".5e1"}) == \
      {"a": 1e-3, "b": [-200.0, "cos", "1e"], "c": 5.0}


EXAMPLE_INPUTS = {
    "classification": lambda r: (r.normal(size=(6, 3)), r.integers(0, 3, 6)),
    "finetune_param_groups": lambda r: (r.normal(size=(6, 3)), r.integers(0, 3, 6)),
    "regression": lambda r: (r.normal(size=(6, 1)), r.normal(size=(6, 1))),
    "segmentation": lambda r: (r.normal(size=(2, 5, 5, 4)), r.integers(0, 4, (2, 5, 5))),
    "metric_learning": lambda r: (r.normal(size=(6, 4)), r.normal(size=(6, 4)), r.normal(size=(6, 4))),
}


def test_every_scheme_has_an_example_yaml():
  assert set(config.examples()) == set(EXAMPLE_INPUTS)
  assert {"classification", "regression", "segmentation", "metric_learning"} <= set(config.examples())


@pytest.mark.parametrize("name", sorted(EXAMPLE_INPUTS))
def test_example_yaml_builds_and_its_loss_runs(name):
  pytest.importorskip("yaml")
  scheme = config.build(config.examples()[name])
  args = [jnp.asarray(a, F64) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a)
          for a in EXAMPLE_INPUTS[name](np.random.default_rng(0))]
  value = scheme.loss_fn(*args)
  assert value.shape == () and bool(jnp.isfinite(value))
  assert scheme.rationale.startswith(scheme.spec["description"][:30])
  assert scheme.schedule is not None


def test_classification_yaml_numbers():
  """The example's alpha is N / (K n_k) for counts 5000 / 2000 / 40, and its focal loss is numpy's."""
  pytest.importorskip("yaml")
  scheme = config.build(config.examples()["classification"])
  counts = np.array([5000, 2000, 40])
  assert_close(scheme.spec["loss"]["alpha"], counts.sum() / (3 * counts), rtol=1e-6)  # the YAML writes alpha with 6 decimals
  rng = np.random.default_rng(3)
  logits, labels = rng.normal(size=(7, 3)), rng.integers(0, 3, 7)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  lp = logp[np.arange(7), labels]
  alpha = np.asarray(scheme.spec["loss"]["alpha"])[labels]
  expected = np.mean(-alpha * (1 - np.exp(lp)) ** 2 * lp)
  assert_close(scheme.loss_fn(jnp.asarray(logits, F64), jnp.asarray(labels)), expected)
  # warmup_cosine(1e-3, 100, 2000): k / 100 * lr during warmup, lr at 100, lr / 2 halfway through the decay
  assert_close([scheme.schedule(k) for k in (0, 50, 100, 1050, 2000)], [0.0, 5e-4, 1e-3, 5e-4, 0.0],
               atol=1e-18)


def test_finetune_yaml_groups():
  pytest.importorskip("yaml")
  scheme = config.build(config.examples()["finetune_param_groups"])
  p = {"embed": {"table": jnp.ones(2, F64)}, "backbone": {"kernel": jnp.ones(2, F64), "bias": jnp.ones(2, F64)},
       "head": {"kernel": jnp.ones(2, F64), "bias": jnp.ones(2, F64)}}
  g = jax.tree.map(jnp.ones_like, p)
  state = scheme.optimizer.init(p)
  for _ in range(100):
    u, state = scheme.optimizer.update(g, state, p)
  # step 100 (0-based 99): the linear warmup's factor is 0.01 + 0.99 * 99 / 100; AdamW with constant
  # gradients moves each element by lr_k * g / (|g| + eps) plus lr_k * wd * p, where g is the
  # clipped gradient: ten ones of norm sqrt(10) scaled by max_norm / (norm + 1e-6) (torch's clip_grad_norm_)
  factor = 0.01 + 0.99 * 99 / 100
  g = 1.0 / (np.sqrt(10.0) + 1e-6)
  eps_term = g / (g + 1e-8)
  assert_close(u["embed"]["table"], [0.0, 0.0])
  assert_close(u["backbone"]["bias"], [-1e-4 * factor * eps_term] * 2)
  assert_close(u["backbone"]["kernel"], [-1e-4 * factor * (eps_term + 0.05)] * 2)
  assert_close(u["head"]["bias"], [-1e-3 * factor * eps_term] * 2)
  assert_close(u["head"]["kernel"], [-1e-3 * factor * (eps_term + 0.05)] * 2)


def test_examples_listing_points_at_packaged_files():
  for name, path in config.examples().items():
    assert path.is_file() and path.suffix == ".yaml" and path.stem == name
    assert re.search(r"^loss:", path.read_text(), re.M)


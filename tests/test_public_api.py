"""Every API.md name exists with API.md's signature; the library never imports torch.

The expected signatures below are transcribed from API.md (the contract), not from the code.
An implementation may add keyword arguments after the documented ones (documented in its
docstring), but every documented parameter must exist with its documented default and kind.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import pytest

import losslab_jax as ll

SPEC = [
    'l1_loss(input, target, reduction="mean")',
    'mse_loss(input, target, reduction="mean")',
    'huber_loss(input, target, reduction="mean", delta=1.0)',
    'smooth_l1_loss(input, target, reduction="mean", beta=1.0)',
    'binary_cross_entropy(input, target, weight=None, reduction="mean")',
    'binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None)',
    'cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, axis=-1)',
    'nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", axis=-1)',
    'kl_div(input, target, reduction="mean", log_target=False)',
    'poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-8, reduction="mean")',
    'gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean")',
    'margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean")',
    'hinge_embedding_loss(input, target, margin=1.0, reduction="mean")',
    'soft_margin_loss(input, target, reduction="mean")',
    'multilabel_soft_margin_loss(input, target, weight=None, reduction="mean")',
    'multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean")',
    'multilabel_margin_loss(input, target, reduction="mean")',
    'cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean")',
    'triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean")',
    'focal_loss(input, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean", axis=-1)',
    'sigmoid_focal_loss(input, target, alpha=0.25, gamma=2.0, reduction="none")',
    'contrastive_loss(input1, input2, target, margin=1.0, reduction="mean")',
    'dice_loss(input, target, smooth=1.0, from_logits=True, reduction="mean", axis=-1)',
    'asymmetric_mse_loss(input, target, under_penalty=2.0, over_penalty=1.0, reduction="mean")',
    'class_weights(labels, num_classes)',
    'ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False)',
    'triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False, reduction="mean")',
    'linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean", ignore_index=None, label_smoothing=0.0, chunk_size=None)',
    'sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)',
    'adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False)',
    'adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False)',
    'adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False)',
    'nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False)',
    'radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False)',
    'rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False)',
    'adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False)',
    'adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False)',
    'rprop(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), maximize=False)',
    'asgd(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False)',
    'lion(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)',
    'lbfgs(lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None)',
    'adafactor(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, maximize=False)',
    'muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None)',
    'get_total_norm(tree, norm_type=2.0)',
    'clip_grads_with_norm(tree, max_norm, total_norm)',
    'averaged_params(multi_avg_fn=None)',
    'ema_multi_avg_fn(decay=0.999)',
    'swa_multi_avg_fn()',
    'grad_scaler(tx, init_scale=65536.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000)',
    'loss_scale(opt_state)',
    'swa_lr(lr, swa_lr, anneal_epochs=10, anneal_strategy="cos")',
    'clip_grad_norm(max_norm, norm_type=2.0)',
    'clip_grad_value(clip_value)',
    'param_groups(transforms: dict[str, tx], labels)',
    'reduce_lr_on_plateau(mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8)',
    'per_epoch(schedule, steps_per_epoch)',
    'step_lr(lr, step_size, gamma=0.1)',
    'multistep_lr(lr, milestones, gamma=0.1)',
    'exponential_lr(lr, gamma)',
    'cosine_annealing_lr(lr, T_max, eta_min=0.0)',
    'cosine_annealing_warm_restarts(lr, T_0, T_mult=1, eta_min=0.0)',
    'one_cycle_lr(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4, three_phase=False)',
    'one_cycle_momentum(total_steps, base_momentum=0.85, max_momentum=0.95, pct_start=0.3, anneal_strategy="cos", three_phase=False)',
    'linear_lr(lr, start_factor=1/3, end_factor=1.0, total_iters=5)',
    'constant_lr(lr, factor=1/3, total_iters=5)',
    'polynomial_lr(lr, total_iters=5, power=1.0)',
    'cyclic_lr(base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular", gamma=1.0)',
    'lambda_lr(lr, fn)',
    'multiplicative_lr(lr, fn)',
    'sequential_lr(schedules, milestones)',
    'chained(schedules)',
    'warmup_cosine(lr, warmup_steps, total_steps)',
    'linear_schedule_with_warmup(lr, num_warmup_steps, num_training_steps)',
    'cosine_schedule_with_warmup(lr, num_warmup_steps, num_training_steps, num_cycles=0.5)',
    'cosine_with_hard_restarts_schedule_with_warmup(lr, num_warmup_steps, num_training_steps, num_cycles=1)',
    'polynomial_decay_schedule_with_warmup(lr, num_warmup_steps, num_training_steps, lr_end=1e-7, power=1.0)',
    'constant_schedule_with_warmup(lr, num_warmup_steps)',
    'inverse_sqrt_schedule(lr, num_warmup_steps, timescale=None)',
    'wsd_schedule(lr, num_warmup_steps, num_decay_steps, num_training_steps=None, num_stable_steps=None, warmup_type="linear", decay_type="cosine", min_lr_ratio=0.0, num_cycles=0.5)',
    'cosine_with_min_lr_schedule_with_warmup(lr, num_warmup_steps, num_training_steps, num_cycles=0.5, min_lr=None, min_lr_rate=None)',
    'loss_landscape(loss_fn, params, *, key, num_points=51, span=1.0, dims=1, normalize="filter")',
    'gradient_flow(loss_fn, params, *args)',
    'check_convergence(losses, patience=10, tolerance=1e-6)',
    'sharpness(loss_fn, params, *args, iters=20)',
]

LOSSES = {s.split("(")[0] for s in SPEC[:28]}
OPTIM = {"sgd", "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "rprop", "asgd",
         "lion", "lbfgs", "clip_grad_norm", "clip_grad_value", "param_groups", "reduce_lr_on_plateau"}
OPTIM |= {"adafactor", "muon", "get_total_norm", "clip_grads_with_norm", "averaged_params", "ema_multi_avg_fn",
          "swa_multi_avg_fn", "grad_scaler", "loss_scale"}
ANALYSIS = {"loss_landscape", "gradient_flow", "check_convergence", "sharpness"}
ARRAY_NAMES = {"input", "target", "var", "weight", "input1", "input2", "anchor", "positive", "negative", "labels",
               "log_probs", "targets", "input_lengths", "target_lengths", "linear_weight"}


def _module_for(name):
  if name in LOSSES:
    return ll.losses
  if name in OPTIM:
    return ll.optim
  if name in ANALYSIS:
    return ll.analysis
  return ll.schedules


def _parse(sig: str):
  """'f(a, b=1, *, c=2)' -> [(name, default or inspect._empty, keyword_only_marker_seen)]."""
  tree = ast.parse("def " + sig.replace("dict[str, tx]", "dict") + ": pass")
  args = tree.body[0].args
  params = []
  pos = args.posonlyargs + args.args
  defaults = [inspect.Parameter.empty] * (len(pos) - len(args.defaults)) + [ast.literal_eval(d) if not isinstance(d, ast.BinOp) else eval(compile(ast.Expression(d), "", "eval")) for d in args.defaults]
  for a, d in zip(pos, defaults):
    params.append((a.arg, d, False))
  if args.vararg:
    params.append(("*" + args.vararg.arg, inspect.Parameter.empty, False))
  for a, d in zip(args.kwonlyargs, args.kw_defaults):
    params.append((a.arg, inspect.Parameter.empty if d is None else ast.literal_eval(d), True))
  return params


@pytest.mark.parametrize("sig", SPEC, ids=[s.split("(")[0] for s in SPEC])
def test_signature_matches_api(sig):
  name = sig.split("(")[0]
  mod = _module_for(name)
  assert hasattr(mod, name), f"{mod.__name__}.{name} is missing"
  assert name in mod.__all__, f"{name} is not in {mod.__name__}.__all__"
  actual = inspect.signature(getattr(mod, name)).parameters
  for pname, default, _ in _parse(sig):
    if pname.startswith("*"):
      assert any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in actual.values()), f"{name}: no {pname}"
      continue
    assert pname in actual, f"{name}: parameter {pname!r} missing; has {list(actual)}"
    if default is not inspect.Parameter.empty:
      got = actual[pname].default
      assert got == default or (isinstance(default, float) and isinstance(got, float) and abs(got - default) < 1e-15 * max(1, abs(default))), (
          f"{name}: default of {pname!r} is {got!r}, API.md says {default!r}")
  documented = [p for p, _, _ in _parse(sig) if not p.startswith("*")]
  order = [p for p in actual if p in documented]
  assert order == documented, f"{name}: parameter order {order}, API.md says {documented}"


@pytest.mark.parametrize("sig", [s for s in SPEC if s.split("(")[0] in LOSSES - {"class_weights"}], ids=lambda s: s.split("(")[0])
def test_loss_arrays_positional_rest_keyword_only(sig):
  name = sig.split("(")[0]
  params = inspect.signature(getattr(ll.losses, name)).parameters
  names = [p for p, _, _ in _parse(sig)]
  leading = []
  for p in names:
    if p not in ARRAY_NAMES:
      break
    leading.append(p)
  for p in names:
    kind = params[p].kind
    if p in leading:
      assert kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, f"{name}: {p} should be positional"
    else:
      assert kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {p} should be keyword-only (torch legacy positional args)"


def test_library_never_imports_torch():
  code = ("import sys, losslab_jax as ll\n"
          "import losslab_jax.losses, losslab_jax.optim, losslab_jax.schedules, losslab_jax.analysis\n"
          "assert 'torch' not in sys.modules, 'losslab_jax imported torch'\n")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_subpackages_export_only_public_names():
  for mod in (ll.losses, ll.optim, ll.schedules, ll.analysis, ll.activations, ll.monitor):
    for n in mod.__all__:
      assert not n.startswith("_") and hasattr(mod, n), f"{mod.__name__}.{n}"

"""``config.build``: a :class:`Scheme` from a YAML file or a mapping, validated key by key.

The layout (every section is a mapping; only ``loss`` and ``optimizer`` are required)::

    name: imbalanced-classifier          # optional, free text
    description: why this recipe         # optional, free text; becomes the start of Scheme.rationale
    loss:                                # one loss: its name and its keyword arguments
      name: cross_entropy
      label_smoothing: 0.1
      weight: [0.5, 5.0]                 # lists become arrays in the dtype of the loss input
    # or a weighted sum of losses that take the same arrays:
    # loss:
    #   terms:
    #     - {name: dice_loss, scale: 1.0, smooth: 1.0}
    #     - {name: cross_entropy, scale: 1.0}
    optimizer:                           # an ll.optim factory and its torch-named hyperparameters
      name: adamw
      lr: 1.0e-3
      weight_decay: 0.01
      betas: [0.9, 0.999]                # lists become tuples
    schedule:                            # an ll.schedules factory; its lr argument comes from optimizer.lr
      name: warmup_cosine
      warmup_steps: 100
      total_steps: 2000
      # steps_per_epoch: 50              # optional: the schedule counts epochs (ll.schedules.per_epoch)
    gradient_clipping:                   # ll.optim.clip_grad_norm or ll.optim.clip_grad_value, before the step
      max_norm: 1.0
      norm_type: 2.0                     # or: clip_value: 0.5
    param_groups:                        # torch param groups: first matching pattern wins
      - {match: '^backbone/', lr: 1.0e-4}
      - {match: 'bias$', weight_decay: 0.0}
      - {match: '^embed/', frozen: true}

See :func:`build` for the rules of each section.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import pathlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from losslab_jax.config._scheme import Scheme

# --- what a config may name ------------------------------------------------------------------------

LOSSES: tuple[str, ...] = (
    "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "asymmetric_mse_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
    "focal_loss", "sigmoid_focal_loss", "dice_loss", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
    "multilabel_soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss",
    "cosine_embedding_loss", "triplet_margin_loss", "contrastive_loss",
)
"""Loss names ``loss.name`` accepts: the functions of :mod:`losslab_jax.losses`."""

OPTIMIZERS: tuple[str, ...] = (
    "sgd", "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "rprop",
    "asgd", "lion", "lbfgs",
)
"""Optimizer names ``optimizer.name`` accepts: the factories of :mod:`losslab_jax.optim`."""

SCHEDULES: tuple[str, ...] = (
    "step_lr", "multistep_lr", "exponential_lr", "cosine_annealing_lr",
    "cosine_annealing_warm_restarts", "one_cycle_lr", "linear_lr", "constant_lr", "polynomial_lr",
    "cyclic_lr", "lambda_lr", "multiplicative_lr", "sequential_lr", "chained", "warmup_cosine",
    "reduce_lr_on_plateau",
)
"""Schedule names ``schedule.name`` accepts: :mod:`losslab_jax.schedules`, plus
``reduce_lr_on_plateau`` (:func:`losslab_jax.optim.reduce_lr_on_plateau`, driven by a metric)."""

TOP_KEYS = ("name", "description", "loss", "optimizer", "schedule", "gradient_clipping", "param_groups")
CLIP_KEYS = ("max_norm", "norm_type", "clip_value")
_COMPOSITE_SCHEDULES = ("sequential_lr", "chained")
_PLATEAU = "reduce_lr_on_plateau"


class ConfigError(ValueError):
  """A configuration that names an unknown key or value, or gives a bad one.

  The message starts with where the config came from and the path of the offending key, e.g.
  ``config.build(train.yaml): optimizer.name: unknown optimizer 'adamx'; allowed: ...``.
  """


class _Ctx:
  """Where a config came from, for error messages."""

  def __init__(self, where: str):
    self.where = where

  def error(self, path: str, message: str) -> ConfigError:
    return ConfigError(f"{self.where}: {path}: {message}" if path else f"{self.where}: {message}")

  def call(self, path: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; its ValueError/TypeError re-raised with the config path prepended."""
    try:
      return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
      if isinstance(e, ConfigError):
        raise
      cls = TypeError if isinstance(e, TypeError) else ConfigError
      raise cls(f"{self.where}: {path}: {e}") from e


def _join(parent: str, key: str | int) -> str:
  if isinstance(key, int):
    return f"{parent}[{key}]"
  return f"{parent}.{key}" if parent else key


def _choices(names: Sequence[str]) -> str:
  return ", ".join(sorted(names))


def _suggest(name: Any, names: Sequence[str]) -> str:
  close = difflib.get_close_matches(str(name), list(names), n=2, cutoff=0.6)
  return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _mapping(ctx: _Ctx, path: str, value: Any, what: str = "a mapping") -> dict[str, Any]:
  if not isinstance(value, Mapping):
    raise ctx.error(path, f"expected {what}, got {type(value).__name__} {value!r}")
  for k in value:
    if not isinstance(k, str):
      raise ctx.error(path, f"expected string keys, got {k!r}")
  return dict(value)


def _check_keys(ctx: _Ctx, path: str, section: Mapping[str, Any], allowed: Sequence[str],
                what: str = "") -> None:
  for key in section:
    if key not in allowed:
      where = f" for {what}" if what else ""
      raise ctx.error(path or "top level", f"unknown key {key!r}{_suggest(key, allowed)}; allowed keys{where}:"
                      f" {_choices(allowed)}")


def _check_name(ctx: _Ctx, path: str, name: Any, allowed: Sequence[str], kind: str) -> str:
  if not isinstance(name, str) or name not in allowed:
    raise ctx.error(path, f"unknown {kind} {name!r}{_suggest(name, allowed)}; allowed: {_choices(allowed)}")
  return name


def _factory(ctx: _Ctx, path: str, module: Any, name: str, kind: str) -> Callable[..., Any]:
  fn = getattr(module, name, None)
  if fn is None:
    raise ctx.error(path, f"{kind} {name!r} is not available in this build of losslab_jax")
  return fn


def _params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
  return {n: p for n, p in inspect.signature(fn).parameters.items()
          if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _check_kwargs(ctx: _Ctx, path: str, name: str, kwargs: Mapping[str, Any], allowed: Sequence[str],
                  extra: Sequence[str] = ("name",)) -> None:
  _check_keys(ctx, path, kwargs, tuple(allowed) + tuple(extra), what=name)


def _numbers_to_tuple(value: Any) -> Any:
  return tuple(value) if isinstance(value, list) else value


# --- loading ---------------------------------------------------------------------------------------

_YAML_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")


def _coerce_yaml_numbers(value: Any) -> Any:
  """PyYAML (YAML 1.1) reads ``1e-3`` as a string; read it as the float everyone means."""
  if isinstance(value, str) and _YAML_FLOAT.match(value.strip()):
    return float(value)
  if isinstance(value, Mapping):
    return {k: _coerce_yaml_numbers(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_coerce_yaml_numbers(v) for v in value]
  return value


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
  """Read a YAML config file into a plain dict (``1e-3`` read as a float, not a string).

  Args:
    path: a ``.yaml``/``.yml`` file.

  Returns:
    The mapping :func:`build` accepts.

  Raises:
    ImportError: PyYAML is not installed (``pip install losslab_jax[config]``).
    FileNotFoundError: ``path`` does not exist.
    ConfigError: the file does not hold a mapping at the top level.
  """
  try:
    import yaml
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("config.load: reading YAML needs PyYAML; install it with"
                      " `pip install losslab_jax[config]`, or pass a dict to config.build") from e
  p = pathlib.Path(path)
  if not p.is_file():
    raise FileNotFoundError(f"config.load: expected a YAML file, got {str(path)!r}, which does not exist")
  with p.open() as f:
    data = yaml.safe_load(f)
  if not isinstance(data, Mapping):
    raise ConfigError(f"config.load({p.name}): expected a mapping at the top level, got"
                      f" {type(data).__name__}")
  return _coerce_yaml_numbers(data)


# --- parameter paths and groups --------------------------------------------------------------------


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def param_path(path: Sequence[Any]) -> str:
  """The ``'/'``-joined name of a pytree key path, as param-group patterns see it.

  Dict keys, attribute names and sequence indices are joined with ``/``. The trailing ``.value`` of
  a ``flax.nnx`` Variable is dropped, so ``nnx.state(model, nnx.Param)`` gives names like
  ``backbone/kernel`` and ``layers/0/bias``.
  """
  parts = list(path)
  if parts and isinstance(parts[-1], jax.tree_util.GetAttrKey) and parts[-1].name == "value":
    parts = parts[:-1]
  return "/".join(_key_name(k) for k in parts)


def param_paths(params: Any) -> list[str]:
  """Every leaf's name in ``params`` (see :func:`param_path`), to write ``param_groups`` patterns."""
  return [param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _group_labels(where: str, patterns: Sequence[tuple[str, re.Pattern[str]]]) -> Callable[[Any], Any]:
  """``params -> labels``: the first group whose pattern ``re.search``-es the leaf's path, else default."""

  def labels(params: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    out, used = [], set()
    for path, _ in leaves:
      name = param_path(path)
      for label, pattern in patterns:
        if pattern.search(name):
          out.append(label)
          used.add(label)
          break
      else:
        out.append("default")
    unused = [(label, p.pattern) for label, p in patterns if label not in used]
    if unused:
      label, pattern = unused[0]
      names = [param_path(p) for p, _ in leaves]
      shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
      raise ConfigError(f"{where}: param_groups[{label.removeprefix('group')}].match: pattern {pattern!r}"
                        f" matches no parameter (or only ones an earlier group took); parameter paths: {shown}")
    return treedef.unflatten(out)

  return labels


# --- sections --------------------------------------------------------------------------------------


def _loss_kwargs_allowed(fn: Callable[..., Any]) -> list[str]:
  """Keyword arguments a config may set: those with defaults (the arrays have none)."""
  return [n for n, p in _params(fn).items() if p.default is not inspect.Parameter.empty]


def _one_loss(ctx: _Ctx, path: str, section: Mapping[str, Any], extra: Sequence[str] = ()):
  from losslab_jax import losses as ll_losses

  section = _mapping(ctx, path, section)
  if "name" not in section:
    raise ctx.error(path, f"missing key 'name'; allowed loss names: {_choices(LOSSES)}")
  name = _check_name(ctx, _join(path, "name"), section["name"], LOSSES, "loss")
  fn = _factory(ctx, _join(path, "name"), ll_losses, name, "loss")
  allowed = _loss_kwargs_allowed(fn)
  _check_kwargs(ctx, path, name, section, allowed, extra=("name", *extra))
  kwargs = {k: v for k, v in section.items() if k not in ("name", *extra)}
  arrays = {k: np.asarray(v) for k, v in kwargs.items() if isinstance(v, (list, tuple, np.ndarray, jax.Array))}
  for k, v in arrays.items():
    if not np.issubdtype(v.dtype, np.number):
      raise ctx.error(_join(path, k), f"expected a list of numbers, got {kwargs[k]!r}")
  scalars = {k: v for k, v in kwargs.items() if k not in arrays}
  return name, fn, scalars, arrays


def _build_loss(ctx: _Ctx, section: Any) -> tuple[Callable[..., jax.Array], str]:
  section = _mapping(ctx, "loss", section)
  if "terms" in section:
    _check_keys(ctx, "loss", section, ("terms",), what="a sum of losses")
    terms_in = section["terms"]
    if not isinstance(terms_in, list) or not terms_in:
      raise ctx.error("loss.terms", f"expected a non-empty list of loss mappings, got {terms_in!r}")
    terms = []
    for i, t in enumerate(terms_in):
      p = _join("loss.terms", i)
      name, fn, scalars, arrays = _one_loss(ctx, p, t, extra=("scale",))
      scale = t.get("scale", 1.0)
      if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ctx.error(_join(p, "scale"), f"expected a number, got {scale!r}")
      terms.append((p, name, fn, scalars, arrays, float(scale)))
  else:
    p = "loss"
    name, fn, scalars, arrays = _one_loss(ctx, p, section)
    terms = [(p, name, fn, scalars, arrays, None)]

  where = ctx.where

  def loss_fn(*inputs: Any) -> jax.Array:
    total = None
    for p, name, fn, scalars, arrays, scale in terms:
      first = jnp.asarray(inputs[0]) if inputs else None
      dtype = first.dtype if first is not None and jnp.issubdtype(first.dtype, jnp.floating) else jnp.float32
      kw = dict(scalars)
      kw.update({k: jnp.asarray(v, dtype=dtype) for k, v in arrays.items()})
      try:
        value = fn(*inputs, **kw)
      except (ValueError, TypeError) as e:
        cls = TypeError if isinstance(e, TypeError) else ValueError
        raise cls(f"{where}: {p} ({name}): {e}") from e
      value = value if scale is None else scale * value
      total = value if total is None else total + value
    return total

  names = [t[1] for t in terms]
  loss_fn.__name__ = "_plus_".join(names)
  loss_fn.__qualname__ = loss_fn.__name__
  loss_fn.__doc__ = f"Loss built by {where}: " + " + ".join(_describe_term(t) for t in terms)
  return loss_fn, " + ".join(_describe_term(t) for t in terms)


class _Raw(str):
  """Text shown as is in a call summary (``lr=<warmup_cosine>``)."""


def _fmt(v: Any) -> str:
  if isinstance(v, _Raw):
    return str(v)
  if isinstance(v, np.ndarray):
    v = v.tolist()
  if isinstance(v, float):
    text = f"{v:.6g}"
    return text + ".0" if text.lstrip("-").isdigit() else text
  if isinstance(v, (list, tuple)):
    inner = ", ".join(_fmt(x) for x in v[:6]) + (", ..." if len(v) > 6 else "")
    return f"[{inner}]"
  if callable(v):
    return getattr(v, "__name__", "fn")
  return repr(v)


def _call_text(name: str, kwargs: Mapping[str, Any]) -> str:
  return f"{name}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items()) + ")"


def _describe_term(t: tuple[Any, ...]) -> str:
  _, name, _, scalars, arrays, scale = t
  text = _call_text(name, {**scalars, **arrays})
  return text if scale is None or scale == 1.0 else f"{_fmt(scale)} * {text}"


def _schedule_lr_param(fn: Callable[..., Any]) -> str:
  return next(iter(_params(fn)))


def _build_schedule(ctx: _Ctx, path: str, section: Any, *, override_lr: float | None,
                    fill_lr: float) -> tuple[Callable[[Any], jax.Array], str]:
  """A schedule from its section; its lr argument is ``override_lr``, or ``fill_lr`` when absent."""
  from losslab_jax import schedules as ll_schedules

  section = _mapping(ctx, path, section)
  if "name" not in section:
    raise ctx.error(path, f"missing key 'name'; allowed schedules: {_choices(SCHEDULES)}")
  name = _check_name(ctx, _join(path, "name"), section["name"], SCHEDULES, "schedule")
  if name == _PLATEAU:
    raise ctx.error(_join(path, "name"), "reduce_lr_on_plateau is driven by a metric and can only be"
                    " the top-level schedule, not part of sequential_lr or chained")
  fn = _factory(ctx, _join(path, "name"), ll_schedules, name, "schedule")
  params = _params(fn)
  _check_kwargs(ctx, path, name, section, list(params), extra=("name", "steps_per_epoch"))
  kwargs = {k: v for k, v in section.items() if k not in ("name", "steps_per_epoch")}
  if name in _COMPOSITE_SCHEDULES:
    subs = kwargs.get("schedules")
    if not isinstance(subs, list) or not subs:
      raise ctx.error(_join(path, "schedules"), f"expected a non-empty list of schedule mappings, got {subs!r}")
    built = [_build_schedule(ctx, _join(_join(path, "schedules"), i), s, override_lr=override_lr,
                             fill_lr=fill_lr) for i, s in enumerate(subs)]
    kwargs["schedules"] = [b[0] for b in built]
    text_kwargs = {**kwargs, "schedules": [b[1] for b in built]}
  else:
    lr_name = _schedule_lr_param(fn)
    if override_lr is not None:
      kwargs[lr_name] = override_lr
    else:
      kwargs.setdefault(lr_name, fill_lr)
    if name in ("lambda_lr", "multiplicative_lr") and not callable(kwargs.get("fn")):
      raise ctx.error(_join(path, "fn"), f"{name} needs a Python callable `fn(epoch) -> factor`, got"
                      f" {kwargs.get('fn')!r}; build this config from a dict, not YAML")
    text_kwargs = kwargs
  missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kwargs]
  if missing:
    raise ctx.error(path, f"{name} needs {', '.join(repr(m) for m in missing)}")
  schedule = ctx.call(path, fn, **kwargs)
  text = _call_text(name, text_kwargs)
  if "steps_per_epoch" in section:
    schedule = ctx.call(_join(path, "steps_per_epoch"), ll_schedules.per_epoch, schedule,
                        section["steps_per_epoch"])
    text = f"per_epoch({text}, steps_per_epoch={section['steps_per_epoch']})"
  return schedule, text


def _explicit_schedule_lr(ctx: _Ctx, path: str, section: Mapping[str, Any]) -> tuple[str, Any] | None:
  """``(path, value)`` of the first lr argument a (possibly nested) schedule section sets itself."""
  from losslab_jax import schedules as ll_schedules

  name = section.get("name")
  if name in _COMPOSITE_SCHEDULES:
    for i, s in enumerate(section.get("schedules") or []):
      if isinstance(s, Mapping):
        found = _explicit_schedule_lr(ctx, _join(_join(path, "schedules"), i), s)
        if found:
          return found
    return None
  if name == _PLATEAU or name not in SCHEDULES or not hasattr(ll_schedules, name):
    return None
  lr_name = _schedule_lr_param(getattr(ll_schedules, name))
  if lr_name in section:
    return _join(path, lr_name), section[lr_name]
  return None


def _build_clip(ctx: _Ctx, section: Any) -> tuple[optax.GradientTransformation, str]:
  from losslab_jax import optim as ll_optim

  section = _mapping(ctx, "gradient_clipping", section)
  _check_keys(ctx, "gradient_clipping", section, CLIP_KEYS)
  if ("max_norm" in section) == ("clip_value" in section):
    raise ctx.error("gradient_clipping", "expected exactly one of 'max_norm' (clip_grad_norm) or"
                    f" 'clip_value' (clip_grad_value), got keys {sorted(section)}")
  if "clip_value" in section:
    if "norm_type" in section:
      raise ctx.error("gradient_clipping.norm_type", "norm_type goes with max_norm, not clip_value")
    tx = ctx.call("gradient_clipping", ll_optim.clip_grad_value, section["clip_value"])
    return tx, _call_text("clip_grad_value", section)
  kwargs = {"max_norm": section["max_norm"]}
  if "norm_type" in section:
    kwargs["norm_type"] = section["norm_type"]
  tx = ctx.call("gradient_clipping", ll_optim.clip_grad_norm, **kwargs)
  return tx, _call_text("clip_grad_norm", kwargs)


def _build_from_mapping(spec: Mapping[str, Any], where: str, rationale: str | None = None) -> Scheme:
  from losslab_jax import optim as ll_optim

  ctx = _Ctx(where)
  spec = _mapping(ctx, "", spec, "a mapping with keys " + _choices(TOP_KEYS))
  _check_keys(ctx, "", spec, TOP_KEYS)
  for key in ("loss", "optimizer"):
    if key not in spec:
      raise ctx.error("", f"missing required key {key!r}; keys: {_choices(TOP_KEYS)}")
  for key in ("name", "description"):
    if key in spec and not isinstance(spec[key], str):
      raise ctx.error(key, f"expected a string, got {spec[key]!r}")
  saved = copy.deepcopy(spec)
  lines = []

  loss_fn, loss_text = _build_loss(ctx, spec["loss"])
  lines.append(f"loss: {loss_text}")

  # optimizer (per group), with the schedule in its lr
  opt = _mapping(ctx, "optimizer", spec["optimizer"])
  if "name" not in opt:
    raise ctx.error("optimizer", f"missing key 'name'; allowed optimizers: {_choices(OPTIMIZERS)}")
  opt_name = _check_name(ctx, "optimizer.name", opt["name"], OPTIMIZERS, "optimizer")
  opt_fn = _factory(ctx, "optimizer.name", ll_optim, opt_name, "optimizer")
  opt_params = _params(opt_fn)
  _check_kwargs(ctx, "optimizer", opt_name, opt, list(opt_params))
  opt_kwargs = {k: _numbers_to_tuple(v) for k, v in opt.items() if k != "name"}

  sched = spec.get("schedule")
  sched_name = None
  if sched is not None:
    sched = _mapping(ctx, "schedule", sched)
    if "name" not in sched:
      raise ctx.error("schedule", f"missing key 'name'; allowed schedules: {_choices(SCHEDULES)}")
    sched_name = _check_name(ctx, "schedule.name", sched["name"], SCHEDULES, "schedule")
    if callable(opt_kwargs.get("lr")):
      raise ctx.error("optimizer.lr", "optimizer.lr is already a schedule; give a number and describe the"
                      " schedule in the schedule section, or drop the schedule section")
    explicit = _explicit_schedule_lr(ctx, "schedule", sched)
    if explicit and "lr" in opt_kwargs:
      raise ctx.error("", f"the learning rate is set twice, optimizer.lr={_fmt(opt_kwargs['lr'])} and"
                      f" {explicit[0]}={_fmt(explicit[1])}; set it in one place (the schedule's lr argument"
                      " defaults to optimizer.lr)")
  default_lr = opt_params["lr"].default if "lr" in opt_params else None
  if default_lr is inspect.Parameter.empty:
    default_lr = None

  plateau = None
  if sched_name == _PLATEAU:
    plateau_fn = _factory(ctx, "schedule.name", ll_optim, _PLATEAU, "schedule")
    _check_kwargs(ctx, "schedule", _PLATEAU, sched, list(_params(plateau_fn)))
    plateau_kwargs = {k: v for k, v in sched.items() if k != "name"}
    plateau_kwargs.setdefault("base_lr", opt_kwargs.get("lr", default_lr))
    plateau = ctx.call("schedule", plateau_fn, **plateau_kwargs)
    plateau_text = _call_text(_PLATEAU, plateau_kwargs)

  def group_optimizer(path: str, overrides: Mapping[str, Any]):
    kwargs = {**opt_kwargs, **overrides}
    schedule, sched_text = None, None
    if sched is not None and sched_name != _PLATEAU:
      override = overrides.get("lr", opt_kwargs.get("lr"))
      schedule, sched_text = _build_schedule(ctx, "schedule", sched, override_lr=override,
                                             fill_lr=default_lr)
      kwargs["lr"] = schedule
    if "lr" in kwargs and "lr" not in opt_params:
      raise ctx.error(path, f"{opt_name} takes no lr")
    tx = ctx.call(path, opt_fn, **kwargs)
    text_kwargs = {k: (_Raw(f"<{sched_text.split('(')[0]}>") if k == "lr" and sched_text else v)
                   for k, v in kwargs.items()}
    return tx, schedule, sched_text, _call_text(opt_name, text_kwargs)

  tx, schedule, sched_text, opt_text = group_optimizer("optimizer", {})
  lines.append(f"optimizer: {opt_text}")
  if sched_text:
    lines.append(f"schedule: {sched_text}")
  if plateau is not None:
    lines.append(f"schedule: {plateau_text} (pass value=metric to update)")

  groups = spec.get("param_groups")
  if groups is not None:
    if not isinstance(groups, list):
      raise ctx.error("param_groups", f"expected a list of group mappings, got {type(groups).__name__}")
    transforms: dict[str, optax.GradientTransformation] = {"default": tx}
    patterns = []
    for i, g in enumerate(groups):
      p = _join("param_groups", i)
      g = _mapping(ctx, p, g)
      _check_keys(ctx, p, g, ("match", "frozen", *[k for k in opt_params]), what=f"a param group of {opt_name}")
      if "match" not in g or not isinstance(g["match"], str):
        raise ctx.error(_join(p, "match"), f"expected a regular expression string, got {g.get('match')!r}")
      try:
        pattern = re.compile(g["match"])
      except re.error as e:
        raise ctx.error(_join(p, "match"), f"invalid regular expression {g['match']!r}: {e}") from None
      label = f"group{i}"
      patterns.append((label, pattern))
      frozen = g.get("frozen", False)
      if not isinstance(frozen, bool):
        raise ctx.error(_join(p, "frozen"), f"expected true or false, got {frozen!r}")
      overrides = {k: _numbers_to_tuple(v) for k, v in g.items() if k not in ("match", "frozen")}
      if frozen:
        if overrides:
          raise ctx.error(p, f"a frozen group takes no hyperparameters, got {sorted(overrides)}")
        transforms[label] = optax.set_to_zero()
        lines.append(f"param group {i} ({g['match']!r}): frozen")
      else:
        transforms[label], _, g_sched, g_text = group_optimizer(p, overrides)
        lines.append(f"param group {i} ({g['match']!r}): {g_text}" + (f" with {g_sched}" if g_sched else ""))
    tx = ctx.call("param_groups", ll_optim.param_groups, transforms, _group_labels(where, patterns))

  chain = []
  if "gradient_clipping" in spec and spec["gradient_clipping"] is not None:
    clip, clip_text = _build_clip(ctx, spec["gradient_clipping"])
    chain.append(clip)
    lines.append(f"gradient clipping: {clip_text}, before the optimizer step")
  chain.append(tx)
  if plateau is not None:
    chain.append(plateau)
  optimizer = chain[0] if len(chain) == 1 and isinstance(chain[0], optax.GradientTransformationExtraArgs) \
      else optax.chain(*chain)

  head = rationale if rationale is not None else spec.get("description", f"Built by {where}.")
  text = head.rstrip() + "\n\n" + "\n".join(lines)
  return Scheme(loss_fn=loss_fn, optimizer=optimizer, schedule=schedule, rationale=text, spec=saved)


def build(source: str | os.PathLike[str] | Mapping[str, Any]) -> Scheme:
  """Build a :class:`Scheme` (loss, optimizer, schedule) from a YAML file or a mapping.

  The config has these top-level keys (anything else raises, naming the allowed keys):

  * ``loss`` (required): ``{name: <loss>, <keyword>: <value>, ...}`` for one function of
    :mod:`losslab_jax.losses`, or ``{terms: [{name, scale, <keywords>}, ...]}`` for the weighted sum
    ``sum_i scale_i * loss_i(*arrays)`` of losses that take the same arrays (dice + cross entropy).
    Keywords are the loss's own (``weight``, ``label_smoothing``, ``gamma``, ``alpha``, ``delta``,
    ``margin``, ``reduction``...). Lists of numbers become arrays in the dtype of the loss's first
    input when it is called. ``Scheme.loss_fn(*arrays)`` takes the loss's positional arrays.
  * ``optimizer`` (required): ``{name: <optimizer>, <hyperparameter>: <value>, ...}`` with the torch
    names of :mod:`losslab_jax.optim` (``lr``, ``betas``, ``weight_decay``, ``momentum``...). Lists
    become tuples (``betas: [0.9, 0.98]``).
  * ``schedule``: ``{name: <schedule>, <argument>: <value>, ...}`` for a factory of
    :mod:`losslab_jax.schedules`. Its learning-rate argument (``lr``; ``max_lr`` for ``one_cycle_lr``,
    ``base_lr`` for ``cyclic_lr``) is ``optimizer.lr`` (or the optimizer's default lr) unless the
    schedule section sets it, and then ``optimizer.lr`` must be absent. ``sequential_lr`` and
    ``chained`` take ``schedules: [<schedule mappings>]``. ``steps_per_epoch: n`` wraps the schedule
    in ``per_epoch``, so its arguments count epochs. ``reduce_lr_on_plateau`` (with the arguments of
    :func:`losslab_jax.optim.reduce_lr_on_plateau`) is chained after the optimizer; then pass
    ``value=metric`` to ``update`` and ``Scheme.schedule`` is ``None``.
  * ``gradient_clipping``: ``{max_norm: m, norm_type: 2.0}`` (``clip_grad_norm``, torch's
    ``clip_grad_norm_``) or ``{clip_value: c}`` (``clip_grad_value``), applied to the gradients before
    the optimizer, over all parameters, as torch does between ``backward()`` and ``step()``.
  * ``param_groups``: a list of ``{match: <regex>, <hyperparameter>: <value>, ...}`` or
    ``{match: <regex>, frozen: true}``. Each parameter's path (``'/'``-joined keys, see
    :func:`param_paths`; ``backbone/kernel``, ``layers/0/bias``) is tested with ``re.search`` against
    the patterns in order; the first match puts it in that group, which uses the optimizer section
    with the group's overrides (``lr``, ``weight_decay``...). With a schedule, each group gets the
    schedule built on its own lr, as torch's schedulers scale each group's initial lr. ``frozen``
    parameters are not updated (torch: left out of the optimizer). Unmatched parameters use the
    optimizer section as is. A pattern that matches no parameter raises when the optimizer is
    initialised. Gradient clipping still sees all parameters together.
  * ``name``, ``description``: free text; ``description`` starts ``Scheme.rationale``.

  Args:
    source: a path to a YAML file (read with :func:`load`; needs PyYAML), or a mapping.

  Returns:
    A :class:`Scheme`; ``Scheme.spec`` is a copy of the config mapping.

  Raises:
    ConfigError: (a ``ValueError``) an unknown section key, loss, optimizer or schedule name (the
      message lists the allowed ones), a missing required key, or a bad value. Errors the
      losslab_jax factories raise for bad hyperparameters propagate with the config path prepended
      (``optimizer: Invalid beta parameter at index 0: 1.5``); a loss's own errors do so when the
      loss is called.
    FileNotFoundError: ``source`` is a path that does not exist.

  Examples:
    >>> import losslab_jax as ll
    >>> scheme = ll.config.build({
    ...     "loss": {"name": "cross_entropy", "label_smoothing": 0.1},
    ...     "optimizer": {"name": "adamw", "lr": 3e-4, "weight_decay": 0.05},
    ...     "schedule": {"name": "warmup_cosine", "warmup_steps": 10, "total_steps": 100},
    ...     "gradient_clipping": {"max_norm": 1.0},
    ... })
    >>> loss_fn, tx, schedule = scheme
    >>> round(float(schedule(10)), 6)
    0.0003
  """
  if isinstance(source, Mapping):
    return _build_from_mapping(source, "config.build")
  if isinstance(source, (str, os.PathLike)):
    data = load(source)
    return _build_from_mapping(data, f"config.build({pathlib.Path(source).name})")
  raise TypeError(f"config.build: expected a path to a YAML file or a mapping, got {type(source).__name__}")


def build_with_rationale(spec: Mapping[str, Any], where: str, rationale: str) -> Scheme:
  """For ``schemes``: build ``spec`` with errors attributed to ``where`` and the given rationale."""
  return _build_from_mapping(spec, where, rationale)


def examples() -> dict[str, pathlib.Path]:
  """The example configs shipped with losslab_jax, one per scheme: ``{name: path}``.

  Example:
    >>> import losslab_jax as ll
    >>> sorted(ll.config.examples())[:2]
    ['classification', 'finetune_param_groups']
  """
  here = pathlib.Path(__file__).parent / "examples"
  return {p.stem: p for p in sorted(here.glob("*.yaml"))}

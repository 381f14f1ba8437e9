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

import ast
import copy
import dataclasses
import difflib
import functools
import inspect
import numbers
import os
import pathlib
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from losslab_jax import losses as ll_losses
from losslab_jax import optim as ll_optim
from losslab_jax import schedules as ll_schedules
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


@functools.cache
def _unique_key_loader() -> type:
  """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last).

  Built on first use: PyYAML is optional, imported only when a YAML file is read.
  """
  import yaml

  class UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
      seen: dict[Any, int] = {}
      for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
          continue
        key = self.construct_object(key_node, deep=True)
        try:
          first = seen.get(key)
        except TypeError:   # an unhashable key: SafeLoader's own error follows
          continue
        line = key_node.start_mark.line + 1
        if first is not None:
          raise _DuplicateKey(f"line {line}: duplicate key {key!r} (first given on line {first}); each"
                              " key may appear once in a mapping")
        seen[key] = line
      return super().construct_mapping(node, deep=deep)

  return UniqueKeyLoader


class _DuplicateKey(Exception):
  """Raised inside the YAML loader; :func:`load` turns it into a ConfigError naming the file."""


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
  """Read a YAML config file into a plain dict (``1e-3`` read as a float, not a string).

  A key given twice in one mapping is an error (PyYAML alone would keep the last one silently).

  Args:
    path: a ``.yaml``/``.yml`` file.

  Returns:
    The mapping :func:`build` accepts.

  Raises:
    ImportError: PyYAML is not installed (``pip install losslab_jax[config]``).
    FileNotFoundError: ``path`` does not exist.
    ConfigError: the file does not hold a mapping at the top level, or a mapping in it gives a
      key twice.
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
    try:
      data = yaml.load(f, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as e:
      raise ConfigError(f"config.load({p.name}): {e}") from None
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


# --- value types -----------------------------------------------------------------------------------
# A config value is checked against the annotation of the factory argument it feeds, so that
# ``lr: true`` (a bool is not a number), ``lr: fast``, ``betas: [a, b]`` or ``weight_decay: null``
# raise a ConfigError naming the key instead of a raw comparison error or a silent 1.0.

_NUMBER_NAMES = ("float", "ScalarOrSchedule", "ArrayLike", "Array", "Numeric", "Scalar")


def _is_real(v: Any) -> bool:
  """A real number: Python or numpy int/float, or a 0-d integer/floating array; never a bool."""
  if isinstance(v, (bool, np.bool_)):
    return False
  if isinstance(v, numbers.Real):
    return True
  if isinstance(v, (np.ndarray, jax.Array)) and v.shape == ():
    return bool(np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating))
  return False


def _is_int(v: Any) -> bool:
  """An integer, or a whole float (YAML reads ``total_steps: 2e3`` as 2000.0); never a bool."""
  if isinstance(v, (bool, np.bool_)):
    return False
  if isinstance(v, numbers.Integral):
    return True
  if isinstance(v, float):
    return v.is_integer()
  return isinstance(v, (np.ndarray, jax.Array)) and v.shape == () and bool(np.issubdtype(v.dtype, np.integer))


def _split_top(text: str, sep: str) -> list[str]:
  """``text`` split at ``sep`` outside brackets (``'tuple[a, b] | None'`` -> two parts at ``|``)."""
  parts, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    depth += ch == "["
    depth -= ch == "]"
    if ch == sep and depth == 0:
      parts.append(text[start:i].strip())
      start = i + 1
  parts.append(text[start:].strip())
  return parts


@dataclasses.dataclass(frozen=True)
class _Expect:
  """What a factory argument accepts, as far as a config can check it."""

  what: str
  accepts: Callable[[Any], bool]
  number: bool = False   # a number is among the accepted kinds (then a bool is called out)


def _literal_choices(obj: Any) -> tuple[Any, ...] | None:
  if typing.get_origin(obj) is typing.Literal:
    return typing.get_args(obj)
  return None


def _resolve(fn: Callable[..., Any], dotted: str) -> Any:
  """The object an annotation names, looked up in ``fn``'s module (None if it cannot be found)."""
  obj: Any = getattr(inspect.unwrap(fn), "__globals__", {})
  for i, part in enumerate(dotted.split(".")):
    obj = obj.get(part) if i == 0 and isinstance(obj, dict) else getattr(obj, part, None)
    if obj is None:
      return None
  return obj


def _expect_part(fn: Callable[..., Any], part: str) -> _Expect | None:
  base, _, inner = part.partition("[")
  inner = inner[:-1] if inner.endswith("]") else inner
  name = base.strip().split(".")[-1]
  if name == "None":
    return _Expect("null", lambda v: v is None)
  if name == "bool":
    return _Expect("true or false", lambda v: isinstance(v, (bool, np.bool_)))
  if name == "int":
    return _Expect("an integer", _is_int, number=True)
  if name in _NUMBER_NAMES:
    if "Schedule" in name:
      return _Expect("a number", lambda v: _is_real(v) or callable(v), number=True)
    return _Expect("a number", _is_real, number=True)
  if name == "str":
    return _Expect("a string", lambda v: isinstance(v, str))
  if name in ("tuple", "Sequence", "list"):
    found = [_expect_part(fn, e) for e in _split_top(inner, ",") if e and e != "..."]
    elements = [e for e in found if e is not None and e.number]
    if not elements or len(elements) != len(found):
      return None
    integers = all(e.what == "an integer" for e in elements)
    check = _is_int if integers else (lambda v: _is_real(v) or callable(v))
    what = "a list of integers" if integers else "a list of numbers"
    return _Expect(what, lambda v: isinstance(v, (list, tuple)) and all(check(x) for x in v))
  if name in ("Callable", "Schedule"):
    return _Expect("a Python callable", callable)
  choices = _literal_choices(_resolve(fn, base.strip())) if name != "Literal" else None
  if name == "Literal":
    try:
      choices = tuple(ast.literal_eval(f"({inner},)"))
    except (ValueError, SyntaxError):
      return None
  if choices and all(isinstance(c, str) for c in choices):
    # the kind only: which string is the factory's (or the loss's) own check, in torch's words
    return _Expect("a string", lambda v: isinstance(v, str))
  return None


def _expectation(fn: Callable[..., Any], param: inspect.Parameter) -> _Expect | None:
  """What ``param`` of ``fn`` accepts (from its annotation), or None when it cannot be checked."""
  annotation = param.annotation
  if annotation is inspect.Parameter.empty:
    return None
  if not isinstance(annotation, str):
    annotation = getattr(annotation, "__name__", None) or str(annotation)
  parts = [_expect_part(fn, p) for p in _split_top(annotation, "|")]
  if any(p is None for p in parts):
    return None
  known = [p for p in parts if p is not None]
  return _Expect(" or ".join(dict.fromkeys(p.what for p in known)), lambda v: any(p.accepts(v) for p in known),
                 number=any(p.number for p in known))


def _whole_to_int(value: Any) -> Any:
  """``2000.0`` -> ``2000`` (and inside lists); the factories take integer counts as ints."""
  if isinstance(value, float) and value.is_integer():
    return int(value)
  if isinstance(value, (list, tuple)):
    return type(value)(_whole_to_int(v) for v in value)
  return value


def _check_types(ctx: _Ctx, path: str, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
  """``kwargs`` after checking that every value has the kind ``fn``'s annotation names.

  Whole floats given for integer arguments (YAML's ``2e3``) come back as ints.
  """
  params = _params(fn)
  out = dict(kwargs)
  for key, value in kwargs.items():
    expect = _expectation(fn, params[key]) if key in params else None
    if expect is None:
      continue
    if not expect.accepts(value):
      note = " (a bool is not a number)" if expect.number and isinstance(value, (bool, np.bool_)) else ""
      raise ctx.error(_join(path, key), f"expected {expect.what}, got {value!r}{note}")
    if "integer" in expect.what and "number" not in expect.what:
      out[key] = _whole_to_int(value)
  return out


# --- parsed configs: every check happens here, nothing is built --------------------------------------


@dataclasses.dataclass(frozen=True)
class _LossTerm:
  """One loss of ``loss`` (or of ``loss.terms``): the function and its keyword arguments."""

  path: str
  name: str
  fn: Callable[..., jax.Array]
  scalars: Mapping[str, Any]
  arrays: Mapping[str, np.ndarray]   # lists, cast to the loss input's dtype at call time
  scale: float | None                # None: a single loss, not a term of a sum


@dataclasses.dataclass(frozen=True)
class _ScheduleCall:
  """A schedule factory call; ``kwargs["schedules"]`` of a composite holds child calls."""

  path: str
  name: str
  fn: Callable[..., Any]
  kwargs: Mapping[str, Any]
  steps_per_epoch: Any = None


@dataclasses.dataclass(frozen=True)
class _OptimizerCall:
  """An optimizer factory call; with a schedule, the schedule's result is its lr."""

  path: str
  name: str
  fn: Callable[..., Any]
  kwargs: Mapping[str, Any]
  schedule: _ScheduleCall | None


@dataclasses.dataclass(frozen=True)
class _Group:
  """One entry of ``param_groups``; ``optimizer`` is None for a frozen group."""

  index: int
  match: str
  pattern: re.Pattern[str]
  optimizer: _OptimizerCall | None


@dataclasses.dataclass(frozen=True)
class _Plan:
  """A config, validated: what :func:`_build_plan` builds and :func:`_describe_plan` describes."""

  where: str
  head: str
  spec: Mapping[str, Any]
  loss: tuple[_LossTerm, ...]
  optimizer: _OptimizerCall
  plateau: Mapping[str, Any] | None
  groups: tuple[_Group, ...] | None
  clip: tuple[str, Mapping[str, Any]] | None   # ("clip_grad_norm" | "clip_grad_value", kwargs)


def _loss_kwargs_allowed(fn: Callable[..., Any]) -> list[str]:
  """Keyword arguments a config may set: those with defaults (the arrays have none)."""
  return [n for n, p in _params(fn).items() if p.default is not inspect.Parameter.empty]


def _parse_loss_term(ctx: _Ctx, path: str, section: Any, scale: float | None,
                     extra: Sequence[str] = ()) -> _LossTerm:
  section = _mapping(ctx, path, section)
  if "name" not in section:
    raise ctx.error(path, f"missing key 'name'; allowed loss names: {_choices(LOSSES)}")
  name = _check_name(ctx, _join(path, "name"), section["name"], LOSSES, "loss")
  fn = _factory(ctx, _join(path, "name"), ll_losses, name, "loss")
  _check_kwargs(ctx, path, name, section, _loss_kwargs_allowed(fn), extra=("name", *extra))
  kwargs = {k: v for k, v in section.items() if k not in ("name", *extra)}
  arrays = {k: np.asarray(v) for k, v in kwargs.items() if isinstance(v, (list, tuple, np.ndarray, jax.Array))
            and np.ndim(v) > 0}
  for k, v in arrays.items():
    if not (np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_)):
      raise ctx.error(_join(path, k), f"expected a list of numbers, got {kwargs[k]!r}")
  scalars = {k: v for k, v in kwargs.items() if k not in arrays}
  scalars = _check_types(ctx, path, fn, scalars)
  return _LossTerm(path, name, fn, scalars, arrays, scale)


def _parse_loss(ctx: _Ctx, section: Any) -> tuple[_LossTerm, ...]:
  section = _mapping(ctx, "loss", section)
  if "terms" not in section:
    return (_parse_loss_term(ctx, "loss", section, None),)
  _check_keys(ctx, "loss", section, ("terms",), what="a sum of losses")
  terms_in = section["terms"]
  if not isinstance(terms_in, list) or not terms_in:
    raise ctx.error("loss.terms", f"expected a non-empty list of loss mappings, got {terms_in!r}")
  terms = []
  for i, t in enumerate(terms_in):
    p = _join("loss.terms", i)
    scale = _mapping(ctx, p, t).get("scale", 1.0)
    if not _is_real(scale):
      raise ctx.error(_join(p, "scale"), f"expected a number, got {scale!r}")
    terms.append(_parse_loss_term(ctx, p, t, float(scale), extra=("scale",)))
  return tuple(terms)


def _schedule_lr_param(fn: Callable[..., Any]) -> str:
  return next(iter(_params(fn)))


def _parse_schedule(ctx: _Ctx, path: str, section: Any, *, override_lr: Any, fill_lr: Any) -> _ScheduleCall:
  """A schedule section; its lr argument is ``override_lr``, or ``fill_lr`` when the section has none."""
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
    kwargs["schedules"] = tuple(
        _parse_schedule(ctx, _join(_join(path, "schedules"), i), s, override_lr=override_lr, fill_lr=fill_lr)
        for i, s in enumerate(subs))
  else:
    lr_name = _schedule_lr_param(fn)
    if override_lr is not None:
      kwargs[lr_name] = override_lr
    else:
      kwargs.setdefault(lr_name, fill_lr)
    if name in ("lambda_lr", "multiplicative_lr") and not callable(kwargs.get("fn")):
      raise ctx.error(_join(path, "fn"), f"{name} needs a Python callable `fn(epoch) -> factor`, got"
                      f" {kwargs.get('fn')!r}; build this config from a dict, not YAML")
  missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kwargs]
  if missing:
    raise ctx.error(path, f"{name} needs {', '.join(repr(m) for m in missing)}")
  kwargs.update(_check_types(ctx, path, fn, {k: v for k, v in kwargs.items() if k != "schedules"}))
  steps_per_epoch = section.get("steps_per_epoch")
  if "steps_per_epoch" in section and not _is_int(steps_per_epoch):
    raise ctx.error(_join(path, "steps_per_epoch"), f"expected an integer, got {steps_per_epoch!r}")
  steps_per_epoch = _whole_to_int(steps_per_epoch)
  return _ScheduleCall(path, name, fn, kwargs, steps_per_epoch)


def _explicit_schedule_lr(path: str, section: Mapping[str, Any]) -> tuple[str, Any] | None:
  """``(path, value)`` of the first lr argument a (possibly nested) schedule section sets itself."""
  name = section.get("name")
  if name in _COMPOSITE_SCHEDULES:
    for i, s in enumerate(section.get("schedules") or []):
      if isinstance(s, Mapping):
        found = _explicit_schedule_lr(_join(_join(path, "schedules"), i), s)
        if found:
          return found
    return None
  if name == _PLATEAU or name not in SCHEDULES or not hasattr(ll_schedules, name):
    return None
  lr_name = _schedule_lr_param(getattr(ll_schedules, name))
  if lr_name in section:
    return _join(path, lr_name), section[lr_name]
  return None


def _parse_schedule_section(ctx: _Ctx, spec: Mapping[str, Any], opt_kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
  """The top-level ``schedule`` mapping, checked against the optimizer's lr (None when absent)."""
  sched = spec.get("schedule")
  if sched is None:
    return None
  sched = _mapping(ctx, "schedule", sched)
  if "name" not in sched:
    raise ctx.error("schedule", f"missing key 'name'; allowed schedules: {_choices(SCHEDULES)}")
  _check_name(ctx, "schedule.name", sched["name"], SCHEDULES, "schedule")
  if callable(opt_kwargs.get("lr")):
    raise ctx.error("optimizer.lr", "optimizer.lr is already a schedule; give a number and describe the"
                    " schedule in the schedule section, or drop the schedule section")
  explicit = _explicit_schedule_lr("schedule", sched)
  if explicit and "lr" in opt_kwargs:
    raise ctx.error("", f"the learning rate is set twice, optimizer.lr={_fmt(opt_kwargs['lr'])} and"
                    f" {explicit[0]}={_fmt(explicit[1])}; set it in one place (the schedule's lr argument"
                    " defaults to optimizer.lr)")
  return sched


def _parse_optimizer_call(ctx: _Ctx, path: str, name: str, fn: Callable[..., Any], kwargs: Mapping[str, Any],
                          sched: Mapping[str, Any] | None, base_lr: Any, default_lr: Any) -> _OptimizerCall:
  """One optimizer call (the default one, or a param group's): types, then its schedule."""
  kwargs = _check_types(ctx, path, fn, kwargs)
  schedule = None
  if sched is not None and sched["name"] != _PLATEAU:
    schedule = _parse_schedule(ctx, "schedule", sched, override_lr=kwargs.get("lr", base_lr), fill_lr=default_lr)
  return _OptimizerCall(path, name, fn, dict(kwargs), schedule)


def _parse_groups(ctx: _Ctx, spec: Mapping[str, Any], opt: _OptimizerCall, opt_params: Mapping[str, Any],
                  sched: Mapping[str, Any] | None, default_lr: Any) -> tuple[_Group, ...] | None:
  groups = spec.get("param_groups")
  if groups is None:
    return None
  if not isinstance(groups, list):
    raise ctx.error("param_groups", f"expected a list of group mappings, got {type(groups).__name__}")
  parsed = []
  for i, g in enumerate(groups):
    p = _join("param_groups", i)
    g = _mapping(ctx, p, g)
    _check_keys(ctx, p, g, ("match", "frozen", *opt_params), what=f"a param group of {opt.name}")
    if "match" not in g or not isinstance(g["match"], str):
      raise ctx.error(_join(p, "match"), f"expected a regular expression string, got {g.get('match')!r}")
    try:
      pattern = re.compile(g["match"])
    except re.error as e:
      raise ctx.error(_join(p, "match"), f"invalid regular expression {g['match']!r}: {e}") from None
    frozen = g.get("frozen", False)
    if not isinstance(frozen, bool):
      raise ctx.error(_join(p, "frozen"), f"expected true or false, got {frozen!r}")
    overrides = {k: _numbers_to_tuple(v) for k, v in g.items() if k not in ("match", "frozen")}
    if frozen and overrides:
      raise ctx.error(p, f"a frozen group takes no hyperparameters, got {sorted(overrides)}")
    call = None if frozen else _parse_optimizer_call(
        ctx, p, opt.name, opt.fn, {**opt.kwargs, **overrides}, sched, opt.kwargs.get("lr"), default_lr)
    parsed.append(_Group(i, g["match"], pattern, call))
  return tuple(parsed)


def _parse_clip(ctx: _Ctx, section: Any) -> tuple[str, Mapping[str, Any]] | None:
  if section is None:
    return None
  section = _mapping(ctx, "gradient_clipping", section)
  _check_keys(ctx, "gradient_clipping", section, CLIP_KEYS)
  if ("max_norm" in section) == ("clip_value" in section):
    raise ctx.error("gradient_clipping", "expected exactly one of 'max_norm' (clip_grad_norm) or"
                    f" 'clip_value' (clip_grad_value), got keys {sorted(section)}")
  if "clip_value" in section:
    if "norm_type" in section:
      raise ctx.error("gradient_clipping.norm_type", "norm_type goes with max_norm, not clip_value")
    name, kwargs = "clip_grad_value", {"clip_value": section["clip_value"]}
  else:
    name, kwargs = "clip_grad_norm", {k: section[k] for k in ("max_norm", "norm_type") if k in section}
  kwargs = _check_types(ctx, "gradient_clipping", getattr(ll_optim, name), kwargs)
  return name, kwargs


def _parse(spec: Any, where: str, rationale: str | None) -> _Plan:
  """Validate a config mapping into a :class:`_Plan`; every ConfigError of a config comes from here."""
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
  loss = _parse_loss(ctx, spec["loss"])

  opt = _mapping(ctx, "optimizer", spec["optimizer"])
  if "name" not in opt:
    raise ctx.error("optimizer", f"missing key 'name'; allowed optimizers: {_choices(OPTIMIZERS)}")
  opt_name = _check_name(ctx, "optimizer.name", opt["name"], OPTIMIZERS, "optimizer")
  opt_fn = _factory(ctx, "optimizer.name", ll_optim, opt_name, "optimizer")
  opt_params = _params(opt_fn)
  _check_kwargs(ctx, "optimizer", opt_name, opt, list(opt_params))
  opt_kwargs = {k: _numbers_to_tuple(v) for k, v in opt.items() if k != "name"}
  sched = _parse_schedule_section(ctx, spec, opt_kwargs)
  default_lr = opt_params["lr"].default if "lr" in opt_params else None
  if default_lr is inspect.Parameter.empty:
    default_lr = None
  optimizer = _parse_optimizer_call(ctx, "optimizer", opt_name, opt_fn, opt_kwargs, sched, opt_kwargs.get("lr"),
                                    default_lr)

  plateau = None
  if sched is not None and sched["name"] == _PLATEAU:
    plateau_fn = _factory(ctx, "schedule.name", ll_optim, _PLATEAU, "schedule")
    _check_kwargs(ctx, "schedule", _PLATEAU, sched, list(_params(plateau_fn)))
    plateau = {k: v for k, v in sched.items() if k != "name"}
    plateau.setdefault("base_lr", opt_kwargs.get("lr", default_lr))
    plateau = _check_types(ctx, "schedule", plateau_fn, plateau)

  groups = _parse_groups(ctx, spec, optimizer, opt_params, sched, default_lr)
  clip = _parse_clip(ctx, spec.get("gradient_clipping"))
  head = rationale if rationale is not None else spec.get("description", f"Built by {where}.")
  return _Plan(where, head, saved, loss, optimizer, plateau, groups, clip)


# --- building: factory calls only (their own errors get the config path) ------------------------------


def _build_loss_fn(where: str, terms: tuple[_LossTerm, ...]) -> Callable[..., jax.Array]:
  def loss_fn(*inputs: Any) -> jax.Array:
    total = None
    for t in terms:
      first = jnp.asarray(inputs[0]) if inputs else None
      dtype = first.dtype if first is not None and jnp.issubdtype(first.dtype, jnp.floating) else jnp.float32
      kw = dict(t.scalars)
      kw.update({k: jnp.asarray(v, dtype=dtype) for k, v in t.arrays.items()})
      try:
        value = t.fn(*inputs, **kw)
      except (ValueError, TypeError) as e:
        cls = TypeError if isinstance(e, TypeError) else ValueError
        raise cls(f"{where}: {t.path} ({t.name}): {e}") from e
      value = value if t.scale is None else t.scale * value
      total = value if total is None else total + value
    assert total is not None   # terms is never empty
    return total

  loss_fn.__name__ = "_plus_".join(t.name for t in terms)
  loss_fn.__qualname__ = loss_fn.__name__
  loss_fn.__doc__ = f"Loss built by {where}: {_loss_text(terms)}"
  return loss_fn


def _build_schedule(ctx: _Ctx, call: _ScheduleCall) -> Callable[[Any], jax.Array]:
  kwargs = dict(call.kwargs)
  if "schedules" in kwargs:
    kwargs["schedules"] = [_build_schedule(ctx, c) for c in kwargs["schedules"]]
  schedule = ctx.call(call.path, call.fn, **kwargs)
  if call.steps_per_epoch is not None:
    schedule = ctx.call(_join(call.path, "steps_per_epoch"), ll_schedules.per_epoch, schedule, call.steps_per_epoch)
  return schedule


def _build_optimizer(ctx: _Ctx, call: _OptimizerCall) -> tuple[optax.GradientTransformation, Any]:
  kwargs = dict(call.kwargs)
  schedule = None
  if call.schedule is not None:
    schedule = kwargs["lr"] = _build_schedule(ctx, call.schedule)
  return ctx.call(call.path, call.fn, **kwargs), schedule


def _build_plan(plan: _Plan) -> tuple[Callable[..., jax.Array], optax.GradientTransformationExtraArgs, Any]:
  """``(loss_fn, optimizer, schedule)`` of a parsed config."""
  ctx = _Ctx(plan.where)
  tx, schedule = _build_optimizer(ctx, plan.optimizer)
  if plan.groups is not None:
    transforms: dict[str, optax.GradientTransformation] = {"default": tx}
    for g in plan.groups:
      transforms[f"group{g.index}"] = optax.set_to_zero() if g.optimizer is None else _build_optimizer(ctx, g.optimizer)[0]
    labels = _group_labels(plan.where, [(f"group{g.index}", g.pattern) for g in plan.groups])
    tx = ctx.call("param_groups", ll_optim.param_groups, transforms, labels)
  chain = []
  if plan.clip is not None:
    name, kwargs = plan.clip
    chain.append(ctx.call("gradient_clipping", getattr(ll_optim, name), **kwargs))
  chain.append(tx)
  if plan.plateau is not None:
    chain.append(ctx.call("schedule", ll_optim.reduce_lr_on_plateau, **plan.plateau))
  if len(chain) == 1 and isinstance(chain[0], optax.GradientTransformationExtraArgs):
    optimizer = chain[0]
  else:
    optimizer = optax.chain(*chain)
  return _build_loss_fn(plan.where, plan.loss), optimizer, schedule


# --- describing: the rationale text --------------------------------------------------------------------


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


def _loss_text(terms: Sequence[_LossTerm]) -> str:
  texts = []
  for t in terms:
    text = _call_text(t.name, {**t.scalars, **t.arrays})
    texts.append(text if t.scale is None or t.scale == 1.0 else f"{_fmt(t.scale)} * {text}")
  return " + ".join(texts)


def _schedule_text(call: _ScheduleCall) -> str:
  kwargs = dict(call.kwargs)
  if "schedules" in kwargs:
    kwargs["schedules"] = [_Raw(_schedule_text(c)) for c in kwargs["schedules"]]
  text = _call_text(call.name, kwargs)
  if call.steps_per_epoch is not None:
    text = f"per_epoch({text}, steps_per_epoch={call.steps_per_epoch})"
  return text


def _optimizer_text(call: _OptimizerCall) -> str:
  kwargs = dict(call.kwargs)
  if call.schedule is not None:
    kwargs["lr"] = _Raw(f"<{call.schedule.name if call.schedule.steps_per_epoch is None else 'per_epoch'}>")
  return _call_text(call.name, kwargs)


def _describe_plan(plan: _Plan) -> str:
  """``Scheme.rationale``: the head (description), then one line per component."""
  opt = plan.optimizer
  lines = [f"loss: {_loss_text(plan.loss)}", f"optimizer: {_optimizer_text(opt)}"]
  if opt.schedule is not None:
    lines.append(f"schedule: {_schedule_text(opt.schedule)}")
  if plan.plateau is not None:
    lines.append(f"schedule: {_call_text(_PLATEAU, plan.plateau)} (pass value=metric to update)")
  for g in plan.groups or ():
    if g.optimizer is None:
      lines.append(f"param group {g.index} ({g.match!r}): frozen")
    else:
      sched = f" with {_schedule_text(g.optimizer.schedule)}" if g.optimizer.schedule is not None else ""
      lines.append(f"param group {g.index} ({g.match!r}): {_optimizer_text(g.optimizer)}{sched}")
  if plan.clip is not None:
    lines.append(f"gradient clipping: {_call_text(*plan.clip)}, before the optimizer step")
  return plan.head.rstrip() + "\n\n" + "\n".join(lines)


def _build_from_mapping(spec: Mapping[str, Any], where: str, rationale: str | None = None) -> Scheme:
  plan = _parse(spec, where, rationale)
  loss_fn, optimizer, schedule = _build_plan(plan)
  return Scheme(loss_fn=loss_fn, optimizer=optimizer, schedule=schedule, rationale=_describe_plan(plan),
                spec=plan.spec)


def build(source: str | os.PathLike[str] | Mapping[str, Any]) -> Scheme:
  """Build a :class:`Scheme` (loss, optimizer, schedule) from a YAML file or a mapping.

  The config is first validated as a whole (every :class:`ConfigError` comes from that step), then
  the factories are called, then ``Scheme.rationale`` is written from the validated config.

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
      message lists the allowed ones), a missing required key, a value of the wrong kind for its
      argument (checked against the factory's annotation: a number, where ``true`` is not one; an
      integer; true/false; a string; a list of numbers; ``null`` only where ``None`` is allowed),
      a key given twice in a YAML mapping, or a bad value. Errors the
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

"""Task presets: the loss, optimizer and schedule a practitioner would start from, and why.

Each preset writes a config mapping (``Scheme.spec``), builds it with :func:`losslab_jax.config.build`'s
machinery, and explains its choices in ``Scheme.rationale``. The decisions follow the usual
practice summarised in the project's design notes: cross entropy for balanced classes, class-weighted
cross entropy for mild and moderate imbalance, focal loss with class weights from 1:100 on; MSE for
regression unless outliers or asymmetric costs call for another loss; dice plus cross entropy for
segmentation; triplet or contrastive losses for embeddings; AdamW with a warmup-cosine schedule as
the default optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from losslab_jax.config._build import build_with_rationale
from losslab_jax.config._scheme import Scheme

# Imbalance bands, by the ratio r = largest class count / smallest class count ("1:r").
BALANCED_BELOW = 2.0
"""``r < 2``: balanced enough for plain cross entropy."""
MODERATE_FROM = 10.0
"""``10 <= r < 100``: moderate imbalance (still weighted cross entropy; consider resampling too)."""
SEVERE_FROM = 100.0
"""``r >= 100``: severe imbalance, focal loss with class weights."""

REGRESSION_LOSSES = ("mse", "l1", "huber", "smooth_l1", "asymmetric")
CLASSIFICATION_LOSSES = ("auto", "cross_entropy", "weighted_cross_entropy", "focal_loss")
METRIC_KINDS = ("triplet", "contrastive")


class Imbalance(NamedTuple):
  """The imbalance of a set of class counts.

  Attributes:
    ratio: largest count / smallest count (``100.0`` reads "1:100").
    level: ``"balanced"`` (``ratio < 2``), ``"mild"`` (``2 <= ratio < 10``), ``"moderate"``
      (``10 <= ratio < 100``) or ``"severe"`` (``ratio >= 100``).
    weights: the inverse-frequency class weights ``N / (K * n_k)`` (the formula of
      :func:`losslab_jax.losses.class_weights`), as Python floats. A class with the average count
      gets 1; the count-weighted mean of the weights is 1.
  """

  ratio: float
  level: str
  weights: tuple[float, ...]


def _err(fn: str, message: str) -> ValueError:
  return ValueError(f"{fn}: {message}")


def imbalance(class_counts: Sequence[int] | Any, *, fn: str = "schemes.imbalance") -> Imbalance:
  """Classify the imbalance of ``class_counts`` into the bands the classification scheme uses.

  Bands, by ``r = max(n_k) / min(n_k)``: balanced ``r < 2``; mild ``2 <= r < 10``; moderate
  ``10 <= r < 100``; severe ``r >= 100``. These are the usual practitioner's bands (mild 1:2 to
  1:10, moderate 1:10 to 1:100, severe 1:100 and beyond).

  Args:
    class_counts: the number of training examples of each class, length ``K >= 2``, all ``> 0``
      (``np.bincount(labels, minlength=K)``).

  Returns:
    An :class:`Imbalance` ``(ratio, level, weights)``.

  Raises:
    ValueError: fewer than two classes, a count that is not a positive whole number.

  Examples:
    >>> imbalance([990, 10])
    Imbalance(ratio=99.0, level='moderate', weights=(0.5050505050505051, 50.0))
  """
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size < 2:
    raise _err(fn, f"expected class_counts with one count per class (at least 2), got shape {counts.shape}")
  if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
    raise _err(fn, f"expected numeric class_counts, got dtype {counts.dtype}")
  if np.any(counts != np.round(counts)) or np.any(counts <= 0):
    bad = [int(k) for k in np.flatnonzero((counts != np.round(counts)) | (counts <= 0))]
    raise _err(fn, f"expected positive whole counts for every class, got {counts.tolist()} (class(es)"
               f" {bad}); a class with no examples cannot be weighted, drop it or collect examples")
  counts = counts.astype(np.float64)
  ratio = float(counts.max() / counts.min())
  level = ("balanced" if ratio < BALANCED_BELOW else "mild" if ratio < MODERATE_FROM
           else "moderate" if ratio < SEVERE_FROM else "severe")
  weights = tuple(float(w) for w in counts.sum() / (counts.size * counts))
  return Imbalance(ratio, level, weights)


# --- shared checks and texts -------------------------------------------------------------------------


def _check_common(fn: str, lr: float, weight_decay: float, total_steps: int,
                  warmup_steps: int | None, max_grad_norm: float | None) -> int:
  if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
    raise _err(fn, f"expected lr > 0, got {lr!r}")
  if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
    raise _err(fn, f"expected weight_decay >= 0, got {weight_decay!r}")
  if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
    raise _err(fn, f"expected total_steps to be an int >= 1 (the number of optimizer updates), got"
               f" {total_steps!r}")
  if warmup_steps is None:
    warmup_steps = max(1, round(0.05 * total_steps)) if total_steps > 1 else 0
  if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
    raise _err(fn, f"expected warmup_steps to be an int in [0, total_steps={total_steps}), got {warmup_steps!r}")
  if max_grad_norm is not None and (isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float))
                                    or not max_grad_norm > 0):
    raise _err(fn, f"expected max_grad_norm > 0 or None, got {max_grad_norm!r}")
  return warmup_steps


def _adamw(lr: float, weight_decay: float) -> dict[str, Any]:
  return {"name": "adamw", "lr": float(lr), "weight_decay": float(weight_decay)}


def _adamw_text(lr: float, weight_decay: float, why_wd: str) -> str:
  return (f"Optimizer: AdamW (lr={lr:g}, weight_decay={weight_decay:g}, betas=(0.9, 0.999)). Adam's"
          " per-parameter step sizes work across layers of different scale without tuning, and AdamW"
          " decouples the weight decay from the adaptive step, so the decay acts as intended"
          f" (Loshchilov & Hutter, 2019). {why_wd}").rstrip()


def _warmup_cosine(warmup_steps: int, total_steps: int) -> tuple[dict[str, Any], str]:
  spec = {"name": "warmup_cosine", "warmup_steps": warmup_steps, "total_steps": total_steps}
  text = (f"Schedule: linear warmup over {warmup_steps} of {total_steps} steps, then cosine decay to 0"
          " (warmup_cosine). Warmup keeps the first updates small while Adam's second-moment estimates"
          " are still noisy; cosine decay anneals to a low lr for the final steps. Set total_steps to"
          " the number of optimizer updates you will run.")
  return spec, text


def _clip(spec: dict[str, Any], lines: list[str], max_grad_norm: float | None) -> None:
  if max_grad_norm is not None:
    spec["gradient_clipping"] = {"max_norm": float(max_grad_norm)}
    lines.append(f"Gradient clipping: global norm {max_grad_norm:g} (torch's clip_grad_norm_), before each"
                 " step, which guards against rare exploding gradients.")


def _with_class_check(fn: str, loss_fn: Callable[..., jax.Array], num_classes: int) -> Callable[..., jax.Array]:
  """``loss_fn`` that first checks the class axis of its first argument (static, at trace time)."""

  def checked(logits, labels, *rest):
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[-1] != num_classes:
      raise ValueError(f"{fn}: expected logits with num_classes={num_classes} on the last axis, got shape"
                       f" {logits.shape}")
    return loss_fn(logits, labels, *rest)

  checked.__name__ = loss_fn.__name__
  checked.__doc__ = loss_fn.__doc__
  return checked


def _check_num_classes(fn: str, num_classes: Any) -> int:
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise _err(fn, f"expected num_classes to be an int >= 2, got {num_classes!r}")
  return int(num_classes)


def _fmt_weights(weights: Sequence[float]) -> str:
  shown = ", ".join(f"{w:.3g}" for w in weights[:8])
  return f"[{shown}{', ...' if len(weights) > 8 else ''}]"


# --- the schemes -----------------------------------------------------------------------------------


def classification(
    num_classes: int,
    class_counts: Sequence[int] | Any | None = None,
    *,
    loss: str = "auto",
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    total_steps: int = 1000,
    warmup_steps: int | None = None,
    max_grad_norm: float | None = None,
) -> Scheme:
  r"""Multi-class classification: the loss chosen from the class imbalance, AdamW, warmup-cosine.

  With ``loss="auto"`` the loss follows the imbalance ``r = max(n_k) / min(n_k)`` of
  ``class_counts`` (see :func:`imbalance`):

  ========================  ===========================  =============================================
  band                      ratio                        loss
  ========================  ===========================  =============================================
  balanced (or no counts)   ``r < 2``                    ``cross_entropy``
  mild                      ``2 <= r < 10``              ``cross_entropy(weight=w)``
  moderate                  ``10 <= r < 100``            ``cross_entropy(weight=w)`` (+ resample data)
  severe                    ``r >= 100``                 ``focal_loss(gamma=2, alpha=w)``
  ========================  ===========================  =============================================

  with the inverse-frequency weights :math:`w_k = N / (K n_k)`. Weighting gives each class the same
  total weight in the loss; from 1:100 on, the many easy majority examples still dominate the
  gradient, and the focal term :math:`(1 - p_t)^\gamma` down-weights those easy examples.

  ``loss_fn(logits, labels)``: ``logits`` ``[N, *, num_classes]`` floating, ``labels`` ``[N, *]``
  integer class indices (or class probabilities ``[N, *, num_classes]`` for ``cross_entropy``);
  returns the mean loss.

  Args:
    num_classes: ``K >= 2``.
    class_counts: training examples per class, length ``K`` (``np.bincount(labels, minlength=K)``);
      ``None`` means balanced.
    loss: ``"auto"`` (above), or force ``"cross_entropy"``, ``"weighted_cross_entropy"``
      (needs ``class_counts``) or ``"focal_loss"`` (class weights when ``class_counts`` is given).
    gamma: focal loss focusing parameter (2.0, Lin et al. 2017).
    label_smoothing: cross entropy label smoothing (not available with focal loss).
    lr: peak learning rate of AdamW.
    weight_decay: AdamW's decoupled weight decay.
    total_steps: the number of optimizer updates the schedule spans.
    warmup_steps: linear warmup steps; default 5% of ``total_steps`` (at least 1).
    max_grad_norm: clip the global gradient norm to this before each step; ``None``: no clipping.

  Returns:
    A :class:`~losslab_jax.config.Scheme`; ``rationale`` says which band the counts fell in and why.

  Raises:
    ValueError: bad ``num_classes``, ``class_counts`` of the wrong length or with a zero count, an
      unknown ``loss``, ``label_smoothing`` with focal loss, or a bad optimizer setting. At call
      time, ``loss_fn`` raises if ``logits.shape[-1] != num_classes``.

  Examples:
    >>> import losslab_jax as ll
    >>> scheme = ll.schemes.classification(2, class_counts=[5000, 20])
    >>> scheme.spec["loss"]["name"]
    'focal_loss'
    >>> loss_fn, tx, schedule = scheme
  """
  fn = "schemes.classification"
  num_classes = _check_num_classes(fn, num_classes)
  warmup_steps = _check_common(fn, lr, weight_decay, total_steps, warmup_steps, max_grad_norm)
  imb = _parse_classification(fn, num_classes, class_counts, loss, gamma, label_smoothing)
  chosen = _choose_loss(fn, loss, imb, label_smoothing)
  band = _band_text(imb)
  lines = [_classification_loss_text(chosen, imb, gamma, label_smoothing)]
  lines.append(_adamw_text(lr, weight_decay, "A weight decay of 1e-2 is the common default for AdamW."
                           if weight_decay == 1e-2 else ""))
  sched_spec, sched_text = _warmup_cosine(warmup_steps, total_steps)
  lines.append(sched_text)
  spec = {"name": "classification", "description": f"Classification, {num_classes} classes: {band}.",
          "loss": _classification_loss_spec(chosen, imb, gamma, label_smoothing),
          "optimizer": _adamw(lr, weight_decay), "schedule": sched_spec}
  _clip(spec, lines, max_grad_norm)
  rationale = f"Classification into {num_classes} classes; {band}.\n" + "\n".join(lines)
  scheme = build_with_rationale(spec, fn, rationale)
  return _replace_loss(scheme, _with_class_check(fn, scheme.loss_fn, num_classes))


def _parse_classification(fn: str, num_classes: int, class_counts: Any, loss: str, gamma: float,
                          label_smoothing: float) -> Imbalance | None:
  """The loss arguments checked; the imbalance of ``class_counts`` (None without counts)."""
  if loss not in CLASSIFICATION_LOSSES:
    raise _err(fn, f"expected loss to be one of {', '.join(map(repr, CLASSIFICATION_LOSSES))}, got {loss!r}")
  if not 0.0 <= label_smoothing <= 1.0:
    raise _err(fn, f"expected label_smoothing in [0, 1], got {label_smoothing!r}")
  if not gamma >= 0:
    raise _err(fn, f"expected gamma >= 0, got {gamma!r}")
  if class_counts is None:
    return None
  imb = imbalance(class_counts, fn=fn)
  if len(imb.weights) != num_classes:
    raise _err(fn, f"expected {num_classes} class_counts (one per class), got {len(imb.weights)}")
  return imb


def _choose_loss(fn: str, loss: str, imb: Imbalance | None, label_smoothing: float) -> str:
  """The loss for ``loss="auto"`` by the imbalance band (or the forced one), refused where it cannot work."""
  chosen = loss
  if loss == "auto":
    chosen = ("cross_entropy" if imb is None or imb.level == "balanced"
              else "focal_loss" if imb.level == "severe" else "weighted_cross_entropy")
  elif loss == "weighted_cross_entropy" and imb is None:
    raise _err(fn, "loss='weighted_cross_entropy' needs class_counts to compute the class weights")
  if chosen == "focal_loss" and label_smoothing:
    raise _err(fn, f"label_smoothing={label_smoothing} is not available with focal_loss"
               + (" (chosen for severe imbalance)" if loss == "auto" else "")
               + "; pass loss='weighted_cross_entropy' to keep label smoothing")
  return chosen


def _band_text(imb: Imbalance | None) -> str:
  """Which imbalance band the counts fell in, for the description and the rationale."""
  if imb is None:
    return "no class_counts given, so the classes are taken as balanced"
  return (f"class_counts give an imbalance of 1:{imb.ratio:.3g} (largest / smallest count), which is"
          f" {imb.level}")


def _classification_loss_spec(chosen: str, imb: Imbalance | None, gamma: float,
                              label_smoothing: float) -> dict[str, Any]:
  """The config spec of the ``chosen`` loss."""
  if chosen == "cross_entropy":
    loss_spec: dict[str, Any] = {"name": "cross_entropy"}
  elif chosen == "weighted_cross_entropy":
    assert imb is not None  # invariant: refused above without class_counts, and "auto" picks it only with them
    loss_spec = {"name": "cross_entropy", "weight": list(imb.weights)}
  else:
    loss_spec = {"name": "focal_loss", "gamma": float(gamma)}
    if imb is not None:
      loss_spec["alpha"] = list(imb.weights)
  if label_smoothing:
    loss_spec["label_smoothing"] = float(label_smoothing)
  return loss_spec


def _classification_loss_text(chosen: str, imb: Imbalance | None, gamma: float, label_smoothing: float) -> str:
  """The rationale's paragraph on the ``chosen`` loss."""
  if chosen == "cross_entropy":
    why = ("Loss: cross entropy, the maximum-likelihood loss for mutually exclusive classes, on raw"
           " logits.")
    if imb is not None and imb.level != "balanced":
      why += " You forced it despite the imbalance; expect the minority classes' recall to suffer."
  elif chosen == "weighted_cross_entropy":
    assert imb is not None  # invariant: refused above without class_counts, and "auto" picks it only with them
    why = ("Loss: cross entropy weighted by inverse class frequency, w_k = N / (K n_k) ="
           f" {_fmt_weights(imb.weights)}, so every class carries the same total weight and the"
           " majority class cannot win by predicting itself everywhere (the weighted mean divides by"
           " the summed weights of the batch, as torch does).")
    if imb.level == "moderate":
      why += (" At this imbalance also consider oversampling the minority classes (or undersampling the"
              " majority) so each batch sees them.")
  else:
    why = (f"Loss: focal loss (gamma={gamma:g}), -alpha_t (1 - p_t)^gamma log p_t (Lin et al., 2017)."
           " At 1:100 and beyond class weights alone leave the gradient dominated by the many easy"
           " majority examples; the factor (1 - p_t)^gamma shrinks their loss and focuses training on"
           " hard, mostly minority, examples.")
    if imb is not None:
      why += (f" alpha is the inverse-frequency class weight w_k = N / (K n_k) = {_fmt_weights(imb.weights)}."
              " Pair it with balanced sampling if you can, and judge the model by per-class recall or"
              " balanced accuracy, not accuracy.")
  if label_smoothing:
    why += f" Label smoothing {label_smoothing:g} keeps the predicted probabilities from saturating."
  return why


def _replace_loss(scheme: Scheme, loss_fn: Callable[..., jax.Array]) -> Scheme:
  return Scheme(loss_fn=loss_fn, optimizer=scheme.optimizer, schedule=scheme.schedule,
                rationale=scheme.rationale, spec=scheme.spec)


_REGRESSION_TEXT = {
    "mse": ("mse_loss", "Loss: mean squared error, the maximum-likelihood loss under Gaussian noise; it"
            " penalises large errors quadratically, so it is the right default when errors are"
            " well-behaved, and the wrong one when the targets hold outliers (use huber or l1)."),
    "l1": ("l1_loss", "Loss: mean absolute error (L1). It estimates the conditional median, and an outlier"
           " pulls on the fit with a bounded gradient, so it is the most robust choice; its gradient does"
           " not shrink near the optimum, so the decaying lr matters."),
    "huber": ("huber_loss", "Loss: Huber, quadratic for |error| <= delta and linear beyond: MSE's smooth"
              " behaviour for small errors with L1's bounded gradient for outliers. Choose delta near the"
              " size of a typical (inlier) error."),
    "smooth_l1": ("smooth_l1_loss", "Loss: smooth L1 (Huber divided by beta), the box-regression loss of"
                  " object detection: L1 for |error| >= beta, quadratic below, with gradients bounded by 1."),
    "asymmetric": ("asymmetric_mse_loss", "Loss: asymmetric MSE, squared error weighted by under_penalty"
                   " where the prediction is below the target and by over_penalty where it is above, for"
                   " costs that differ by direction (stock-outs vs overstock, missed vs false alarms)."),
}
_REGRESSION_KWARGS = {"huber": ("delta",), "smooth_l1": ("beta",), "asymmetric": ("under_penalty", "over_penalty")}


def regression(
    loss_type: str = "mse",
    *,
    delta: float | None = None,
    beta: float | None = None,
    under_penalty: float | None = None,
    over_penalty: float | None = None,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    total_steps: int = 1000,
    max_grad_norm: float | None = None,
) -> Scheme:
  """Regression: the loss by name, AdamW with light weight decay, cosine annealing.

  ==============  ==========================  =========================================================
  loss_type       loss                        when
  ==============  ==========================  =========================================================
  ``mse``         ``mse_loss``                default; Gaussian-like noise
  ``l1``          ``l1_loss``                 heavy outliers; median regression
  ``huber``       ``huber_loss(delta)``       some outliers, MSE-like near the fit
  ``smooth_l1``   ``smooth_l1_loss(beta)``    box regression; Huber / beta
  ``asymmetric``  ``asymmetric_mse_loss``     under- and over-prediction cost differently
  ==============  ==========================  =========================================================

  ``loss_fn(prediction, target)``: floating arrays of the same shape; returns the mean loss.

  Args:
    loss_type: one of ``"mse"``, ``"l1"``, ``"huber"``, ``"smooth_l1"``, ``"asymmetric"``.
    delta: Huber's threshold (``huber`` only; default 1.0).
    beta: smooth L1's threshold (``smooth_l1`` only; default 1.0).
    under_penalty: weight of under-predictions (``asymmetric`` only; default 2.0).
    over_penalty: weight of over-predictions (``asymmetric`` only; default 1.0).
    lr: initial learning rate of AdamW.
    weight_decay: AdamW's decoupled weight decay (1e-4: regression targets are scale-sensitive, so
      decay is kept light).
    total_steps: number of optimizer updates; the cosine reaches 0 there (``T_max``).
    max_grad_norm: clip the global gradient norm before each step; ``None``: no clipping.

  Returns:
    A :class:`~losslab_jax.config.Scheme`.

  Raises:
    ValueError: an unknown ``loss_type``, a loss keyword given for a loss that does not take it, or a
      bad optimizer setting.

  Examples:
    >>> import losslab_jax as ll
    >>> ll.schemes.regression("huber", delta=0.5).spec["loss"]
    {'name': 'huber_loss', 'delta': 0.5}
  """
  fn = "schemes.regression"
  if loss_type not in REGRESSION_LOSSES:
    raise _err(fn, f"expected loss_type to be one of {', '.join(map(repr, REGRESSION_LOSSES))}, got {loss_type!r}")
  _check_common(fn, lr, weight_decay, total_steps, 0, max_grad_norm)
  given = {"delta": delta, "beta": beta, "under_penalty": under_penalty, "over_penalty": over_penalty}
  allowed = _REGRESSION_KWARGS.get(loss_type, ())
  for k, v in given.items():
    if v is not None and k not in allowed:
      users = [t for t, ks in _REGRESSION_KWARGS.items() if k in ks]
      raise _err(fn, f"{k}= applies to loss_type={users[0]!r}, not {loss_type!r}")
  loss_name, why = _REGRESSION_TEXT[loss_type]
  loss_spec: dict[str, Any] = {"name": loss_name}
  loss_spec.update({k: float(v) for k, v in given.items() if v is not None})
  lines = [why]
  lines.append(_adamw_text(lr, weight_decay, "The weight decay is light (1e-4): regression outputs are"
                           " scale-sensitive and strong decay biases them toward 0." if weight_decay == 1e-4
                           else ""))
  lines.append(f"Schedule: cosine annealing from lr={lr:g} to 0 over T_max={total_steps} steps"
               " (cosine_annealing_lr); small regression models need no warmup. Past T_max torch's cosine"
               " rises again, so set total_steps to the number of updates you run.")
  spec = {"name": "regression", "description": f"Regression with {loss_name}.", "loss": loss_spec,
          "optimizer": _adamw(lr, weight_decay),
          "schedule": {"name": "cosine_annealing_lr", "T_max": total_steps}}
  _clip(spec, lines, max_grad_norm)
  rationale = f"Regression, loss_type={loss_type!r}.\n" + "\n".join(lines)
  return build_with_rationale(spec, fn, rationale)


def segmentation(
    num_classes: int,
    *,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    smooth: float = 1.0,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    total_steps: int = 1000,
    power: float = 0.9,
    max_grad_norm: float | None = None,
) -> Scheme:
  r"""Semantic segmentation: dice + cross entropy, AdamW, the "poly" schedule.

  .. math::
     \mathcal{L} = \lambda_{dice}\,\mathrm{dice}(x, y) + \lambda_{ce}\,\mathrm{CE}(x, y)

  Cross entropy gives every pixel a well-conditioned gradient; soft dice measures per-class overlap,
  so small structures count as much as the background however few pixels they cover. The sum is the
  common default of medical and semantic segmentation (e.g. nnU-Net).

  ``loss_fn(logits, labels)``: ``logits`` ``[N, H, W, num_classes]`` (any spatial rank, classes last),
  ``labels`` ``[N, H, W]`` integer class indices; returns the scalar loss.

  Args:
    num_classes: ``K >= 2`` (the background counts as a class).
    dice_weight: :math:`\lambda_{dice}`.
    ce_weight: :math:`\lambda_{ce}`.
    smooth: dice's additive smoothing.
    lr: initial learning rate of AdamW.
    weight_decay: AdamW's decoupled weight decay.
    total_steps: number of optimizer updates (``polynomial_lr``'s ``total_iters``).
    power: exponent of the poly schedule ``lr (1 - k / total_steps)^power``; 0.9 as in DeepLab.
    max_grad_norm: clip the global gradient norm before each step; ``None``: no clipping.

  Returns:
    A :class:`~losslab_jax.config.Scheme`.

  Raises:
    ValueError: bad ``num_classes``, negative loss weights (or both 0), or a bad optimizer setting. At
      call time, ``loss_fn`` raises if ``logits.shape[-1] != num_classes``.
  """
  fn = "schemes.segmentation"
  num_classes = _check_num_classes(fn, num_classes)
  _check_common(fn, lr, weight_decay, total_steps, 0, max_grad_norm)
  if dice_weight < 0 or ce_weight < 0 or dice_weight + ce_weight == 0:
    raise _err(fn, f"expected dice_weight, ce_weight >= 0, not both 0, got {dice_weight!r}, {ce_weight!r}")
  if not power > 0:
    raise _err(fn, f"expected power > 0, got {power!r}")
  terms = []
  if dice_weight:
    terms.append({"name": "dice_loss", "scale": float(dice_weight), "smooth": float(smooth)})
  if ce_weight:
    terms.append({"name": "cross_entropy", "scale": float(ce_weight)})
  lines = [f"Loss: {dice_weight:g} * soft dice (smooth={smooth:g}) + {ce_weight:g} * cross entropy. Cross"
           " entropy gives every pixel a well-conditioned gradient from the first step; dice scores the"
           " overlap of each class with its mask, so a small structure counts as much as the background"
           " however few pixels it covers, which counters the usual background/foreground imbalance."]
  lines.append(_adamw_text(lr, weight_decay, ""))
  lines.append(f"Schedule: the 'poly' policy lr (1 - k / {total_steps})^{power:g} (polynomial_lr), the"
               " standard for segmentation networks since DeepLab: a slow decay that reaches 0 at the end.")
  spec = {"name": "segmentation", "description": f"Segmentation, {num_classes} classes.",
          "loss": {"terms": terms}, "optimizer": _adamw(lr, weight_decay),
          "schedule": {"name": "polynomial_lr", "total_iters": total_steps, "power": float(power)}}
  _clip(spec, lines, max_grad_norm)
  rationale = f"Segmentation into {num_classes} classes.\n" + "\n".join(lines)
  scheme = build_with_rationale(spec, fn, rationale)
  return _replace_loss(scheme, _with_class_check(fn, scheme.loss_fn, num_classes))


def metric_learning(
    kind: str = "triplet",
    *,
    margin: float = 1.0,
    p: float | None = None,
    swap: bool | None = None,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    total_steps: int = 1000,
    warmup_steps: int | None = None,
    max_grad_norm: float | None = None,
) -> Scheme:
  """Metric (embedding) learning: triplet or contrastive loss, AdamW, warmup-cosine.

  * ``kind="triplet"``: ``loss_fn(anchor, positive, negative)``, embeddings ``[N, D]``;
    ``triplet_margin_loss`` asks the anchor to be closer to the positive than to the negative by
    ``margin`` (torch's ``TripletMarginLoss``). For data that come as triplets (face recognition,
    retrieval).
  * ``kind="contrastive"``: ``loss_fn(x1, x2, target)``, embeddings ``[N, D]`` and ``target`` ``[N]``
    with 0 for a similar pair and 1 for a dissimilar one; ``contrastive_loss`` pulls similar pairs
    together and pushes dissimilar ones beyond ``margin`` (Hadsell et al., 2006). For Siamese
    networks trained on labelled pairs.

  Args:
    kind: ``"triplet"`` or ``"contrastive"``.
    margin: the margin of either loss (1.0, torch's default; suits unnormalised embeddings, use ~0.2
      for L2-normalised ones).
    p: the norm degree of the triplet distance (triplet only; default 2).
    swap: the triplet "distance swap" of Balntas et al. (triplet only; default False).
    lr: peak learning rate of AdamW.
    weight_decay: AdamW's decoupled weight decay.
    total_steps: number of optimizer updates.
    warmup_steps: linear warmup steps; default 5% of ``total_steps``.
    max_grad_norm: clip the global gradient norm before each step; ``None``: no clipping.

  Returns:
    A :class:`~losslab_jax.config.Scheme`.

  Raises:
    ValueError: an unknown ``kind``, ``p``/``swap`` with ``kind="contrastive"``, ``margin < 0``, or a
      bad optimizer setting.
  """
  fn = "schemes.metric_learning"
  if kind not in METRIC_KINDS:
    raise _err(fn, f"expected kind to be one of {', '.join(map(repr, METRIC_KINDS))}, got {kind!r}")
  warmup_steps = _check_common(fn, lr, weight_decay, total_steps, warmup_steps, max_grad_norm)
  if not margin >= 0:
    raise _err(fn, f"expected margin >= 0, got {margin!r}")
  if kind == "triplet":
    loss_spec: dict[str, Any] = {"name": "triplet_margin_loss", "margin": float(margin)}
    if p is not None:
      loss_spec["p"] = float(p)
    if swap is not None:
      loss_spec["swap"] = bool(swap)
    why = (f"Loss: triplet margin loss (margin={margin:g}), max(d(a, p) - d(a, n) + margin, 0): it only"
           " asks for relative distances, which is what retrieval and verification use. Mine hard or"
           " semi-hard negatives for each batch; random triplets soon satisfy the margin and stop"
           " contributing.")
  else:
    if p is not None or swap is not None:
      raise _err(fn, "p= and swap= apply to kind='triplet', not 'contrastive'")
    loss_spec = {"name": "contrastive_loss", "margin": float(margin)}
    why = (f"Loss: contrastive loss (margin={margin:g}), (1 - y) d^2 + y max(margin - d, 0)^2 with y=0 for"
           " similar pairs: it pulls similar pairs together and pushes dissimilar ones to at least the"
           " margin, for Siamese networks trained on labelled pairs.")
  lines = [why, _adamw_text(lr, weight_decay, "")]
  sched_spec, sched_text = _warmup_cosine(warmup_steps, total_steps)
  lines.append(sched_text)
  spec = {"name": "metric_learning", "description": f"Metric learning with the {kind} loss.",
          "loss": loss_spec, "optimizer": _adamw(lr, weight_decay), "schedule": sched_spec}
  _clip(spec, lines, max_grad_norm)
  rationale = f"Metric learning, kind={kind!r}.\n" + "\n".join(lines)
  return build_with_rationale(spec, fn, rationale)


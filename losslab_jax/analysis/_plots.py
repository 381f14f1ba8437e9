"""PNG plots of the analysis results (matplotlib, the optional ``plot`` extra, imported lazily).

Each function draws on a fresh ``matplotlib.figure.Figure`` (no pyplot, no global state, no
display needed), writes it to ``path`` and returns the path. The format follows the file
suffix (``.png`` by default in matplotlib; ``.svg`` and ``.pdf`` work too).
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Any

import numpy as np

from losslab_jax.analysis._results import GradientFlowResult, LandscapeResult, LRRangeResult

_COLORS = {"ok": "#4C72B0", "vanishing": "#DD8452", "exploding": "#C44E52", "accent": "#55A868"}


def plot_landscape(
    result: LandscapeResult, path: str | os.PathLike[str], *, title: str | None = None,
    log_scale: bool = False,
) -> pathlib.Path:
  """Draw a :class:`LandscapeResult`: a loss curve (``dims=1``) or a filled contour (``dims=2``).

  The centre (``params``) is marked, and a box lists ``current_loss``, ``loss_std``,
  ``loss_range``, the curvature and the sharpness.

  Args:
    result: what :func:`loss_landscape` returned (concrete, outside ``jit``).
    path: where to write the image.
    title: the figure title; a default names the normalisation.
    log_scale: logarithmic loss axis (1-D) or log-spaced contour levels (2-D); needs positive
      losses.

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    ImportError: matplotlib is not installed (``pip install 'losslab_jax[plot]'``).
  """
  figure_cls = _figure_class("plot_landscape")
  losses = np.ma.masked_invalid(np.asarray(result.losses, dtype=np.float64))
  alphas = np.asarray(result.alphas, dtype=np.float64)
  current = float(result.current_loss)
  fig = figure_cls(figsize=(7.0, 5.0) if result.dims == 1 else (7.0, 6.0), layout="constrained")
  ax = fig.add_subplot()
  if result.dims == 1:
    ax.plot(alphas, losses, color=_COLORS["ok"], marker="o", markersize=3, linewidth=1.5, label="loss")
    ax.plot([0.0], [current], marker="*", markersize=14, color=_COLORS["exploding"], linestyle="none",
            label=f"params (loss {current:.4g})")
    ax.set_xlabel(r"$\alpha$ (step along $d_1$)")
    ax.set_ylabel("loss")
    if log_scale:
      ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center")
  else:
    betas = np.asarray(result.betas, dtype=np.float64)
    levels = _contour_levels(losses, log_scale)
    grid = losses.T  # losses[i, j] is at (alphas[i], betas[j]); contourf wants [y, x]
    filled = ax.contourf(alphas, betas, grid, levels=levels, cmap="viridis")
    ax.contour(alphas, betas, grid, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(filled, ax=ax, label="loss")
    ax.plot([0.0], [0.0], marker="*", markersize=14, color=_COLORS["exploding"], linestyle="none",
            label=f"params (loss {current:.4g})")
    ax.set_xlabel(r"$\alpha$ (step along $d_1$)")
    ax.set_ylabel(r"$\beta$ (step along $d_2$)")
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
  curvature = ", ".join(f"{float(c):.3g}" for c in np.asarray(result.curvature))
  ax.text(0.02, 0.98,
          f"loss_std {float(result.loss_std):.4g}\nloss_range {float(result.loss_range):.4g}\n"
          f"curvature {curvature}\nsharpness {float(result.sharpness):.4g}",
          transform=ax.transAxes, va="top", ha="left", fontsize=9, family="monospace",
          bbox=dict(boxstyle="round", facecolor="white", alpha=0.85))
  ax.set_title(title or f"Loss landscape ({result.dims}-D, normalize={result.normalize!r})")
  return _save(fig, path)


def plot_gradient_flow(
    result: GradientFlowResult, path: str | os.PathLike[str], *, title: str | None = None,
) -> pathlib.Path:
  """Draw a :class:`GradientFlowResult` as a horizontal bar chart of per-layer gradient norms.

  One bar per leaf, in flatten order from the top, on a logarithmic axis, coloured by flag
  (vanishing, exploding, fine); dots mark each leaf's ``max_abs``, dashed lines the two
  thresholds. Zero norms are drawn at the left edge.

  Args:
    result: what :func:`gradient_flow` returned (concrete, outside ``jit``).
    path: where to write the image.
    title: the figure title; a default gives the total norm and the loss.

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    ImportError: matplotlib is not installed (``pip install 'losslab_jax[plot]'``).
  """
  figure_cls = _figure_class("plot_gradient_flow")
  names = list(result.gradient_stats)
  stats = list(result.gradient_stats.values())
  norms = np.array([float(s.norm) for s in stats])
  max_abs = np.array([float(s.max_abs) for s in stats])
  lo_t, hi_t = result.vanishing_threshold, result.exploding_threshold
  positive = np.concatenate([norms[norms > 0], max_abs[max_abs > 0], [v for v in (lo_t, hi_t) if v > 0]])
  floor = 10.0 ** math.floor(math.log10(positive.min()) - 1) if positive.size else 1e-12
  colors = [_COLORS["vanishing"] if bool(s.vanishing) else _COLORS["exploding"] if bool(s.exploding)
            else _COLORS["ok"] for s in stats]
  y = np.arange(len(names))
  fig = figure_cls(figsize=(8.0, 1.6 + 0.38 * len(names)), layout="constrained")
  ax = fig.add_subplot()
  ax.barh(y, np.maximum(norms, floor) - floor, left=floor, color=colors, height=0.7)
  ax.plot(np.maximum(max_abs, floor), y, "o", color="black", markersize=4, label="max |g|")
  if lo_t > 0:
    ax.axvline(lo_t, color=_COLORS["vanishing"], linestyle="--", label=f"vanishing < {lo_t:.0e}")
  ax.axvline(hi_t, color=_COLORS["exploding"], linestyle="--", label=f"exploding > {hi_t:.0e}")
  from matplotlib.patches import Patch

  handles = [Patch(color=_COLORS[k], label=f"||g|| ({k})") for k in ("ok", "vanishing", "exploding")]
  handles += ax.get_legend_handles_labels()[0]
  for yi, (norm, color) in enumerate(zip(norms, colors)):
    ax.annotate(f" {norm:.2g}", (max(norm, floor), yi), va="center", ha="left", fontsize=8, color=color,
                xytext=(2, 0), textcoords="offset points")
  ax.set_xscale("log")
  ax.set_xlim(floor, 10.0 ** math.ceil(math.log10(positive.max()) + 1) if positive.size else 1.0)
  ax.set_yticks(y, names)
  ax.invert_yaxis()
  ax.set_xlabel("gradient norm per leaf (log scale)")
  ax.grid(True, axis="x", alpha=0.3)
  ax.legend(handles=handles, loc="lower right", fontsize=8)
  ax.set_title(title or (f"Gradient flow: total norm {float(result.total_gradient_norm):.4g},"
                         f" loss {float(result.loss_value):.4g}"))
  return _save(fig, path)


def plot_lr_range(
    result: LRRangeResult, path: str | os.PathLike[str], *, title: str | None = None,
) -> pathlib.Path:
  """Draw an :class:`LRRangeResult`: loss against learning rate on a logarithmic axis.

  The raw losses (faint), the smoothed losses, the suggested learning rate, the minimum of the
  smoothed loss, and the step where the test diverged. The loss axis is cut a little above the
  largest smoothed loss before divergence, so the blow-up does not flatten the curve.

  Args:
    result: what :func:`lr_range_test` returned (concrete, outside ``jit``).
    path: where to write the image.
    title: the figure title.

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    ImportError: matplotlib is not installed (``pip install 'losslab_jax[plot]'``).
  """
  figure_cls = _figure_class("plot_lr_range")
  lrs = np.asarray(result.lrs, dtype=np.float64)
  raw = np.asarray(result.losses, dtype=np.float64)
  smooth = np.asarray(result.smoothed_losses, dtype=np.float64)
  fig = figure_cls(figsize=(7.0, 5.0), layout="constrained")
  ax = fig.add_subplot()
  ax.plot(lrs, raw, color=_COLORS["ok"], alpha=0.35, linewidth=1.0, label="loss")
  ax.plot(lrs, smooth, color=_COLORS["ok"], linewidth=2.0, label="smoothed loss")
  if int(result.suggested_index) >= 0:
    lr = float(result.suggested_lr)
    ax.axvline(lr, color=_COLORS["accent"], linestyle="--", label=f"suggested lr {lr:.2e}")
    ax.plot([lr], [smooth[int(result.suggested_index)]], "o", color=_COLORS["accent"], markersize=8)
  m = int(result.min_loss_index)
  ax.plot([lrs[m]], [smooth[m]], "v", color="black", markersize=8,
          label=f"min smoothed loss at lr {lrs[m]:.2e}")
  end = len(lrs)
  if bool(result.diverged):
    end = int(result.diverged_at)
    ax.axvline(lrs[end], color=_COLORS["exploding"], linestyle=":", label=f"diverged at lr {lrs[end]:.2e}")
  shown = np.concatenate([raw[:end], smooth[:end + 1]])
  finite, top = shown[np.isfinite(shown)], smooth[:end + 1][np.isfinite(smooth[:end + 1])]
  if finite.size and top.size:
    lo, hi = float(finite.min()), float(top.max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1.0)
    ax.set_ylim(lo - pad, hi + 2 * pad)
  ax.set_xscale("log")
  ax.set_xlabel("learning rate (log scale)")
  ax.set_ylabel("loss")
  ax.grid(True, alpha=0.3)
  ax.legend(loc="upper left", fontsize=9)
  ax.set_title(title or "Learning-rate range test")
  return _save(fig, path)


def _figure_class(fn: str) -> Any:
  try:
    from matplotlib.figure import Figure
  except ImportError as err:
    raise ImportError(
        f"{fn}: expected matplotlib to be installed, got ImportError ({err}); install the `plot`"
        f" extra: pip install 'losslab_jax[plot]'") from err
  return Figure


def _contour_levels(losses: np.ma.MaskedArray, log_scale: bool) -> Any:
  lo, hi = float(losses.min()), float(losses.max())
  if not hi > lo:
    return np.linspace(lo - 0.5, hi + 0.5, 3)
  if log_scale and lo > 0:
    return np.geomspace(lo, hi, 25)
  return 25  # matplotlib picks 25 round-numbered levels


def _save(fig: Any, path: str | os.PathLike[str]) -> pathlib.Path:
  path = pathlib.Path(path)
  fig.savefig(path, dpi=120)
  return path

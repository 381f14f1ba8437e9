"""Analysis tools: why does training misbehave? (see ``API.md`` §4).

Pure JAX functions that jit: :func:`loss_landscape` (filter-normalised 1-D/2-D slices),
:func:`gradient_flow` (per-layer gradient statistics), :func:`check_convergence`,
:func:`sharpness` (top Hessian eigenvalue) and :func:`lr_range_test`. Each returns a small
frozen dataclass registered as a pytree. ``plot_*`` write PNGs with matplotlib (the ``plot``
extra), imported only when a plot is drawn.
"""

from losslab_jax.analysis._convergence import check_convergence as check_convergence
from losslab_jax.analysis._gradient_flow import gradient_flow as gradient_flow
from losslab_jax.analysis._landscape import filter_normalize as filter_normalize
from losslab_jax.analysis._landscape import loss_landscape as loss_landscape
from losslab_jax.analysis._lr_range import lr_range_test as lr_range_test
from losslab_jax.analysis._plots import plot_gradient_flow as plot_gradient_flow
from losslab_jax.analysis._plots import plot_landscape as plot_landscape
from losslab_jax.analysis._plots import plot_lr_range as plot_lr_range
from losslab_jax.analysis._results import ConvergenceResult as ConvergenceResult
from losslab_jax.analysis._results import GradientFlowResult as GradientFlowResult
from losslab_jax.analysis._results import LandscapeResult as LandscapeResult
from losslab_jax.analysis._results import LayerGradientStats as LayerGradientStats
from losslab_jax.analysis._results import LRRangeResult as LRRangeResult
from losslab_jax.analysis._results import SharpnessResult as SharpnessResult
from losslab_jax.analysis._sharpness import sharpness as sharpness

__all__ = [
    "ConvergenceResult",
    "GradientFlowResult",
    "LRRangeResult",
    "LandscapeResult",
    "LayerGradientStats",
    "SharpnessResult",
    "check_convergence",
    "filter_normalize",
    "gradient_flow",
    "loss_landscape",
    "lr_range_test",
    "plot_gradient_flow",
    "plot_landscape",
    "plot_lr_range",
    "sharpness",
]

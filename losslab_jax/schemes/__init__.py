"""Task presets: a loss, an optimizer and a schedule chosen as practitioners do, and why.

Each function returns a :class:`Scheme` ``(loss_fn, optimizer, schedule)`` with a ``rationale``
that explains the choice and a ``spec`` that :func:`losslab_jax.config.build` turns into the same
scheme (edit a copy to derive a variant). See API.md §5.

>>> import losslab_jax as ll
>>> loss_fn, tx, schedule = ll.schemes.classification(10, class_counts=[500] * 9 + [4])
>>> # 1:125 is severe imbalance: focal loss with class weights, AdamW, warmup-cosine
"""

from losslab_jax.config._scheme import Scheme as Scheme
from losslab_jax.schemes._schemes import BALANCED_BELOW as BALANCED_BELOW
from losslab_jax.schemes._schemes import MODERATE_FROM as MODERATE_FROM
from losslab_jax.schemes._schemes import SEVERE_FROM as SEVERE_FROM
from losslab_jax.schemes._schemes import Imbalance as Imbalance
from losslab_jax.schemes._schemes import classification as classification
from losslab_jax.schemes._schemes import imbalance as imbalance
from losslab_jax.schemes._schemes import metric_learning as metric_learning
from losslab_jax.schemes._schemes import regression as regression
from losslab_jax.schemes._schemes import segmentation as segmentation

__all__ = [
    "BALANCED_BELOW",
    "MODERATE_FROM",
    "SEVERE_FROM",
    "Imbalance",
    "Scheme",
    "classification",
    "imbalance",
    "metric_learning",
    "regression",
    "segmentation",
]

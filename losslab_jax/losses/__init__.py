"""Losses with ``torch.nn.functional`` semantics; the class axis is the last axis.

Every function is pure and jit/vmap/grad-safe. See ``API.md`` §1 for the contract.
"""

from losslab_jax.losses._checked import checked as checked
from losslab_jax.losses._classification import cross_entropy as cross_entropy
from losslab_jax.losses._classification import focal_loss as focal_loss
from losslab_jax.losses._classification import nll_loss as nll_loss
from losslab_jax.losses._binary import binary_cross_entropy as binary_cross_entropy
from losslab_jax.losses._binary import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from losslab_jax.losses._binary import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from losslab_jax.losses._binary import sigmoid_focal_loss as sigmoid_focal_loss
from losslab_jax.losses._binary import soft_margin_loss as soft_margin_loss
from losslab_jax.losses._margin import hinge_embedding_loss as hinge_embedding_loss
from losslab_jax.losses._margin import margin_ranking_loss as margin_ranking_loss
from losslab_jax.losses._margin import multi_margin_loss as multi_margin_loss
from losslab_jax.losses._margin import multilabel_margin_loss as multilabel_margin_loss
from losslab_jax.losses._metric import contrastive_loss as contrastive_loss
from losslab_jax.losses._metric import cosine_embedding_loss as cosine_embedding_loss
from losslab_jax.losses._metric import triplet_margin_loss as triplet_margin_loss
from losslab_jax.losses._probabilistic import gaussian_nll_loss as gaussian_nll_loss
from losslab_jax.losses._probabilistic import kl_div as kl_div
from losslab_jax.losses._probabilistic import poisson_nll_loss as poisson_nll_loss
from losslab_jax.losses._regression import asymmetric_mse_loss as asymmetric_mse_loss
from losslab_jax.losses._regression import huber_loss as huber_loss
from losslab_jax.losses._regression import l1_loss as l1_loss
from losslab_jax.losses._regression import mse_loss as mse_loss
from losslab_jax.losses._regression import smooth_l1_loss as smooth_l1_loss
from losslab_jax.losses._segmentation import dice_loss as dice_loss
from losslab_jax.losses._weights import class_weights as class_weights
from losslab_jax.losses._ctc import ctc_loss as ctc_loss
from losslab_jax.losses._distance import triplet_margin_with_distance_loss as triplet_margin_with_distance_loss
from losslab_jax.losses._linear_ce import linear_cross_entropy as linear_cross_entropy
from losslab_jax.losses._multitask import uncertainty_weighting as uncertainty_weighting
from losslab_jax.losses._multitask import weighted_sum as weighted_sum
from losslab_jax.losses._penalties import elastic_net_penalty as elastic_net_penalty
from losslab_jax.losses._penalties import exclude_bias_and_norm as exclude_bias_and_norm
from losslab_jax.losses._penalties import l1_penalty as l1_penalty
from losslab_jax.losses._penalties import l2_penalty as l2_penalty

__all__ = [
    "class_weights",
    "cross_entropy",
    "dice_loss",
    "focal_loss",
    "nll_loss",
    "checked",
    "l1_loss",
    "mse_loss",
    "asymmetric_mse_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "gaussian_nll_loss",
    "huber_loss",
    "kl_div",
    "multilabel_soft_margin_loss",
    "poisson_nll_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "contrastive_loss",
    "cosine_embedding_loss",
    "hinge_embedding_loss",
    "margin_ranking_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "triplet_margin_loss",
    "ctc_loss",
    "triplet_margin_with_distance_loss",
    "linear_cross_entropy",
    "weighted_sum",
    "uncertainty_weighting",
    "l1_penalty",
    "l2_penalty",
    "elastic_net_penalty",
    "exclude_bias_and_norm",
]

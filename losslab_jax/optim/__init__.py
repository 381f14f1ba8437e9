"""torch.optim optimizers as optax transformations. See API.md §2."""

from losslab_jax.optim._adam import AdamState as AdamState
from losslab_jax.optim._adam import adam as adam
from losslab_jax.optim._adam import adamw as adamw
from losslab_jax.optim._adam import scale_by_adam as scale_by_adam
from losslab_jax.optim._adadelta import AdadeltaState as AdadeltaState
from losslab_jax.optim._adadelta import adadelta as adadelta
from losslab_jax.optim._adadelta import scale_by_adadelta as scale_by_adadelta
from losslab_jax.optim._adagrad import AdagradState as AdagradState
from losslab_jax.optim._adagrad import adagrad as adagrad
from losslab_jax.optim._adagrad import scale_by_adagrad as scale_by_adagrad
from losslab_jax.optim._adamax import AdamaxState as AdamaxState
from losslab_jax.optim._adamax import adamax as adamax
from losslab_jax.optim._adamax import scale_by_adamax as scale_by_adamax
from losslab_jax.optim._lion import LionState as LionState
from losslab_jax.optim._lion import lion as lion
from losslab_jax.optim._lion import scale_by_lion as scale_by_lion
from losslab_jax.optim._nadam import NAdamState as NAdamState
from losslab_jax.optim._nadam import nadam as nadam
from losslab_jax.optim._nadam import scale_by_nadam as scale_by_nadam
from losslab_jax.optim._radam import RAdamState as RAdamState
from losslab_jax.optim._radam import radam as radam
from losslab_jax.optim._radam import scale_by_radam as scale_by_radam
from losslab_jax.optim._rmsprop import RMSpropState as RMSpropState
from losslab_jax.optim._rmsprop import rmsprop as rmsprop
from losslab_jax.optim._rmsprop import scale_by_rmsprop as scale_by_rmsprop
from losslab_jax.optim._sgd import SGDState as SGDState
from losslab_jax.optim._sgd import scale_by_sgd as scale_by_sgd
from losslab_jax.optim._sgd import sgd as sgd

from losslab_jax.optim._asgd import ASGDState as ASGDState
from losslab_jax.optim._asgd import asgd as asgd
from losslab_jax.optim._asgd import scale_by_asgd as scale_by_asgd
from losslab_jax.optim._clipping import ClipGradNormState as ClipGradNormState
from losslab_jax.optim._clipping import clip_grad_norm as clip_grad_norm
from losslab_jax.optim._clipping import clip_grad_value as clip_grad_value
from losslab_jax.optim._introspect import get_step as get_step
from losslab_jax.optim._lbfgs import LBFGSState as LBFGSState
from losslab_jax.optim._lbfgs import lbfgs as lbfgs
from losslab_jax.optim._param_groups import param_groups as param_groups
from losslab_jax.optim._plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from losslab_jax.optim._plateau import reduce_lr_on_plateau as reduce_lr_on_plateau
from losslab_jax.optim._rprop import RpropState as RpropState
from losslab_jax.optim._rprop import rprop as rprop
from losslab_jax.optim._rprop import scale_by_rprop as scale_by_rprop

__all__: list[str] = []
__all__ += ["AdamState", "adam", "adamw", "scale_by_adam",
            "AdadeltaState", "adadelta", "scale_by_adadelta", "AdagradState", "adagrad", "scale_by_adagrad",
            "AdamaxState", "adamax", "scale_by_adamax", "LionState", "lion", "scale_by_lion",
            "NAdamState", "nadam", "scale_by_nadam", "RAdamState", "radam", "scale_by_radam",
            "RMSpropState", "rmsprop", "scale_by_rmsprop", "SGDState", "scale_by_sgd", "sgd"]
__all__ += ["ASGDState", "asgd", "scale_by_asgd", "ClipGradNormState", "clip_grad_norm", "clip_grad_value",
            "LBFGSState", "lbfgs", "param_groups", "RpropState", "rprop", "scale_by_rprop"]
__all__ += ["ReduceLROnPlateauState", "reduce_lr_on_plateau"]
__all__ += ["get_step"]
from losslab_jax.optim._common import ScaleByLrState as ScaleByLrState  # noqa: E402 - torch-twin registry
from losslab_jax.optim._registry import TorchTwin as TorchTwin  # noqa: E402
from losslab_jax.optim._registry import register_torch_twin as register_torch_twin  # noqa: E402
from losslab_jax.optim._registry import torch_twins as torch_twins  # noqa: E402
__all__ += ["ScaleByLrState", "TorchTwin", "register_torch_twin", "torch_twins"]
from losslab_jax.optim._adafactor import AdafactorState as AdafactorState  # noqa: E402
from losslab_jax.optim._adafactor import adafactor as adafactor  # noqa: E402
from losslab_jax.optim._adafactor import scale_by_adafactor as scale_by_adafactor  # noqa: E402
from losslab_jax.optim._muon import MuonState as MuonState  # noqa: E402
from losslab_jax.optim._muon import muon as muon  # noqa: E402
from losslab_jax.optim._muon import scale_by_muon as scale_by_muon  # noqa: E402
__all__ += ["AdafactorState", "adafactor", "scale_by_adafactor", "MuonState", "muon", "scale_by_muon"]
from losslab_jax.optim._norms import clip_grads_with_norm as clip_grads_with_norm  # noqa: E402
from losslab_jax.optim._norms import get_total_norm as get_total_norm  # noqa: E402
__all__ += ["clip_grads_with_norm", "get_total_norm"]
from losslab_jax.optim._grad_scaler import GradScalerState as GradScalerState  # noqa: E402
from losslab_jax.optim._grad_scaler import grad_scaler as grad_scaler  # noqa: E402
from losslab_jax.optim._grad_scaler import loss_scale as loss_scale  # noqa: E402
__all__ += ["GradScalerState", "grad_scaler", "loss_scale"]
from losslab_jax.optim._averaging import AveragedParams as AveragedParams  # noqa: E402
from losslab_jax.optim._averaging import AveragedParamsState as AveragedParamsState  # noqa: E402
from losslab_jax.optim._averaging import averaged_params as averaged_params  # noqa: E402
from losslab_jax.optim._averaging import ema_multi_avg_fn as ema_multi_avg_fn  # noqa: E402
from losslab_jax.optim._averaging import swa_multi_avg_fn as swa_multi_avg_fn  # noqa: E402
from losslab_jax.optim._averaging import update_bn as update_bn  # noqa: E402
__all__ += ["AveragedParams", "AveragedParamsState", "averaged_params", "ema_multi_avg_fn", "swa_multi_avg_fn",
            "update_bn"]

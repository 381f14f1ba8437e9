"""losslab_jax: PyTorch's training components (losses, optimizers, LR schedules) in pure JAX.

Import convention::

    import losslab_jax as ll
    ll.losses.cross_entropy(logits, labels)
    tx = ll.optim.adamw(lr=ll.schedules.one_cycle_lr(1e-3, total_steps=1000))
"""

from losslab_jax import activations as activations
from losslab_jax import analysis as analysis
from losslab_jax import checkpoint as checkpoint
from losslab_jax import config as config
from losslab_jax import interop as interop
from losslab_jax import losses as losses
from losslab_jax import monitor as monitor
from losslab_jax import optim as optim
from losslab_jax import schedules as schedules
from losslab_jax import schemes as schemes

__version__ = "0.1.0"

__all__ = ["activations", "analysis", "checkpoint", "config", "interop", "losses", "monitor", "optim", "schedules", "schemes", "__version__"]

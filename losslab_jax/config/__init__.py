"""Build a training recipe (loss, optimizer, schedule, clipping, param groups) from YAML or a dict.

``config.build(path_or_mapping)`` returns a :class:`Scheme`, the same object the presets of
:mod:`losslab_jax.schemes` return; ``scheme.spec`` of a preset is a config that builds it again.
See :func:`build` for the layout, and ``config.examples()`` for one shipped YAML file per scheme.
YAML needs PyYAML (``pip install losslab_jax[config]``); a dict needs nothing. See API.md §5.
"""

from losslab_jax.config._build import LOSSES as LOSSES
from losslab_jax.config._build import OPTIMIZERS as OPTIMIZERS
from losslab_jax.config._build import SCHEDULES as SCHEDULES
from losslab_jax.config._build import ConfigError as ConfigError
from losslab_jax.config._build import build as build
from losslab_jax.config._build import examples as examples
from losslab_jax.config._build import load as load
from losslab_jax.config._build import param_paths as param_paths
from losslab_jax.config._scheme import Scheme as Scheme

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "ConfigError",
    "Scheme",
    "build",
    "examples",
    "load",
    "param_paths",
]

"""ganctl: a command-line GAN toolkit.

The public API for plugin authors is re-exported here. Importing ``ganctl`` must stay
cheap (no torch), because the CLI imports it before it knows which command runs.
"""

__version__ = "0.1.0"

from ganctl.errors import GanctlError
from ganctl.recipe import Recipe
from ganctl.registry import (
    ARCHITECTURES,
    DATASETS,
    LOSSES,
    REGULARIZERS,
    register_architecture,
    register_dataset,
    register_loss,
    register_regularizer,
)

__all__ = [
    "__version__",
    "ARCHITECTURES",
    "DATASETS",
    "LOSSES",
    "REGULARIZERS",
    "GanctlError",
    "Recipe",
    "register_architecture",
    "register_dataset",
    "register_loss",
    "register_regularizer",
]

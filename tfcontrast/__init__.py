"""tfcontrast: similarity learning for TensorFlow 2.16+ and Keras 3.

Losses (contrastive, triplet, NT-Xent, SupCon, BYOL/SimSiam), models with
custom train steps (siamese, embedding, SimCLR, BYOL, DirectPred, SimSiam),
tf.distribute with global-batch semantics, and similarity search.

    import tfcontrast as tfc
    loss = tfc.losses.TripletLoss(margin=0.2, mining="semi-hard")

``import tfcontrast`` imports every submodule (and so TensorFlow), which
registers the package's Keras classes: ``keras.models.load_model`` then finds
``EmbeddingModel``, ``SimCLR``, the losses... without ``custom_objects``. The
``tfcontrast`` command is the one exception: started as ``tfcontrast`` or
``python -m tfcontrast[.cli]``, the package imports its submodules on first
use (``tfc.losses`` still works, through the module ``__getattr__``), so that
``tfcontrast --help``, ``--version`` and ``tfcontrast configs`` answer without
starting TensorFlow.
"""

import importlib
import os
import sys

from tfcontrast.version import __version__

_SUBMODULES = (
    "augment", "callbacks", "contract", "data", "distances", "distribute", "export", "fields", "index",
    "losses", "models", "plots", "probe", "registry",
)  # fmt: skip
_COMMAND_MODULES = ("tfcontrast", "tfcontrast.cli")
_PYTHON_OPTIONS_WITH_VALUE = ("-X", "-W")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    """``tfc.<submodule>`` imported on first use (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))


def _started_as_command() -> bool:
    """Whether this process is the ``tfcontrast`` command (console script, or ``python -m tfcontrast[.cli]``)."""
    if os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0] == "tfcontrast":
        return True
    args = list(getattr(sys, "orig_argv", ()))[1:]
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in _PYTHON_OPTIONS_WITH_VALUE:
            skip = True
        elif arg == "-m":
            return i + 1 < len(args) and args[i + 1] in _COMMAND_MODULES
        elif arg.startswith("-m"):
            return arg[2:] in _COMMAND_MODULES
        elif arg == "-c" or not arg.startswith("-"):
            return False
    return False


if not _started_as_command():
    for _name in _SUBMODULES:
        importlib.import_module(f"{__name__}.{_name}")
    del _name

"""The pipelines behind the ``tfcontrast`` command: train, evaluate, lookup, index.

* :func:`train` (:mod:`.training`): config -> trained, checkpointed, evaluated,
  exported run in a workdir; resumes an interrupted run;
* :func:`evaluate` (:mod:`.evaluation`): re-scores a trained run from its saved
  embedding network and rewrites the index, export, plots and ``summary.json``;
* :func:`lookup` (:mod:`.queries`): nearest entries of a query file, checked
  against the run's input contract;
* :func:`index_images` (:mod:`.indexes`): embeds a folder of images into a
  faiss folder or a Milvus collection (``tfcontrast index``);
* :func:`finetune` (:mod:`.finetuning`): the label-efficiency curve of a
  trained run (supervised from scratch, linear probe, fine-tuned, distilled).

The workdir layout is in :mod:`.workdir`; ``summary.json`` in :mod:`.report`.

Importing this package imports no TensorFlow: the names below load their
module on first use, so the command checks its arguments (and the layout of a
workdir, :mod:`.workdir`) before TensorFlow starts.
"""

import importlib

_EXPORTS = {
    "RunError": "training",
    "train": "training",
    "evaluate": "evaluation",
    "index_images": "indexes",
    "format_neighbours": "queries",
    "lookup": "queries",
    "finetune": "finetuning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

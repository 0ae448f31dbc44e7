"""The pipelines behind the ``tfcontrast`` command: train, evaluate, lookup.

* :func:`train` (:mod:`.training`): config -> trained, checkpointed, evaluated,
  exported run in a workdir; resumes an interrupted run;
* :func:`evaluate` (:mod:`.evaluation`): re-scores a trained run from its saved
  embedding network and rewrites the index, export, plots and ``summary.json``;
* :func:`lookup` (:mod:`.queries`): nearest training examples of a query file;
* :func:`finetune` (:mod:`.finetuning`): the label-efficiency curve of a
  trained run (supervised from scratch, linear probe, fine-tuned, distilled).

The workdir layout is in :mod:`.workdir`; ``summary.json`` in :mod:`.report`.
"""

from tfcontrast.jobs.evaluation import evaluate
from tfcontrast.jobs.finetuning import finetune
from tfcontrast.jobs.queries import format_neighbours, lookup
from tfcontrast.jobs.training import RunError, train

__all__ = ["RunError", "evaluate", "finetune", "format_neighbours", "lookup", "train"]

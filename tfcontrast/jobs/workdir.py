"""The layout of a run's ``--workdir`` and atomic file writes.

::

    <workdir>/
      config.json          the resolved, validated config (written when training starts)
      input_contract.json  shape, dtype, value range and scale of the training inputs
                           (tfcontrast.contract.InputContract; `lookup` checks queries against it)
      checkpoint/          state.json (epoch, step, history, wall time) + the weights it names
      checkpoint_pairs/    text runs with a pair stage (pairs.steps > 0): the same, for that stage
      logs/                TensorBoard event files (``tensorboard --logdir <workdir>/logs``)
      model/embedder.keras the trained embedding network (images -> embeddings)
      index/               the saved index of the training embeddings, with labels (ids = training-split
                           rows): a faiss tfcontrast.index.Index, or how to reconnect to its Milvus
                           collection (index.backend = milvus; never the token)
      milvus.db            the Milvus Lite data of that collection, when index.backend = milvus and
                           index.uri = '' (the default)
      export/              SavedModel with the ``embed`` and ``lookup`` signatures
      plots/               training_curves.png, embedding_map.png, neighbors.png, spectrum.png
                           (+ label_efficiency.png, written by ``tfcontrast finetune``)
      summary.json         method, config, training and evaluation numbers
      semi_supervised.json ``tfcontrast finetune``: accuracy against labels per class (jobs/finetuning.py)

Every file is written to a temporary name in its final folder and renamed
into place (``os.replace``), so an interrupted run never leaves half a file;
folders (index, export) are swapped in whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Workdir:
    """Paths inside a run's folder (nothing is created by constructing it)."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", os.path.abspath(os.path.expanduser(os.fspath(self.root))))

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def config(self) -> str:
        return self.path("config.json")

    @property
    def contract(self) -> str:
        return self.path("input_contract.json")

    @property
    def milvus_lite(self) -> str:
        return self.path("milvus.db")

    @property
    def checkpoint(self) -> str:
        return self.path("checkpoint")

    @property
    def state(self) -> str:
        return self.path("checkpoint", "state.json")

    @property
    def logs(self) -> str:
        return self.path("logs")

    @property
    def embedder(self) -> str:
        return self.path("model", "embedder.keras")

    @property
    def index(self) -> str:
        return self.path("index")

    @property
    def export(self) -> str:
        return self.path("export")

    @property
    def plots(self) -> str:
        return self.path("plots")

    @property
    def summary(self) -> str:
        return self.path("summary.json")

    @property
    def semi_supervised(self) -> str:
        return self.path("semi_supervised.json")


def require_run(wd: Workdir) -> None:
    """Raises ``ValueError`` unless ``wd`` holds a run (its ``config.json``); reads nothing else."""
    if not os.path.exists(wd.config):
        raise ValueError(f"{wd.root} holds no run (no config.json): train one with `tfcontrast train`.")


def atomic_write(path: str, write: Callable[[str], Any], suffix: str = "") -> str:
    """Calls ``write(tmp)`` on a temporary path beside ``path``, then renames it to ``path``.

    ``suffix`` is the temporary file's ending (Keras checks ``.keras`` and
    ``.weights.h5``). On an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.tmp-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json(path: str, obj: Any) -> str:
    """``obj`` as indented JSON (NaN refused), written atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_embedder(path: str):
    """The saved embedding network at ``path`` (``model/embedder.keras``), with a clear error when it is unreadable.

    Raises:
        ValueError: the file is missing, or not a readable Keras file (truncated or modified).
    """
    import keras

    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: run the same `tfcontrast train` command to write it from the last checkpoint.")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - zipfile/h5py/keras raise many types for a damaged file
        raise ValueError(
            f"{path} exists but cannot be read as a Keras model (truncated or modified?): "
            f"{type(err).__name__}: {err}. Delete it and run the same `tfcontrast train` command to write it "
            "again from the last checkpoint."
        ) from None


"""``tfcontrast finetune``: the label-efficiency curve of a finished self-supervised run.

For every labelled budget ``k`` (labels per class) and every subset seed
``s``, :func:`finetune` draws the stratified labelled subset
:func:`tfcontrast.data.labelled_subset` ``(x_train, y_train, per_class=k, seed=s)``
(nested across budgets for one seed; the rest of the training split is the
unlabelled pool, the test split is never touched) and measures the accuracy on
the held-out test split of four classifiers:

* ``supervised``: the same architecture (encoder + the kept head layers +
  a linear classifier) at random initial weights, trained from scratch on the
  ``k`` labels per class with the same steps, learning rate and augmentation
  (its BatchNorm learns from the batches: frozen random statistics would be no
  normalisation at all);
* ``linear_probe``: a linear classifier on the frozen pretrained
  representation (:class:`~tfcontrast.models.FineTuner` with
  ``freeze_encoder=True``), trained with the same recipe;
* ``fine_tuned``: SimCLRv2 fine-tuning (:class:`~tfcontrast.models.FineTuner`):
  the pretrained encoder and the first ``from_layer`` projection-head layers
  train too, at ``encoder_lr_multiplier`` times the classifier's learning rate;
* ``distilled`` (``distill=True``): SimCLRv2 self-distillation
  (:class:`~tfcontrast.models.Distiller`): a new copy of the pretrained
  network learns the fine-tuned teacher's soft labels (temperature
  ``temperature``) on the whole training split, unlabelled images included,
  plus ``alpha`` times the cross-entropy on the labelled ones.

Chen, Kornblith, Swersky, Norouzi and Hinton, "Big Self-Supervised Models are
Strong Semi-Supervised Learners", NeurIPS 2020.

After each fit, every BatchNorm layer that learned from batches gets the exact
statistics of the images the classifier trained on (:func:`recalibrate_batchnorm`):
moving averages lag a network trained fast on a few images, and without this
the supervised baseline scores at chance in inference mode.

Everything is a pure function of the run's checkpoint, the :class:`Recipe` and
the seeds (each classifier's initial weights, batch order and augmentation are
seeded by ``s``). The results go to ``<workdir>/semi_supervised.json`` and
``<workdir>/plots/label_efficiency.png`` (both written atomically; they replace
only their own previous versions):

::

    format           "tfcontrast.semi_supervised"
    method, workdir  the run's method and folder
    data             n_train, n_test, num_classes
    labels_per_class the budgets k;  seeds: the subset seeds;  distill: bool
    recipe           every Recipe setting used
    budgets          one entry per k: labels_per_class, labels (k x classes),
                     label_fraction (of the training split),
                     runs: [{seed, indices (rows of the training split), accuracy: {classifier: test accuracy},
                             with distill: agreement, chance_agreement (see :func:`measure`)}],
                     accuracy: {classifier: {mean, std (sample std over the seeds; 0 for one seed), min, max}},
                     with distill: agreement: {mean, std, min, max}
    classifiers      the classifiers measured, in order
    wall_time_s      seconds spent
    artefacts        {"plot": "plots/label_efficiency.png"}
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfcontrast import augment as augment_lib, data, fields, plots, probe
from tfcontrast.jobs import checkpoint, components, inputs, workdir as workdir_lib
from tfcontrast.jobs.evaluation import load_run
from tfcontrast.models import Distiller, FineTuner

FORMAT = "tfcontrast.semi_supervised"
PLOT_FILE = "label_efficiency.png"
CLASSIFIERS = ("supervised", "linear_probe", "fine_tuned", "distilled")
LABELS = {
    "supervised": "supervised from scratch",
    "linear_probe": "linear probe (frozen)",
    "fine_tuned": "fine-tuned",
    "distilled": "self-distilled",
}
BATCHNORM_MODES = ("frozen", "batch")


def _option(field: fields.Field):
    """A :class:`Recipe` setting: its default, one-line doc and check come from ``field``."""
    return dataclasses.field(default=field.default, metadata={"field": field})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The settings of fine-tuning and distillation (the options of ``tfcontrast finetune``).

    Every setting is checked on construction (``ValueError`` naming it).
    ``Recipe.docs()`` gives the one-line doc of each.
    """

    from_layer: int = _option(fields.Int(1, "projection-head layers kept under the classifier (0: the encoder's features)", min=0))
    steps: int = _option(fields.Int(300, "optimizer steps of fine-tuning (also of the probe and the supervised network)", min=1))
    batch_size: int = _option(fields.Int(64, "labelled images per step (at most the subset, which is reshuffled every pass)", min=1))
    lr: float = _option(fields.Float(1e-3, "Adam learning rate of the classifier", within="(0, inf)"))
    encoder_lr_multiplier: float = _option(
        fields.Float(0.1, "the pretrained layers learn at this times `lr` (fine-tuning)", within="(0, inf)")
    )
    batchnorm: str = _option(
        fields.Choice(BATCHNORM_MODES, "batch", "pretrained BatchNorm: frozen (inference mode, pretrained statistics) | batch (batch statistics)")
    )
    max_shift: int = _option(fields.Int(2, "labelled images are shifted up to this many pixels per axis (images only)", min=0))
    max_degrees: float = _option(fields.Float(10.0, "... and rotated up to this many degrees", within="[0, inf)"))
    distill_steps: int = _option(fields.Int(500, "optimizer steps of distillation", min=1))
    distill_batch_size: int = _option(fields.Int(128, "images per distillation step (labelled or not)", min=1))
    distill_lr: float = _option(fields.Float(1e-3, "Adam learning rate of the student", within="(0, inf)"))
    temperature: float = _option(fields.Float(1.0, "temperature of the teacher's soft labels", within="(0, inf)"))
    alpha: float = _option(fields.Float(0.0, "weight of the supervised loss on the labelled images during distillation", within="[0, inf)"))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, message = fields.convert(f.metadata["field"], getattr(self, f.name))
            if message:
                raise ValueError(f"`{f.name}` {message}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def docs(cls) -> dict[str, str]:
        return {f.name: f.metadata["field"].doc for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)



def finetune(
    workdir: str,
    labels_per_class: Sequence[int] = (1, 2, 5, 10),
    seeds: Sequence[int] = (0, 1, 2),
    distill: bool = False,
    recipe: Recipe | None = None,
    out: Callable[[str], None] = print,
) -> dict:
    """Measures the label-efficiency curve of the finished run in ``workdir`` (module docstring); returns the results written.

    Args:
        workdir: a run folder trained by ``tfcontrast train`` (any method whose
            model has an ``encoder``; ``from_layer > 0`` also needs a
            ``projector`` of Dense blocks).
        labels_per_class: the budgets k, distinct ints >= 1.
        seeds: the subset seeds, distinct ints >= 0.
        distill: also distil every fine-tuned network.
        recipe: the settings (default :class:`Recipe`).
        out: where progress lines go.

    Raises:
        ValueError: no finished run, bad budgets or seeds, a budget larger than
            the smallest class of the training split, or a model that
            :class:`~tfcontrast.models.FineTuner` cannot read.
    """
    started = time.perf_counter()
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise TypeError(f"`recipe` must be a tfcontrast.jobs.finetuning.Recipe, got {type(recipe).__name__}.")
    budgets = distinct_ints(labels_per_class, "labels_per_class", 1)
    seeds = distinct_ints(seeds, "seeds", 0)
    wd = workdir_lib.Workdir(workdir)
    config, _ = load_run(wd)
    run = inputs.load_split(config)
    for k in budgets:  # a budget too large for a class fails before any training
        data.labelled_subset(run.x_train, run.y_train, per_class=k, seed=seeds[0])
    pretrained = load_pretrained(config, wd, run)
    FineTuner(pretrained, run.num_classes, from_layer=recipe.from_layer)  # a bad from_layer fails before any training
    classifiers = CLASSIFIERS if distill else CLASSIFIERS[:-1]
    out(
        f"fine-tuning {config.method} from {wd.root}: {len(budgets)} budget(s) x {len(seeds)} seed(s), "
        f"classifiers: {', '.join(classifiers)}"
    )

    entries = []
    for k in budgets:
        runs = []
        for seed in seeds:
            _, _, indices = data.labelled_subset(run.x_train, run.y_train, per_class=k, seed=seed)
            numbers = measure(Subset(pretrained, config, run, indices, seed, recipe), classifiers)
            runs.append({"seed": seed, "indices": indices.tolist(), **numbers})
            out(
                f"  {k} label(s) per class, seed {seed}: "
                + ", ".join(f"{n} {a:.4f}" for n, a in numbers["accuracy"].items())
                + (f" (student-teacher agreement {numbers['agreement']:.4f})" if distill else "")
            )
        entries.append(
            {
                "labels_per_class": k,
                "labels": k * run.num_classes,
                "label_fraction": round(k * run.num_classes / len(run.y_train), 6),
                "runs": runs,
                "accuracy": {name: spread([r["accuracy"][name] for r in runs]) for name in classifiers},
                **({"agreement": spread([r["agreement"] for r in runs])} if distill else {}),
            }
        )
    plot = plots.label_efficiency(
        {name: [(e["labels_per_class"], e["accuracy"][name]) for e in entries] for name in classifiers},
        os.path.join(wd.plots, PLOT_FILE),
        labels=LABELS,
        title=f"{config.method} on {config.data.name}: test accuracy vs labels ({len(seeds)} subset seed(s))",
    )
    results = {
        "format": FORMAT,
        "method": config.method,
        "workdir": wd.root,
        "data": {"n_train": int(len(run.x_train)), "n_test": int(len(run.x_test)), "num_classes": run.num_classes},
        "labels_per_class": list(budgets),
        "seeds": list(seeds),
        "distill": bool(distill),
        "recipe": recipe.to_dict(),
        "classifiers": list(classifiers),
        "budgets": entries,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "artefacts": {"plot": os.path.relpath(plot, wd.root)},
    }
    path = workdir_lib.write_json(wd.semi_supervised, results)
    out(headline(results))
    out(f"wrote {path} and {plot}")
    return results


def load_pretrained(config, wd: workdir_lib.Workdir, run: inputs.RunData) -> keras.Model:
    """The run's trained model (encoder, projector, ...), rebuilt from its config and its last verified checkpoint.

    Raises:
        ValueError: the checkpoint cannot be restored, or the model has no ``encoder``.
    """
    model = components.initial_model(config, run.input_shape, run.num_classes)
    checkpoint.restore(model, wd.checkpoint)
    if not isinstance(getattr(model, "encoder", None), keras.Model):
        raise ValueError(
            f"the {config.method!r} model of {wd.root} has no `encoder` network to fine-tune."
        )
    return model


@dataclasses.dataclass(frozen=True)
class Subset:
    """What every classifier of one (budget, seed) cell trains from."""

    pretrained: keras.Model
    config: object
    run: inputs.RunData
    indices: np.ndarray
    seed: int
    recipe: Recipe

    @property
    def x(self) -> np.ndarray:
        return self.run.x_train[self.indices]

    @property
    def y(self) -> np.ndarray:
        return self.run.y_train[self.indices]

    @property
    def augment(self):
        return augmentation(self.run, self.recipe)


def train_supervised(cell: Subset, trained: dict) -> keras.Model:
    """The same architecture at random initial weights, trained from scratch (BatchNorm on batch statistics)."""
    config, run = cell.config, cell.run
    scratch = components.build_model(config, components.build_encoder(config, run.input_shape), run.input_shape, run.num_classes)
    model = FineTuner(scratch, run.num_classes, from_layer=cell.recipe.from_layer, augment=cell.augment)
    fit_classifier(model, cell)
    return model


def train_linear_probe(cell: Subset, trained: dict) -> keras.Model:
    """A linear classifier on the frozen pretrained representation."""
    model = FineTuner(
        cell.pretrained, cell.run.num_classes, from_layer=cell.recipe.from_layer, freeze_encoder=True, augment=cell.augment
    )
    fit_classifier(model, cell)
    return model


def train_fine_tuned(cell: Subset, trained: dict) -> keras.Model:
    """SimCLRv2 fine-tuning of a copy of the pretrained network."""
    model = pretrained_classifier(cell)
    fit_classifier(model, cell)
    return model


def train_distilled(cell: Subset, trained: dict) -> keras.Model:
    """A new copy of the pretrained network distilled from the fine-tuned one on the whole training split."""
    r, run = cell.recipe, cell.run
    student = pretrained_classifier(cell)
    distiller = Distiller(trained["fine_tuned"], student, temperature=r.temperature, alpha=r.alpha, augment=cell.augment)
    labels = np.full(len(run.y_train), -1, np.int32)
    labels[cell.indices] = cell.y
    distiller.compile(optimizer=keras.optimizers.Adam(r.distill_lr), jit_compile=cell.config.train.jit_compile)
    _fit_steps(distiller, run.x_train, labels, r.distill_batch_size, r.distill_steps, cell.seed)
    recalibrate_batchnorm(student, run.x_train)
    return student


TRAINERS = {
    "supervised": train_supervised,
    "linear_probe": train_linear_probe,
    "fine_tuned": train_fine_tuned,
    "distilled": train_distilled,  # reads the fine-tuned teacher: after it
}


def measure(cell: Subset, classifiers: Sequence[str] = CLASSIFIERS) -> dict:
    """The test-split numbers of each classifier trained on ``cell`` (each seeded by ``cell.seed``).

    Returns ``{"accuracy": {classifier: test accuracy}}``, plus, when
    ``distilled`` is among ``classifiers``, ``"agreement"``: the share of test
    images on which the student predicts the class its teacher predicts, and
    ``"chance_agreement"``: ``sum_c p_T(c) p_S(c)`` over the two predicted
    class frequencies, what two independent predictors with those marginals
    would agree on.
    """
    trained, predicted = {}, {}
    for name in classifiers:
        keras.utils.set_random_seed(cell.seed)
        trained[name] = TRAINERS[name](cell, trained)
        predicted[name] = predict(trained[name], cell.run.x_test)
    numbers = {"accuracy": {name: _share(predicted[name] == cell.run.y_test) for name in classifiers}}
    if "distilled" in predicted:
        teacher, student = predicted["fine_tuned"], predicted["distilled"]
        numbers["agreement"] = _share(teacher == student)
        k = cell.run.num_classes
        chance = np.dot(np.bincount(teacher, minlength=k) / len(teacher), np.bincount(student, minlength=k) / len(student))
        numbers["chance_agreement"] = round(float(chance), 6)
    return numbers


def pretrained_classifier(cell: Subset) -> FineTuner:
    """A :class:`FineTuner` on a copy of the pretrained network, its BatchNorm frozen when ``recipe.batchnorm == "frozen"``."""
    r = cell.recipe
    model = FineTuner(
        cell.pretrained, cell.run.num_classes, from_layer=r.from_layer, encoder_lr_multiplier=r.encoder_lr_multiplier,
        augment=cell.augment,
    )
    if r.batchnorm == "frozen":
        for network in model.pretrained_networks:
            for layer in network._flatten_layers(include_self=False):
                if isinstance(layer, keras.layers.BatchNormalization):  # includes tfcontrast's fused one
                    layer.trainable = False  # inference mode: pretrained statistics, gamma and beta kept
    return model


def augmentation(run: inputs.RunData, recipe: Recipe):
    """Random shifts and rotations of the labelled images (``None`` for vectors or when both are 0)."""
    if not run.is_images or (recipe.max_shift == 0 and recipe.max_degrees == 0):
        return None
    return lambda images: augment_lib.random_shift_rotate(images, recipe.max_shift, recipe.max_degrees)


def fit_classifier(model: FineTuner, cell: Subset) -> None:
    model.compile(optimizer=keras.optimizers.Adam(cell.recipe.lr), jit_compile=cell.config.train.jit_compile)
    _fit_steps(model, cell.x, cell.y, cell.recipe.batch_size, cell.recipe.steps, cell.seed)
    recalibrate_batchnorm(model, cell.x)


def recalibrate_batchnorm(model: keras.Model, x: np.ndarray) -> None:
    """Sets the moving statistics of every BatchNorm of ``model`` that learned from batches to the statistics of ``x``.

    Moving averages (momentum 0.99) lag a network whose activations change
    fast, as one trained from scratch on a few images does: its inference-mode
    accuracy can fall to chance while the same weights score well on batch
    statistics. One forward pass in training mode over all of ``x`` (one batch,
    un-augmented) with momentum 0 gives each layer the exact mean and variance
    of its inputs over ``x``, in order ("precise BatchNorm": Wu and Johnson,
    "Rethinking 'Batch' in BatchNorm", arXiv 2105.07576, 2021). BatchNorm
    layers that are not trainable (frozen: inference mode) keep their statistics.
    """
    layers = [
        layer for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(tf.convert_to_tensor(x), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def _fit_steps(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, seed: int) -> None:
    """``steps`` optimizer steps on batches of ``min(batch_size, len(x))`` rows, reshuffled every pass, seeded."""
    batch = min(batch_size, len(x))
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch, drop_remainder=True)
        .prefetch(2)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")  # the dataset is shuffled
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The arg-max class of each row of ``x`` (inference mode)."""
    return np.argmax(probe.embed(model, x, batch_size=batch_size), axis=-1)


def _share(hits: np.ndarray) -> float:
    return round(float(np.mean(hits)), 6)


def spread(values: Sequence[float]) -> dict:
    """``mean``, ``std`` (sample std, ddof 1; 0 for one value), ``min`` and ``max`` of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return {k: round(float(x), 6) for k, x in (("mean", v.mean()), ("std", std), ("min", v.min()), ("max", v.max()))}


def headline(results: dict) -> str:
    """One line per budget: mean +- std of each classifier."""
    lines = [f"{results['method']}: test accuracy (mean +- std over {len(results['seeds'])} seed(s))"]
    for entry in results["budgets"]:
        cells = ", ".join(
            f"{name} {a['mean']:.4f} +- {a['std']:.4f}" for name, a in entry["accuracy"].items()
        )
        lines.append(f"  {entry['labels_per_class']:>3} per class ({entry['labels']} labels): {cells}")
    return "\n".join(lines)


def distinct_ints(values, name: str, low: int) -> tuple[int, ...]:
    """``values`` as a tuple of distinct ints ``>= low`` (at least one); else ``ValueError`` naming ``name``."""
    values = tuple(values) if isinstance(values, (list, tuple)) else values
    if (
        not isinstance(values, tuple)
        or not values
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low for v in values)
        or len(set(values)) != len(values)
    ):
        raise ValueError(f"`{name}` must be distinct ints >= {low}, at least one, got {values!r}.")
    return tuple(int(v) for v in values)

"""What can be trained by name: methods, batch kinds and losses, each registered once in its own module.

A **method** is a model class plus what the run needs to know about it; a
**batch kind** is how the training stream of a method is built from the data;
a **loss** is a loss class a method can be compiled with, chosen by name in the
config's ``loss`` section. Each registers itself in the module that defines it::

    # tfcontrast/models/ssl/simclr.py, after the class
    register_method(
        "simclr", SimCLR, batch="two_views",
        summary="SimCLR (Chen et al., ICML 2020): NT-Xent between two views of every image",
        fields={
            "projection_dim": Int(doc="projector output width", min=1),
            "hidden_dim": Int(doc="projector hidden width; None = the encoder's width", min=1, optional=True),
            "temperature": Float(doc="NT-Xent temperature", within="(0, inf)"),
        },
        example={"projection_dim": 16, "hidden_dim": 32},
    )

    # tfcontrast/losses/ntxent.py, after the class
    register_loss("supcon", SupConLoss, inputs="labels",
                  fields={"temperature": Float(doc="softmax temperature", within="(0, inf)")})

A batch kind names the **data kind** it trains on (``images`` by default,
``text`` for SimCSE and DeCLUTR): :func:`register_data_kind` gives the config
sections that differ from ``configs/base.py`` and the job module that trains,
evaluates and queries its runs (:func:`data_kind_of`).

Everything else reads these registries: :mod:`tfcontrast.config` builds the
schema of a run config (``model`` = the method's fields, ``train`` += its batch
kind's fields, ``loss`` = the chosen loss's fields) and the defaults of
:func:`tfcontrast.config.base`; :mod:`tfcontrast.jobs` builds the model, the
training stream and the embedding network; the tests run the shared contract
tests on every registered method. No list of names is kept anywhere else.

Registrations are found without an import list: the first lookup imports every
module under :data:`SEARCH_PACKAGES` (a new file there is picked up), then the
``tfcontrast.plugins`` entry points of installed distributions (a package of
your own: ``[project.entry-points."tfcontrast.plugins"] mine = "my_pkg.methods"``).
A module imported by you (or by a config file) registers as it is imported.

Nothing here imports TensorFlow; the registered modules do, when first looked up.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import sys
from dataclasses import dataclass, field as dataclass_field
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from tfcontrast.fields import MISSING, Field

SEARCH_PACKAGES = ("tfcontrast.models", "tfcontrast.losses", "tfcontrast.jobs", "tfcontrast.text")
"""Packages whose modules are imported to find registrations (missing ones are skipped)."""

PLUGIN_GROUP = "tfcontrast.plugins"

LOSS_INPUTS = {
    "labels": "(labels [B], embeddings [B, d])",
    "pairs": "(pair labels [B], 1 = similar, pair distances [B])",
}
"""What a registered loss is called on; a method compiled with a loss names one of these."""

# ------------------------------------------------------------------ specs


@dataclass(frozen=True)
class BuildContext:
    """What a method's builder may use besides the config and the encoder.

    Attributes:
        input_shape: one example's shape (no batch axis).
        num_classes: 1 + the largest training label, when the data has labels (else ``None``).
        loss: the compiled loss built from the config's ``loss`` section (``None``
            for a method that owns its loss).
        model_kwargs: extra model arguments the loss asks for (its
            :attr:`LossSpec.model_kwargs`, e.g. a head with trainable class weights).
    """

    input_shape: tuple[int, ...]
    num_classes: int | None = None
    loss: Any = None
    model_kwargs: Mapping[str, Any] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method (see :func:`register_method` for the meaning of each attribute)."""

    name: str
    model: type
    batch: str
    summary: str
    fields: Mapping[str, Field]
    build: Callable[[Any, Any, BuildContext], Any]
    embedder: Callable[[Any], Any]
    loss: str | None
    default_loss: str | None
    check: Callable[[Mapping], list] | None
    example: Mapping[str, Any]
    module: str

    def defaults(self) -> dict:
        """The ``model`` section of a fresh config."""
        return {key: f.default for key, f in self.fields.items()}


@dataclass(frozen=True)
class BatchKind:
    """A registered batch kind (see :func:`register_batch_kind`)."""

    name: str
    summary: str
    fields: Mapping[str, Field]
    stream: Callable[..., Any]
    examples_per_step: Callable[[Any], int]
    needs_views: bool
    check: Callable[[Any, Any], list] | None
    example: Mapping[str, Any]
    module: str
    data: str = "images"

    def defaults(self) -> dict:
        """The batch keys of a fresh config's ``train`` section."""
        return {key: f.default for key, f in self.fields.items()}


@dataclass(frozen=True)
class LossSpec:
    """A registered loss (see :func:`register_loss`)."""

    name: str
    loss: type
    inputs: str
    summary: str
    fields: Mapping[str, Field]
    build: Callable[[Mapping, BuildContext], Any]
    model_kwargs: Callable[[Any, BuildContext], Mapping] | None
    module: str
    head: bool = False

    def defaults(self) -> dict:
        """The ``loss`` section of a fresh config: ``name`` and every field."""
        return {"name": self.name, **{key: f.default for key, f in self.fields.items()}}


@dataclass(frozen=True)
class DataKind:
    """A registered data kind (see :func:`register_data_kind`)."""

    name: str
    summary: str
    sections: Mapping[str, Mapping[str, Field] | None]
    job: str
    check: Callable[[Mapping], list] | None
    module: str
    later_steps: Callable[[Mapping], int] | None = None

    def run_steps(self, config: Mapping) -> int:
        """Optimizer steps of the whole run: ``train.steps`` plus those of the job's later stages."""
        later = self.later_steps(config) if self.later_steps is not None else 0
        return int(config["train"]["steps"]) + int(later)

    def defaults(self) -> dict:
        """``{section: {key: default}}`` of the sections it replaces (``None``: a section it removes)."""
        return {
            section: None if fields is None else {key: f.default for key, f in fields.items()}
            for section, fields in self.sections.items()
        }

    def job_module(self):
        """The imported module of :attr:`job` (``train``, ``evaluate``, ``lookup``)."""
        return importlib.import_module(self.job)


# --------------------------------------------------------------- registries

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name. Looking an entry up first imports the registering modules (module docstring)."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, entry: T) -> T:
        name = entry.name
        old = self._entries.get(name)
        if old is not None and old.module != entry.module:
            raise ValueError(f"{self.what} {name!r} is registered already (by {old.module}); choose another name.")
        self._entries[name] = entry  # the same module again (a reload) replaces its own entry
        return entry

    def remove(self, name: str) -> None:
        """Forgets ``name`` (for tests that register something temporary)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry called ``name``.

        Raises:
            ValueError: no such entry; the message lists the known names and the closest one.
        """
        discover()
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}{did_you_mean(name, self._entries)}; known: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted."""
        discover()
        return tuple(sorted(self._entries))

    def __contains__(self, name) -> bool:
        discover()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter([self._entries[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self.names())


methods: Registry[MethodSpec] = Registry("method")
batch_kinds: Registry[BatchKind] = Registry("batch kind")
losses: Registry[LossSpec] = Registry("loss")
data_kinds: Registry[DataKind] = Registry("data kind")


def data_kind_of(method: str) -> DataKind:
    """The data kind a method trains on: its batch kind's ``data``."""
    return data_kinds.get(batch_kinds.get(methods.get(method).batch).data)


def did_you_mean(name, known) -> str:
    near = difflib.get_close_matches(str(name), list(known), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


# ----------------------------------------------------------- registration


def register_method(
    name: str,
    model: type,
    *,
    batch: str,
    summary: str,
    fields: Mapping[str, Field],
    build: Callable[[Any, Any, BuildContext], Any] | None = None,
    embedder: Callable[[Any], Any] | None = None,
    loss: str | None = None,
    default_loss: str | None = None,
    check: Callable[[Mapping], list] | None = None,
    example: Mapping[str, Any] | None = None,
) -> MethodSpec:
    """Registers a method: ``config.method = name`` trains ``model``.

    Args:
        name: the config's ``method`` value.
        model: the Keras model class.
        batch: the name of the batch kind its training stream is made of
            (:func:`register_batch_kind`; today ``two_views``, ``class_balanced``, ``pairs``).
        summary: one line: what it is, with the paper (``tfcontrast configs`` and the docs show it).
        fields: the config's ``model`` section: key -> :class:`~tfcontrast.fields.Field`. A
            field without a default takes the default of the ``model`` constructor's
            argument of the same name.
        build: ``build(config, encoder, context) -> model`` (uncompiled). Default:
            ``model(encoder, **config.model, **context.model_kwargs)``.
        embedder: ``embedder(trained_model) -> keras.Model`` mapping inputs to the
            embeddings that are indexed, evaluated and exported. Default: ``model.encoder``.
        loss: ``None`` when the model computes its own loss; else what its compiled
            loss is called on (a key of :data:`LOSS_INPUTS`): the config then has a
            ``loss`` section whose ``name`` picks a registered loss of that kind.
        default_loss: the loss of a fresh config (required with ``loss``).
        check: ``check(config_dict) -> [(key, message), ...]``: checks across keys
            (run after every key is valid).
        example: ``model`` values of a tiny, fast instance for the shared contract
            tests (``tests/models/test_registered_methods.py``).

    Returns:
        the :class:`MethodSpec` (also reachable as ``registry.methods.get(name)``).
    """
    if loss is not None and loss not in LOSS_INPUTS:
        raise ValueError(f"`loss` must be None or one of {tuple(LOSS_INPUTS)}, got {loss!r}.")
    if (loss is None) != (default_loss is None):
        raise ValueError("`loss` and `default_loss` go together: a method compiled with a loss names its default loss.")
    return methods.add(
        MethodSpec(
            name=_check_name(name),
            model=model,
            batch=batch,
            summary=summary,
            fields=_with_defaults(fields, model, skip=1),
            build=build or _model_fields_builder(model),
            embedder=embedder or _encoder_of,
            loss=loss,
            default_loss=default_loss,
            check=check,
            example=dict(example or {}),
            module=_caller_module(),
        )
    )


def register_batch_kind(
    name: str,
    *,
    summary: str,
    fields: Mapping[str, Field],
    stream: Callable[..., Any],
    examples_per_step: Callable[[Any], int],
    needs_views: bool = False,
    check: Callable[[Any, Any], list] | None = None,
    example: Mapping[str, Any] | None = None,
    data: str = "images",
) -> BatchKind:
    """Registers a batch kind: how a method's training stream is built.

    Args:
        name: what a method's ``batch`` names.
        summary: one line.
        fields: the keys it adds to the config's ``train`` section (every field needs a default).
        stream: ``stream(config, run, views, start_step) -> tf.data.Dataset``: the
            batches of steps ``start_step, ..., config.train.steps - 1``, a pure
            function of the config (its ``seed``) and of the step, so that a resumed
            run sees the batches an uninterrupted one sees. ``run`` is the
            :class:`tfcontrast.jobs.inputs.RunData` split; ``views`` the
            :class:`tfcontrast.augment.TwoViewAugmentation` (``None`` when
            ``augment.enabled`` is False).
        examples_per_step: ``examples_per_step(config.train) -> int`` (for images/s).
        needs_views: the kind cannot work without augmentation (``augment.enabled``
            must be True, checked with the config).
        check: ``check(config, run) -> [(key, message), ...]``: what the loaded data
            must satisfy (e.g. a batch no larger than the training split).
        example: ``train`` values of a small batch for the tests (a few dozen digits).
        data: the data kind (:func:`register_data_kind`) the stream is built from: its
            job trains, evaluates and queries the run, and ``run`` above is that job's data.
    """
    missing = [key for key, f in fields.items() if f.default is MISSING]
    if missing:
        raise ValueError(f"batch kind {name!r}: fields {missing} need a default.")
    return batch_kinds.add(
        BatchKind(
            name=_check_name(name),
            summary=summary,
            fields=dict(fields),
            stream=stream,
            examples_per_step=examples_per_step,
            needs_views=bool(needs_views),
            check=check,
            example=dict(example or {}),
            module=_caller_module(),
            data=_check_name(data),
        )
    )


def register_data_kind(
    name: str,
    *,
    summary: str,
    sections: Mapping[str, Mapping[str, Field] | None],
    job: str,
    check: Callable[[Mapping], list] | None = None,
    later_steps: Callable[[Mapping], int] | None = None,
) -> DataKind:
    """Registers a data kind: what a run trains on, and the job that trains, evaluates and queries it.

    A batch kind names its data kind (``register_batch_kind(..., data=name)``),
    so each method's runs go to one job; nothing dispatches on method names.

    Args:
        name: what a batch kind's ``data`` names (``"images"``, ``"text"``).
        summary: one line.
        sections: config sections that replace those of ``configs/base.py``
            (``{section: {key: Field}}``, every field with a default and a doc), or
            ``None`` for a section the data kind has no use for (removed). The
            ``images`` kind replaces nothing: ``configs/base.py`` is its setting.
        job: the module (dotted name, imported on first use) with
            ``train(config, workdir, out=print) -> dict``,
            ``evaluate(workdir, out=print) -> dict`` and
            ``lookup(workdir, query, k) -> str`` (what ``tfcontrast lookup`` prints).
        check: ``check(config_dict) -> [(key, message), ...]``: checks of its sections
            across keys (data paths, ...), run after every key is valid.
        later_steps: ``later_steps(config_dict) -> int``: the steps the job trains
            after the method's ``train.steps`` (a later stage of the run, e.g. the
            text job's ``pairs`` stage); ``train.stop_after_steps`` may stop in them.
    """
    for section, fields in sections.items():
        missing = [key for key, f in (fields or {}).items() if f.default is MISSING]
        if missing:
            raise ValueError(f"data kind {name!r}: fields {missing} of {section!r} need a default.")
    return data_kinds.add(
        DataKind(
            name=_check_name(name),
            summary=summary,
            sections={s: None if f is None else dict(f) for s, f in sections.items()},
            job=job,
            check=check,
            module=_caller_module(),
            later_steps=later_steps,
        )
    )


def register_loss(
    name: str,
    loss: type,
    *,
    inputs: str,
    fields: Mapping[str, Field],
    summary: str | None = None,
    build: Callable[[Mapping, BuildContext], Any] | None = None,
    model_kwargs: Callable[[Any, BuildContext], Mapping] | None = None,
    head: bool = False,
) -> LossSpec:
    """Registers a loss a method can be compiled with: ``config.loss.name = name``.

    Args:
        name: the config's ``loss.name``.
        loss: the ``keras.losses.Loss`` class.
        inputs: what it is called on, a key of :data:`LOSS_INPUTS` (``"labels"``:
            ``(labels, embeddings)``; ``"pairs"``: ``(pair labels, pair distances)``).
        fields: the other keys of the ``loss`` section (its constructor arguments);
            a field without a default takes the constructor's.
        summary: one line; default: the first line of the class docstring.
        build: ``build(section, context) -> loss``; default ``loss(**section)``
            (``section`` without ``name``).
        model_kwargs: ``model_kwargs(loss, context) -> dict`` of extra arguments for the
            model the loss trains (e.g. ``{"loss_head": ...}`` with trainable class
            weights sized by ``context.num_classes``); the method's builder receives
            them as ``context.model_kwargs``.
        head: the loss is a Keras layer with trainable weights (class weights,
            proxies) that the model owns and trains, not a compiled loss:
            ``build`` returns the layer (default ``loss(context.num_classes, **section)``),
            the method's builder receives it as ``context.model_kwargs["loss_head"]``
            and nothing is compiled (``context.loss`` stays ``None``). A method
            compiled with ``"labels"`` losses accepts ``loss_head``.
    """
    if inputs not in LOSS_INPUTS:
        raise ValueError(f"`inputs` must be one of {tuple(LOSS_INPUTS)}, got {inputs!r}.")
    if "name" in fields:
        raise ValueError("`name` is the loss section's selector; it cannot be a field of the loss.")
    if head and model_kwargs is not None:
        raise ValueError("a `head` loss reaches the model as `loss_head`; it takes no `model_kwargs`.")
    doc_line = (inspect.getdoc(loss) or name).strip().splitlines()[0]
    return losses.add(
        LossSpec(
            name=_check_name(name),
            loss=loss,
            inputs=inputs,
            summary=summary or doc_line,
            fields=_with_defaults(fields, loss, skip=0),
            build=build or (_head_builder(loss) if head else lambda section, context: loss(**section)),
            model_kwargs=model_kwargs,
            module=_caller_module(),
            head=bool(head),
        )
    )


def _head_builder(loss: type):
    def build(section, context: BuildContext):
        if context.num_classes is None:
            raise ValueError(f"{loss.__name__} learns one weight vector per class: it needs labelled training data.")
        return loss(context.num_classes, **section)

    return build


def _model_fields_builder(model: type):
    def build(config, encoder, context: BuildContext):
        return model(encoder, **dict(config.model), **dict(context.model_kwargs))

    return build


def _encoder_of(model):
    return model.encoder


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"a registered name must be a lower-case identifier, got {name!r}.")
    return name


def _with_defaults(fields: Mapping[str, Field], cls: type, skip: int) -> dict[str, Field]:
    """``fields`` with every :data:`MISSING` default read from ``cls.__init__`` (after ``skip`` positional arguments)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1 + skip:]
    signature = {p.name: p.default for p in parameters}
    out = {}
    for key, f in fields.items():
        if f.default is MISSING:
            default = signature.get(key, inspect.Parameter.empty)
            if default is inspect.Parameter.empty:
                raise ValueError(
                    f"field {key!r} of {cls.__name__} has no default and {cls.__name__}() has no argument "
                    f"{key!r} with a default: give the field one."
                )
            f = f.with_default(default)
        out[key] = f
    return out


def _caller_module() -> str:
    frame = sys._getframe(2)
    return frame.f_globals.get("__name__", "?")


# ---------------------------------------------------------------- discovery

_discovered = False


def discover() -> None:
    """Imports every module that may register something (once; see the module docstring)."""
    global _discovered
    if _discovered:
        return
    _discovered = True  # set first: the modules imported below look entries up as they register
    try:
        for package_name in SEARCH_PACKAGES:
            try:
                package = importlib.import_module(package_name)
            except ModuleNotFoundError as err:
                if err.name == package_name:
                    continue
                raise
            for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
                importlib.import_module(info.name)
        _load_plugins()
    except BaseException:
        _discovered = False
        raise


def _load_plugins() -> None:
    from importlib import metadata

    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as err:  # a broken plugin must say which one it is
            raise ImportError(f"the tfcontrast plugin {entry.name!r} ({entry.value}) failed to import: {err}") from err

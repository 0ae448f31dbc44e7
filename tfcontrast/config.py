"""Run configurations: the schema of config files, how they load, and their validation.

A run of the ``tfcontrast`` command is described by one
``ml_collections.ConfigDict`` (the convention of Google's SimCLR and BYOL
code): a Python file whose ``get_config()`` returns it, overridden on the
command line with ``--config.section.key=value``.

**Composition.** ``configs/base.py`` holds the sections every run shares
(``data``, ``encoder``, ``augment``, ``optimizer``, ``train``, ``eval``,
``index``, and ``seed``), each key documented where it is set. :func:`base`
returns it for one method, completed from the registry
(:mod:`tfcontrast.registry`): the method's ``model`` section, its batch kind's
``train`` keys and, for a method compiled with a loss, a ``loss`` section, all
at their registered defaults. A method's config states only what differs::

    from tfcontrast.config import base

    def get_config():
        c = base("simclr")
        c.model.temperature = 0.2  # NT-Xent temperature
        return c

**Loading.** :func:`load` takes a packaged config name (``directpred_digits``,
see :mod:`tfcontrast.packaged_configs`) or a file path, and applies overrides.
Overriding ``loss.name`` resets the ``loss`` section to the new loss's
registered defaults before the other ``loss.*`` overrides apply.

**Validation.** :func:`validate` checks a config against the schema of its
method *before* anything runs or is written, and lists every problem with the
key it concerns:

* an unknown key (a typo, or a key of another method), with the keys it could
  have meant;
* a missing key;
* a value of the wrong type (``bool`` is not an ``int``; an ``int`` is
  accepted where a ``float`` is expected);
* a bad value: a negative learning rate, an unknown method or encoder, a
  probability outside [0, 1], steps that are not a multiple of the epoch, a
  data path that does not exist.

Sections (every one is required; ``model``, ``loss`` and part of ``train`` depend on the method):

========= ==============================================================
section   keys
========= ==============================================================
(top)     ``method`` (a registered method), ``seed``
data      ``name``, ``path``, ``test_fraction``, ``split_seed``, ``image_size``, ``color_mode``
encoder   ``name``, ``features``, ``width``, ``widths``, ``stem``
model     the method's registered fields
loss      methods compiled with a loss: ``name`` (a registered loss) and that loss's fields
augment   :class:`tfcontrast.augment.TwoViewAugmentation` arguments, plus ``enabled``
optimizer ``name``, ``lr``, ``weight_decay``, ``momentum``, ``schedule``, ``warmup_steps``
train     ``steps``, ``steps_per_epoch``, ``stop_after_steps``, ``jit_compile`` and the
          keys of the method's batch kind
eval      ``knn_k``, ``recall_ks``, ``batch_size``, ``map_method``, ``grid_queries``,
          ``grid_neighbors``, ``nuisance_max_shift``, ``nuisance_max_degrees``, ``nuisance_seed``
index     ``metric``, ``backend`` (faiss ``exact``/``hnsw``/``ivf``, or ``milvus``), ``lookup_k``,
          ``uri`` and ``collection`` (Milvus)
========= ==============================================================

That table is the ``images`` data kind's setting. A method whose batch kind
trains on another data kind gets that kind's registered sections instead
(:func:`tfcontrast.registry.register_data_kind`; ``text``: ``data``,
``encoder``, ``eval``, ``index`` and ``pairs`` of :mod:`tfcontrast.jobs.text`, no
``augment``), and its checks in place of :func:`image_checks`.

``tfcontrast configs show base`` prints the shared sections with a comment on
every key; ``tfcontrast configs`` lists the packaged configs.
"""

from __future__ import annotations

import difflib
import importlib.util
import io
import json
import os
import tokenize
from typing import Any, Mapping

import ml_collections

from tfcontrast import fields as fields_lib, packaged_configs, registry
from tfcontrast.fields import Bool, Choice, Field, Float, Floats, Int, Ints, Str

DATA_SOURCES = ("digits", "image_folder", "npz")
COLOR_MODES = ("grayscale", "rgb")
ENCODERS = ("digits_cnn", "mlp", "resnet18")
STEMS = ("cifar", "imagenet")
OPTIMIZERS = ("adamw", "adam", "sgd", "lamb", "lion")
SCHEDULES = ("cosine", "constant")
RECIPES = ("simclr", "byol")
MAP_METHODS = ("pca", "tsne")
INDEX_METRICS = ("cosine", "euclidean", "inner_product")
INDEX_BACKENDS = ("exact", "hnsw", "ivf", "milvus")

# Keys that control how a run executes, not what it computes: they may differ
# when an interrupted run is resumed.
EXECUTION_KEYS = ("train.stop_after_steps",)

# Sections whose ``name`` picks a registered entry with its own fields: a new
# name resets the section to that entry's defaults.
SELECTOR_SECTIONS = {"loss": registry.losses}


class ConfigError(ValueError):
    """A config that cannot run. ``problems`` holds ``(key, message)`` pairs, keys like ``config.optimizer.lr``."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        lines = "\n".join(f"  {key}: {message}" for key, message in self.problems)
        super().__init__(f"invalid config ({len(self.problems)} problem{'s' * (len(self.problems) != 1)}):\n{lines}")


# ------------------------------------------------------------------ schema


def _crop_scale(v) -> str | None:
    lo, hi = v
    return None if 0 < lo <= hi <= 1 else f"must be (min, max) with 0 < min <= max <= 1, got {v!r}"


PROBABILITY = Float(within="[0, 1]")

# The shared sections; their values and one-line docs are in configs/base.py.
COMMON_FIELDS: dict[str, Any] = {
    "seed": Int(min=0),
    "data": {
        "name": Choice(DATA_SOURCES),
        "path": Str(),
        "test_fraction": Float(within="(0, 1)"),
        "split_seed": Int(min=0),
        "image_size": Ints(min=2, length=2),
        "color_mode": Choice(COLOR_MODES),
    },
    "encoder": {
        "name": Choice(ENCODERS),
        "features": Int(min=1),
        "width": Int(min=1),
        "widths": Ints(min=1),
        "stem": Choice(STEMS),
    },
    "augment": {
        "enabled": Bool(),
        "recipe": Choice(RECIPES),
        "crop_scale": Floats(length=2, check=_crop_scale),
        "flip": Bool(),
        "jitter_prob": PROBABILITY,
        "jitter_strength": Float(within="[0, inf)"),
        "grayscale_prob": PROBABILITY,
        "blur_prob": PROBABILITY,
        "solarize_prob": PROBABILITY,
        "max_shift": Int(min=0),
        "max_degrees": Float(within="[0, inf)"),
    },
    "optimizer": {
        "name": Choice(OPTIMIZERS),
        "lr": Float(within="(0, inf)"),
        "weight_decay": Float(within="[0, inf)"),
        "momentum": Float(within="[0, 1)"),
        "schedule": Choice(SCHEDULES),
        "warmup_steps": Int(min=0),
    },
    "train": {
        "steps": Int(min=1),
        "steps_per_epoch": Int(min=1),
        "stop_after_steps": Int(min=0),
        "jit_compile": Bool(),
    },
    "eval": {
        "knn_k": Int(min=1),
        "recall_ks": Ints(min=1),
        "batch_size": Int(min=1),
        "map_method": Choice(MAP_METHODS),
        "grid_queries": Int(min=1),
        "grid_neighbors": Int(min=1),
        "nuisance_max_shift": Int(min=0),
        "nuisance_max_degrees": Float(within="[0, inf)"),
        "nuisance_seed": Int(min=0),
    },
    "index": {
        "metric": Choice(INDEX_METRICS),
        "backend": Choice(INDEX_BACKENDS),
        "lookup_k": Int(min=1),
        "uri": Str(),
        "collection": Str(check=lambda v: None if not v or _collection_name(v) else (
            f"must be letters, digits and underscores, not starting with a digit, got {v!r}"
        )),
    },
}

# Keys added since tfcontrast 0.1.0 with the value that reproduces an older run: a config.json
# written before they existed reads with these (``from_json``), so old runs still resume and evaluate.
ADDED_KEYS = {"index.uri": "", "index.collection": ""}


def _collection_name(name: str) -> bool:
    return name.replace("_", "a").isalnum() and name.isascii() and not name[0].isdigit()


def schema(method: str, loss: str | None = None) -> dict[str, Any]:
    """The nested schema (sections -> :class:`~tfcontrast.fields.Field`) of a config of ``method``.

    For a method compiled with a loss, ``loss`` names the loss whose fields the
    ``loss`` section holds (default: the method's default loss).

    Raises:
        ValueError: an unknown method or loss.
    """
    spec = registry.methods.get(method)
    out: dict[str, Any] = {"method": Choice(registry.methods.names(), doc="the method trained (a registered name)")}
    out.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in COMMON_FIELDS.items()})
    for section, fields in registry.data_kind_of(method).sections.items():  # the data kind's own sections
        if fields is None:
            out.pop(section, None)
        else:
            out[section] = dict(fields)
    out["model"] = dict(spec.fields)
    out["train"].update(registry.batch_kinds.get(spec.batch).fields)
    if spec.loss is not None:
        out["loss"] = {"name": Choice(loss_names(spec.loss)), **registry.losses.get(loss or spec.default_loss).fields}
    return out


def loss_names(inputs: str) -> tuple[str, ...]:
    """The registered losses called on ``inputs`` (a key of :data:`tfcontrast.registry.LOSS_INPUTS`)."""
    return tuple(spec.name for spec in registry.losses if spec.inputs == inputs)


def base(method: str) -> ml_collections.ConfigDict:
    """The shared sections of ``configs/base.py`` with ``method``'s registered sections at their defaults.

    ``model`` holds the method's fields, ``train`` also its batch kind's keys,
    and a method compiled with a loss gets ``loss`` (its default loss). The
    result is unlocked: a config file changes what differs and returns it.

    Raises:
        ValueError: ``method`` is not registered.
    """
    spec = registry.methods.get(method)
    shared = _run_config_file(packaged_configs.directory() / f"{packaged_configs.BASE}.py")
    config = ml_collections.ConfigDict()
    config.method = method
    for key, value in shared.items():
        config[key] = value
    for section, values in registry.data_kind_of(method).defaults().items():  # the data kind's own sections
        if values is None:
            del config[section]
        else:
            config[section] = ml_collections.ConfigDict(values)
    config.model = ml_collections.ConfigDict(spec.defaults())
    for key, value in registry.batch_kinds.get(spec.batch).defaults().items():
        config.train[key] = value
    if spec.loss is not None:
        config.loss = ml_collections.ConfigDict(registry.losses.get(spec.default_loss).defaults())
    return config


def key_docs(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, str]:
    """``{dotted key: one-line doc}`` of every key of ``config`` (what ``tfcontrast train --config X --help`` shows).

    The method's, batch kind's and loss's keys are documented by their
    registered fields; the shared sections by the comment on their line in
    ``configs/base.py``.

    Raises:
        ValueError: ``config.method`` (or ``config.loss.name``) is not registered.
    """
    raw = _as_dict(config)
    loss = raw.get("loss", {}).get("name") if isinstance(raw.get("loss"), Mapping) else None
    fields = schema(raw.get("method"), loss if loss in registry.losses else None)
    comments = base_comments()
    out = {}
    for key in _leaves(raw):
        node: Any = fields
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        doc = node.doc if isinstance(node, Field) else ""
        out[key] = doc or comments.get(key, "")
    return out


def base_comments() -> dict[str, str]:
    """``{dotted key: comment}`` of the ``c.section.key = value  # comment`` lines of ``configs/base.py``."""
    source = (packaged_configs.directory() / f"{packaged_configs.BASE}.py").read_text(encoding="utf-8")
    out, line_tokens = {}, []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            line_tokens = []
            continue
        if token.type == tokenize.COMMENT:
            words = [t.string for t in line_tokens]
            if len(words) >= 4 and words[0] == "c" and words[1] == "." and "=" in words:
                target = "".join(words[1 : words.index("=")]).lstrip(".")
                out[target] = token.string.lstrip("#").strip()
            continue
        line_tokens.append(token)
    return out


def _leaves(values: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            keys += _leaves(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def describe(config: ml_collections.ConfigDict | Mapping[str, Any]) -> str:
    """One line per key: ``key = value`` and its doc (:func:`key_docs`)."""
    raw = _as_dict(config)
    docs = key_docs(raw)
    rows = []
    for key in docs:
        value = raw
        for part in key.split("."):
            value = value[part]
        rows.append((f"{key} = {value!r}", docs[key]))
    width = min(max(len(left) for left, _ in rows), 48)
    return "\n".join(f"  {left.ljust(width)}  {doc}".rstrip() for left, doc in rows)


# --------------------------------------------------------------- validation


def validate(config: ml_collections.ConfigDict | Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Checks ``config`` against its method's schema; returns a normalised, locked copy.

    Normalised: floats where floats are expected, tuples for sequences, paths
    made absolute. Nothing is read or written except ``os.path`` checks of
    ``data.path``.

    Raises:
        ConfigError: every problem found, each with its key (``config.section.key``).
    """
    raw = _as_dict(config)
    method = raw.get("method")
    if not isinstance(method, str) or method not in registry.methods:
        shown = "missing" if "method" not in raw else f"got {method!r}"
        raise ConfigError([("config.method", f"must be one of {registry.methods.names()}, {shown}")])
    raw, spec = _without_other_loss_keys(raw)
    problems: list[tuple[str, str]] = []
    resolved = _walk(spec, raw, "config", problems)
    if not problems:
        problems += _cross_checks(resolved)
    if problems:
        raise ConfigError(problems)
    out = ml_collections.ConfigDict(resolved)
    out.lock()
    return out


def _without_other_loss_keys(raw: dict) -> tuple[dict, dict]:
    """``(raw, schema)`` of a config; when ``loss.name`` is not a loss of the method, both keep only that key.

    (The other ``loss`` keys belong to a loss that is not there: the name alone is reported.)
    """
    method = registry.methods.get(raw["method"])
    section = raw.get("loss")
    if method.loss is None or not isinstance(section, Mapping):
        return raw, schema(method.name)
    if section.get("name") in loss_names(method.loss):
        return raw, schema(method.name, section["name"])
    spec = schema(method.name)
    spec["loss"] = {"name": spec["loss"]["name"]}
    return {**raw, "loss": {k: v for k, v in section.items() if k == "name"}}, spec


def _walk(spec: dict, raw: Mapping, prefix: str, problems: list) -> dict:
    out = {}
    for key in raw:
        if key not in spec:
            where = "the top level" if prefix == "config" else prefix
            problems.append(
                (f"{prefix}.{key}", f"unknown key{registry.did_you_mean(key, spec)} (known keys of {where}: {', '.join(spec)})")
            )
    for key, field in spec.items():
        name = f"{prefix}.{key}"
        if key not in raw:
            problems.append((name, "missing"))
        elif isinstance(field, dict):
            value = raw[key]
            if not isinstance(value, Mapping):
                problems.append((name, f"must be a section (ConfigDict), got {value!r}"))
            else:
                out[key] = _walk(field, value, name, problems)
        else:
            value, message = fields_lib.convert(field, raw[key])
            if message:
                problems.append((name, message))
            else:
                out[key] = value
    return out


def _cross_checks(c: dict) -> list[tuple[str, str]]:
    """Checks that involve more than one key."""
    problems = []
    train = c["train"]
    if train["steps"] % train["steps_per_epoch"]:
        problems.append(
            ("config.train.steps", f"must be a multiple of train.steps_per_epoch ({train['steps_per_epoch']}), got {train['steps']}")
        )
    spec = registry.methods.get(c["method"])
    kind = registry.batch_kinds.get(spec.batch)
    data_kind = registry.data_kinds.get(kind.data)
    stop, run_steps = train["stop_after_steps"], data_kind.run_steps(c)
    if stop and (stop % train["steps_per_epoch"] or stop >= run_steps):
        below = f"train.steps ({train['steps']})" if run_steps == train["steps"] else f"the run's {run_steps} steps in all"
        problems.append(
            (
                "config.train.stop_after_steps",
                f"must be 0 (off) or a multiple of train.steps_per_epoch ({train['steps_per_epoch']}) "
                f"below {below}, got {stop}",
            )
        )
    if c["optimizer"]["warmup_steps"] >= train["steps"]:
        problems.append(
            ("config.optimizer.warmup_steps", f"must be below train.steps ({train['steps']}), got {c['optimizer']['warmup_steps']}")
        )
    if kind.needs_views and not c["augment"]["enabled"]:
        problems.append(
            ("config.augment.enabled", f"must be True for {c['method']}: its {kind.name} batches are augmented views")
        )
    if spec.check is not None:
        problems += spec.check(c)
    if data_kind.check is not None:
        problems += data_kind.check(c)
    return problems


def image_checks(c: dict) -> list[tuple[str, str]]:
    """Checks of the image sections (the ``images`` data kind's): the data path fits ``data.name``; k <= 1000.

    Makes ``data.path`` absolute in ``c``.
    """
    problems = []
    data = c["data"]
    path = data["path"]
    if data["name"] == "digits":
        if path:
            problems.append(("config.data.path", f"must be '' for data.name='digits' (bundled data), got {path!r}"))
    elif not path:
        problems.append(("config.data.path", f"is required for data.name={data['name']!r}: pass --config.data.path=..."))
    else:
        data["path"] = path = os.path.abspath(os.path.expanduser(path))
        if data["name"] == "image_folder" and not os.path.isdir(path):
            problems.append(("config.data.path", f"must be an existing folder of class sub-folders, got {path!r}"))
        if data["name"] == "npz" and not os.path.isfile(path):
            problems.append(("config.data.path", f"must be an existing .npz file, got {path!r}"))
    if max(c["eval"]["recall_ks"]) > 1000 or c["eval"]["knn_k"] > 1000:
        problems.append(("config.eval", "knn_k and recall_ks must be <= 1000"))
    problems += _index_checks(c["index"])
    return problems


def _index_checks(index: dict) -> list[tuple[str, str]]:
    """The Milvus keys: only with backend milvus, no credentials in the URI, the client installed."""
    uri, collection = index["uri"], index["collection"]
    if index["backend"] != "milvus":
        return [
            (f"config.index.{key}", f"is only read with index.backend='milvus' (backend is {index['backend']!r}), got {value!r}")
            for key, value in (("uri", uri), ("collection", collection)) if value
        ]
    problems = []
    if "@" in uri.split("://", 1)[-1].split("/", 1)[0]:
        problems.append(
            ("config.index.uri", "must not hold credentials (config.json is written to the run folder): give the "
             "token in the MILVUS_TOKEN environment variable")
        )
    elif uri and "://" not in uri and not uri.endswith(".db"):
        problems.append(("config.index.uri", f"must be a server URI (http://host:19530) or a Milvus Lite file ending in .db, got {uri!r}"))
    lite = not uri or "://" not in uri
    missing = [name for name in ("pymilvus",) + (("milvus_lite",) if lite else ()) if importlib.util.find_spec(name) is None]
    if missing:
        problems.append(
            ("config.index.backend", f"'milvus' needs {' and '.join(missing)}: pip install \"tfcontrast[milvus]\"")
        )
    return problems


# ------------------------------------------------------------ files and json


def load(source: str | os.PathLike, overrides: Mapping[str, Any] | None = None, from_text: bool = False) -> ml_collections.ConfigDict:
    """The config ``source`` names, locked, with ``overrides`` applied (:func:`apply_overrides`).

    Args:
        source: a config file path, or the name of a packaged config
            (``"directpred_digits"``; ``tfcontrast configs`` lists them).
        overrides: dotted keys (``"optimizer.lr"``) -> values, as
            ``--config.optimizer.lr=...`` does on the command line.
        from_text: the override values are command-line text, typed here.

    Raises:
        ConfigError: no such file or packaged config, a file without ``get_config``,
            or an override of an unknown key.
    """
    path = packaged_configs.resolve(source)
    if path is None:
        raise ConfigError([("--config", _no_config_message(os.fspath(source)))])
    return load_file(path, overrides, from_text=from_text)


def _no_config_message(source: str) -> str:
    message = f"no config file at {source!r}"
    stem = os.path.basename(source)
    stem = stem[:-3] if stem.endswith(".py") else stem
    try:
        packaged = packaged_configs.names()
    except FileNotFoundError as err:
        return f"{message} ({err})"
    if stem in packaged and stem != source:
        return f"{message}; the packaged config of that name is --config {stem}"
    return f"{message}, and no packaged config of that name (packaged: {', '.join(packaged)}; `tfcontrast configs` describes them)"


def load_file(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None, from_text: bool = False) -> ml_collections.ConfigDict:
    """``get_config()`` of the config file at ``path``, locked, with ``overrides`` applied (see :func:`load`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError([("--config", f"no config file at {path!r}")])
    config = _run_config_file(path)
    return apply_overrides(config, overrides or {}, from_text=from_text)


def _run_config_file(path) -> ml_collections.ConfigDict:
    spec = importlib.util.spec_from_file_location("tfcontrast_user_config", path)
    if spec is None:
        raise ConfigError([("--config", f"{os.fspath(path)!r} is not a Python file (a config is a .py file)")])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError([("--config", f"{os.fspath(path)!r} defines no get_config() function")])
    config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            [("--config", f"get_config() of {os.fspath(path)!r} must return a ConfigDict, got {type(config).__name__}")]
        )
    return config


def apply_overrides(config: ml_collections.ConfigDict | Mapping, overrides: Mapping[str, Any], from_text: bool = False
                    ) -> ml_collections.ConfigDict:
    """A locked copy of ``config`` with ``overrides`` (dotted key -> value) applied.

    Only existing keys can be overridden. A new ``name`` of a selector section
    (``loss.name``, :data:`SELECTOR_SECTIONS`) applies first and resets that
    section to the registered defaults of the new name, so that
    ``{"loss.name": "supcon", "loss.temperature": 0.2}`` gives SupCon at
    temperature 0.2 whatever loss the config had. With ``from_text`` the values
    are command-line text, typed by the key's schema field (or its current value):
    see :func:`tfcontrast.fields.parse_text`. Values are not validated here
    (:func:`validate` does that, naming the key).

    Raises:
        ConfigError: overrides of unknown keys (each with the keys it could have meant),
            or an unknown name of a selector section.
    """
    values = _as_dict(config)
    problems = []
    selectors = [key for key in overrides if key.count(".") == 1 and key.endswith(".name") and key.split(".")[0] in SELECTOR_SECTIONS]
    for key in selectors + [key for key in overrides if key not in selectors]:
        problem = unknown_key(values, key)
        if problem:
            problems.append(problem)
            continue
        *parents, leaf = key.split(".")
        section = values
        for part in parents:
            section = section[part]
        value = overrides[key]
        if from_text and isinstance(value, str):
            value = fields_lib.parse_text(_field_of(values, key), section[leaf], value)
        if key in selectors and value != section[leaf]:
            entries = SELECTOR_SECTIONS[parents[0]]
            if value not in entries:
                problems.append((f"config.{key}", f"unknown {entries.what} {value!r}{registry.did_you_mean(value, entries.names())} (known: {', '.join(entries.names())})"))
                continue
            values[parents[0]] = entries.get(value).defaults()
        else:
            section[leaf] = value
    if problems:
        raise ConfigError(problems)
    out = ml_collections.ConfigDict(values)
    out.lock()
    return out


def _field_of(values: Mapping, key: str) -> Field | None:
    """The schema field of a dotted key in ``values``, or ``None`` when the schema cannot say."""
    try:
        method = values.get("method")
        loss = values.get("loss", {}).get("name") if isinstance(values.get("loss"), Mapping) else None
        node: Any = schema(method, loss)
    except (ValueError, TypeError):
        return None
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Field) else None


def unknown_key(config: ml_collections.ConfigDict | Mapping, key: str) -> tuple[str, str] | None:
    """``(key, message)`` when the dotted ``key`` is not in ``config``, else ``None``."""
    node: Any = config
    walked = "config"
    for part in key.split("."):
        if not isinstance(node, (ml_collections.ConfigDict, Mapping)):
            return (f"config.{key}", f"{walked} is a value, not a section")
        if part not in node:
            return (
                f"config.{key}",
                f"unknown key{registry.did_you_mean(part, node.keys())} (known keys of {walked}: {', '.join(node.keys())})",
            )
        node = node[part]
        walked += f".{part}"
    return None


def _as_dict(config: ml_collections.ConfigDict | Mapping) -> dict:
    """A deep copy of ``config`` as nested plain dicts."""
    if isinstance(config, ml_collections.ConfigDict):
        return config.to_dict()
    return {k: _as_dict(v) if isinstance(v, (Mapping, ml_collections.ConfigDict)) else v for k, v in config.items()}


def to_json(config: ml_collections.ConfigDict | Mapping) -> str:
    """The config as sorted, indented JSON (tuples become lists)."""
    return json.dumps(_as_dict(config), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    """Inverse of :func:`to_json`, validated (so lists turn back into tuples).

    Keys added since (:data:`ADDED_KEYS`) that an older ``config.json`` lacks read as their defaults.
    """
    values = json.loads(text)
    if isinstance(values, dict):
        try:
            known = schema(values["method"])
        except (KeyError, TypeError, ValueError):
            known = None  # validate() names what is wrong
        for key, default in ADDED_KEYS.items():
            *parents, leaf = key.split(".")
            section, fields = values, known
            for part in parents:
                section = section.get(part) if isinstance(section, dict) else None
                fields = fields.get(part) if isinstance(fields, dict) else None
            # only where the method's schema has the key (a data kind may replace the section, e.g. text's index)
            if isinstance(section, dict) and leaf not in section and isinstance(fields, dict) and leaf in fields:
                section[leaf] = default
    return validate(values)


def differences(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two (nested) config dicts, ignoring :data:`EXECUTION_KEYS`."""
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += differences(va, vb, f"{name}.")
        elif name not in EXECUTION_KEYS and _plain(va) != _plain(vb):
            out.append(name)
    return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value

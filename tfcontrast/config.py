"""Run configurations: the schema of ``configs/*.py`` and its validation.

A run of the ``tfcontrast`` command is described by one
``ml_collections.ConfigDict`` (the convention of Google's SimCLR and BYOL
code): a Python file ``configs/<name>.py`` whose ``get_config()`` returns it,
overridden on the command line with ``--config.section.key=value``.

:func:`validate` checks a config against the schema of its method *before*
anything runs or is written, and lists every problem with the key it concerns:

* an unknown key (a typo, or a key of another method), with the keys it could
  have meant;
* a missing key;
* a value of the wrong type (``bool`` is not an ``int``; an ``int`` is
  accepted where a ``float`` is expected);
* a bad value: a negative learning rate, an unknown method or encoder, a
  probability outside [0, 1], steps that are not a multiple of the epoch, a
  data path that does not exist.

Sections (every one is required; ``model`` and ``train`` depend on the method):

======== ==============================================================
section  keys
======== ==============================================================
(top)    ``method``, ``seed``
data     ``name``, ``path``, ``test_fraction``, ``split_seed``, ``image_size``, ``color_mode``
encoder  ``name``, ``features``, ``width``, ``widths``, ``stem``
model    per method: see :data:`MODEL_FIELDS`
augment  :class:`tfcontrast.augment.TwoViewAugmentation` arguments, plus ``enabled``
optimizer ``name``, ``lr``, ``weight_decay``, ``momentum``, ``schedule``, ``warmup_steps``
train    ``steps``, ``steps_per_epoch``, ``stop_after_steps``, ``jit_compile`` and the
         batch keys of the method (:data:`BATCH_FIELDS`)
eval     ``knn_k``, ``recall_ks``, ``batch_size``, ``map_method``, ``grid_queries``,
         ``grid_neighbors``, ``nuisance_max_shift``, ``nuisance_max_degrees``, ``nuisance_seed``
index    ``metric``, ``backend``, ``lookup_k``
======== ==============================================================

The files in ``configs/`` document every key next to its value.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import ml_collections

METHODS = ("siamese", "triplet", "supcon", "simclr", "byol", "directpred", "simsiam")
SSL_METHODS = ("simclr", "byol", "directpred", "simsiam")
DATA_SOURCES = ("digits", "image_folder", "npz")
COLOR_MODES = ("grayscale", "rgb")
ENCODERS = ("digits_cnn", "mlp", "resnet18")
STEMS = ("cifar", "imagenet")
OPTIMIZERS = ("adamw", "adam", "sgd", "lamb", "lion")
SCHEDULES = ("cosine", "constant")
DISTANCES = ("euclidean", "sqeuclidean", "cosine", "inner_product")
MININGS = ("semi-hard", "hard", "all")
RECIPES = ("simclr", "byol")
MAP_METHODS = ("pca", "tsne")
INDEX_METRICS = ("cosine", "euclidean", "inner_product")
INDEX_BACKENDS = ("exact", "hnsw", "ivf")

# Keys that control how a run executes, not what it computes: they may differ
# when an interrupted run is resumed.
EXECUTION_KEYS = ("train.stop_after_steps",)


class ConfigError(ValueError):
    """A config that cannot run. ``problems`` holds ``(key, message)`` pairs, keys like ``config.optimizer.lr``."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        lines = "\n".join(f"  {key}: {message}" for key, message in self.problems)
        super().__init__(f"invalid config ({len(self.problems)} problem{'s' * (len(self.problems) != 1)}):\n{lines}")


# ------------------------------------------------------------------ schema


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: its type and an optional value check.

    ``kind`` is ``"int"``, ``"float"``, ``"str"``, ``"bool"`` or
    ``"ints"`` / ``"floats"`` (a tuple of numbers, of length ``length`` when
    given). ``check(value)`` returns a message describing what is wrong, or
    ``None``.
    """

    kind: str
    check: Callable[[Any], str | None] | None = None
    length: int | None = None


def _choice(choices) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {tuple(choices)}, got {v!r}"


def _at_least(low) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}, got {v!r}"


def _positive(v) -> str | None:
    return None if v > 0 else f"must be > 0, got {v!r}"


def _fraction(v) -> str | None:
    """[0, 1)."""
    return None if 0 <= v < 1 else f"must lie in [0, 1), got {v!r}"


def _probability(v) -> str | None:
    return None if 0 <= v <= 1 else f"must lie in [0, 1], got {v!r}"


def _open_fraction(v) -> str | None:
    return None if 0 < v < 1 else f"must lie in (0, 1), got {v!r}"


def _all(check) -> Callable[[Any], str | None]:
    return lambda values: next((f"{m} (in {values!r})" for m in map(check, values) if m), None)


def _crop_scale(v) -> str | None:
    lo, hi = v
    return None if 0 < lo <= hi <= 1 else f"must be (min, max) with 0 < min <= max <= 1, got {v!r}"


POSITIVE_INT = Field("int", _at_least(1))
NON_NEGATIVE_INT = Field("int", _at_least(0))
POSITIVE_FLOAT = Field("float", _positive)
NON_NEGATIVE_FLOAT = Field("float", _at_least(0))
PROBABILITY = Field("float", _probability)
BOOL = Field("bool")

COMMON_FIELDS: dict[str, Any] = {
    "method": Field("str", _choice(METHODS)),
    "seed": NON_NEGATIVE_INT,
    "data": {
        "name": Field("str", _choice(DATA_SOURCES)),
        "path": Field("str"),
        "test_fraction": Field("float", _open_fraction),
        "split_seed": NON_NEGATIVE_INT,
        "image_size": Field("ints", _all(_at_least(2)), length=2),
        "color_mode": Field("str", _choice(COLOR_MODES)),
    },
    "encoder": {
        "name": Field("str", _choice(ENCODERS)),
        "features": POSITIVE_INT,
        "width": POSITIVE_INT,
        "widths": Field("ints", _all(_at_least(1))),
        "stem": Field("str", _choice(STEMS)),
    },
    "augment": {
        "enabled": BOOL,
        "recipe": Field("str", _choice(RECIPES)),
        "crop_scale": Field("floats", _crop_scale, length=2),
        "flip": BOOL,
        "jitter_prob": PROBABILITY,
        "jitter_strength": NON_NEGATIVE_FLOAT,
        "grayscale_prob": PROBABILITY,
        "blur_prob": PROBABILITY,
        "solarize_prob": PROBABILITY,
        "max_shift": NON_NEGATIVE_INT,
        "max_degrees": NON_NEGATIVE_FLOAT,
    },
    "optimizer": {
        "name": Field("str", _choice(OPTIMIZERS)),
        "lr": POSITIVE_FLOAT,
        "weight_decay": NON_NEGATIVE_FLOAT,
        "momentum": Field("float", _fraction),
        "schedule": Field("str", _choice(SCHEDULES)),
        "warmup_steps": NON_NEGATIVE_INT,
    },
    "train": {
        "steps": POSITIVE_INT,
        "steps_per_epoch": POSITIVE_INT,
        "stop_after_steps": NON_NEGATIVE_INT,
        "jit_compile": BOOL,
    },
    "eval": {
        "knn_k": POSITIVE_INT,
        "recall_ks": Field("ints", _all(_at_least(1))),
        "batch_size": POSITIVE_INT,
        "map_method": Field("str", _choice(MAP_METHODS)),
        "grid_queries": POSITIVE_INT,
        "grid_neighbors": POSITIVE_INT,
        "nuisance_max_shift": NON_NEGATIVE_INT,
        "nuisance_max_degrees": NON_NEGATIVE_FLOAT,
        "nuisance_seed": NON_NEGATIVE_INT,
    },
    "index": {
        "metric": Field("str", _choice(INDEX_METRICS)),
        "backend": Field("str", _choice(INDEX_BACKENDS)),
        "lookup_k": POSITIVE_INT,
    },
}

_EMBEDDING = {"embedding_dim": NON_NEGATIVE_INT, "normalize": BOOL}
MODEL_FIELDS: dict[str, dict[str, Field]] = {
    "siamese": {"distance": Field("str", _choice(DISTANCES)), "margin": NON_NEGATIVE_FLOAT},
    "triplet": {
        **_EMBEDDING,
        "margin": NON_NEGATIVE_FLOAT,
        "mining": Field("str", _choice(MININGS)),
        "distance": Field("str", _choice(DISTANCES)),
        "soft": BOOL,
    },
    "supcon": {**_EMBEDDING, "temperature": POSITIVE_FLOAT},
    "simclr": {"projection_dim": POSITIVE_INT, "hidden_dim": POSITIVE_INT, "temperature": POSITIVE_FLOAT},
    "byol": {"projection_dim": POSITIVE_INT, "hidden_dim": POSITIVE_INT, "tau_base": Field("float", _fraction)},
    "directpred": {
        "projection_dim": POSITIVE_INT,
        "hidden_dim": POSITIVE_INT,
        "tau_base": Field("float", _fraction),
        "rho": Field("float", _fraction),
        "eps": NON_NEGATIVE_FLOAT,
        "freq": POSITIVE_INT,
        "variant": Field("str", _choice(("directpred", "directcopy"))),
    },
    "simsiam": {"projection_dim": POSITIVE_INT, "predictor_hidden_dim": POSITIVE_INT},
}

_PK = {"classes_per_batch": POSITIVE_INT, "samples_per_class": Field("int", _at_least(2))}
BATCH_FIELDS: dict[str, dict[str, Field]] = {
    "siamese": {"batch_size": POSITIVE_INT, "positive_fraction": PROBABILITY},
    "triplet": _PK,
    "supcon": _PK,
    **{m: {"batch_size": Field("int", _at_least(2))} for m in SSL_METHODS},
}


def schema(method: str) -> dict[str, Any]:
    """The nested schema (sections -> :class:`Field`) of a method's config."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in COMMON_FIELDS.items()}
    spec["model"] = dict(MODEL_FIELDS[method])
    spec["train"].update(BATCH_FIELDS[method])
    return spec


# --------------------------------------------------------------- validation


def validate(config: ml_collections.ConfigDict | Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Checks ``config`` against its method's schema; returns a normalised, locked copy.

    Normalised: floats where floats are expected, tuples for sequences, paths
    made absolute. Nothing is read or written except ``os.path`` checks of
    ``data.path``.

    Raises:
        ConfigError: every problem found, each with its key (``config.section.key``).
    """
    raw = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    method = raw.get("method")
    if method not in METHODS:
        shown = "missing" if "method" not in raw else f"got {method!r}"
        raise ConfigError([("config.method", f"must be one of {METHODS}, {shown}")])
    problems: list[tuple[str, str]] = []
    resolved = _walk(schema(method), raw, "config", problems)
    if not problems:
        problems += _cross_checks(resolved)
    if problems:
        raise ConfigError(problems)
    out = ml_collections.ConfigDict(resolved)
    out.lock()
    return out


def _walk(spec: dict, raw: Mapping, prefix: str, problems: list) -> dict:
    out = {}
    for key in raw:
        if key not in spec:
            near = difflib.get_close_matches(str(key), list(spec), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            where = "the top level" if prefix == "config" else prefix
            problems.append((f"{prefix}.{key}", f"unknown key{hint} (known keys of {where}: {', '.join(spec)})"))
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
            value, message = _check_field(field, raw[key])
            if message:
                problems.append((name, message))
            else:
                out[key] = value
    return out


def _check_field(field: Field, value) -> tuple[Any, str | None]:
    value, message = _convert(field, value)
    if message is None and field.check is not None:
        message = field.check(value)
    return value, message


_KIND_NAMES = {"int": "an int", "float": "a number", "str": "a string", "bool": "a bool (True/False)"}


def _convert(field: Field, value) -> tuple[Any, str | None]:
    kind = field.kind
    if kind in ("ints", "floats"):
        element = Field(kind[:-1])
        if not isinstance(value, (tuple, list)):
            return value, f"must be a tuple of {kind[:-1]}s, got {value!r}"
        if field.length is not None and len(value) != field.length:
            return value, f"must hold {field.length} values, got {value!r}"
        if not value:
            return value, "must hold at least one value"
        converted = []
        for v in value:
            c, message = _convert(element, v)
            if message:
                return value, f"must be a tuple of {kind[:-1]}s, got {value!r}"
            converted.append(c)
        return tuple(converted), None
    wrong = f"must be {_KIND_NAMES[kind]}, got {type(value).__name__} {value!r}"
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (value, wrong)
    if kind == "str":
        return (value, None) if isinstance(value, str) else (value, wrong)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value, wrong
    if kind == "int":
        return (int(value), None) if isinstance(value, int) else (value, wrong)
    if not math.isfinite(value):
        return value, f"must be a finite number, got {value!r}"
    return float(value), None


def _cross_checks(c: dict) -> list[tuple[str, str]]:
    """Checks that involve more than one key."""
    problems = []
    train, data = c["train"], c["data"]
    if train["steps"] % train["steps_per_epoch"]:
        problems.append(
            ("config.train.steps", f"must be a multiple of train.steps_per_epoch ({train['steps_per_epoch']}), got {train['steps']}")
        )
    stop = train["stop_after_steps"]
    if stop and (stop % train["steps_per_epoch"] or stop >= train["steps"]):
        problems.append(
            (
                "config.train.stop_after_steps",
                f"must be 0 (off) or a multiple of train.steps_per_epoch ({train['steps_per_epoch']}) "
                f"below train.steps ({train['steps']}), got {stop}",
            )
        )
    if c["optimizer"]["warmup_steps"] >= train["steps"]:
        problems.append(
            ("config.optimizer.warmup_steps", f"must be below train.steps ({train['steps']}), got {c['optimizer']['warmup_steps']}")
        )
    if c["method"] in SSL_METHODS and not c["augment"]["enabled"]:
        problems.append(("config.augment.enabled", f"must be True for {c['method']}: it learns from two augmented views"))
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
    return problems


# ------------------------------------------------------------ files and json


def load_file(path: str, overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """``get_config()`` of the config file at ``path``, locked, with ``overrides`` applied.

    ``overrides`` maps dotted keys (``"optimizer.lr"``) to values, as
    ``--config.optimizer.lr=...`` does on the command line.

    Raises:
        ConfigError: a missing file, a file without ``get_config``, or an override of an unknown key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError([("--config", f"no config file at {path!r}")])
    spec = importlib.util.spec_from_file_location("tfcontrast_user_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError([("--config", f"{path!r} defines no get_config() function")])
    config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError([("--config", f"get_config() of {path!r} must return a ConfigDict, got {type(config).__name__}")])
    config.lock()
    problems = []
    for key, value in (overrides or {}).items():
        problem = unknown_key(config, key)
        if problem:
            problems.append(problem)
            continue
        *parents, leaf = key.split(".")
        section = config
        for part in parents:
            section = section[part]
        try:
            section[leaf] = value
        except (TypeError, ValueError) as err:
            problems.append((f"config.{key}", str(err)))
    if problems:
        raise ConfigError(problems)
    return config


def unknown_key(config: ml_collections.ConfigDict, key: str) -> tuple[str, str] | None:
    """``(key, message)`` when the dotted ``key`` is not in ``config``, else ``None``."""
    node: Any = config
    walked = "config"
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict):
            return (f"config.{key}", f"{walked} is a value, not a section")
        if part not in node:
            near = difflib.get_close_matches(part, list(node.keys()), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            return (f"config.{key}", f"unknown key{hint} (known keys of {walked}: {', '.join(node.keys())})")
        node = node[part]
        walked += f".{part}"
    return None


def to_json(config: ml_collections.ConfigDict | Mapping) -> str:
    """The config as sorted, indented JSON (tuples become lists)."""
    raw = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    return json.dumps(raw, indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    """Inverse of :func:`to_json`, validated (so lists turn back into tuples)."""
    return validate(json.loads(text))


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

"""Tiny run configs of every registered method, from the registry alone (no packaged config needed)."""

from tfcontrast import config as config_lib, registry

IMAGE_METHODS = tuple(name for name in registry.methods.names() if registry.data_kind_of(name).name == "images")
"""The methods that train on images (the image job); text methods are tested in tests/jobs/test_text.py."""


def tiny_config(method: str, steps: int = 4, **overrides):
    """``base(method)`` with the method's and its batch kind's registered examples, a small CNN and a few steps."""
    spec = registry.methods.get(method)
    kind = registry.batch_kinds.get(spec.batch)
    values = {
        "train.steps": steps,
        "train.steps_per_epoch": 2,
        "train.jit_compile": False,
        "optimizer.warmup_steps": 0,
        "encoder.features": 16,
        "encoder.width": 4,
        "eval.map_method": "pca",
        **{f"train.{key}": value for key, value in kind.example.items()},
        **{f"model.{key}": value for key, value in spec.example.items()},
        **overrides,
    }
    return config_lib.validate(config_lib.apply_overrides(config_lib.base(method), values))

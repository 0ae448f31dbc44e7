"""The registries: what they hold, how they refuse bad registrations, and a method added from outside."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfcontrast import config as config_lib, registry
from tfcontrast.fields import Float, Int
from tfcontrast.jobs import training as train_lib
from tfcontrast.models import EmbeddingModel, SiameseNetwork
from tfcontrast.models.ssl.base import TwoViewModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_built_in_entries_are_registered_by_their_own_modules():
    assert {"simclr", "byol", "directpred", "simsiam", "siamese", "embedding"} <= set(registry.methods.names())
    assert registry.methods.get("byol").module == "tfcontrast.models.ssl.byol"
    assert registry.methods.get("embedding").model is EmbeddingModel
    assert registry.methods.get("siamese").model is SiameseNetwork
    assert {"two_views", "class_balanced", "pairs"} <= set(registry.batch_kinds.names())
    assert registry.batch_kinds.get("pairs").module == "tfcontrast.jobs.batches"
    assert {"triplet", "supcon", "contrastive"} <= set(registry.losses.names())
    assert registry.losses.get("supcon").module == "tfcontrast.losses.ntxent"
    assert registry.losses.get("contrastive").inputs == "pairs" and registry.losses.get("triplet").inputs == "labels"
    assert {"multi_similarity", "circle", "pn", "soft_nearest_neighbor", "lifted_struct"} <= set(registry.losses.names())
    assert registry.losses.get("arcface").module == "tfcontrast.losses.margin_softmax"
    assert registry.losses.get("arcface").head and not registry.losses.get("triplet").head


def test_field_defaults_come_from_the_constructor_unless_given():
    byol = registry.methods.get("byol")
    assert byol.defaults() == {"projection_dim": 256, "hidden_dim": 4096, "tau_base": 0.99}
    assert registry.methods.get("simclr").fields["hidden_dim"].default is None  # SimCLR's "encoder width"
    assert registry.losses.get("triplet").defaults() == {
        "name": "triplet", "margin": 1.0, "mining": "semi-hard", "distance": "euclidean", "soft": False,
        "xbm_memory_size": 0, "xbm_warmup_steps": 0,
    }
    assert registry.batch_kinds.get("class_balanced").defaults() == {"classes_per_batch": 10, "samples_per_class": 8}


def test_unknown_names_list_the_known_ones_and_the_closest():
    with pytest.raises(ValueError, match=r"unknown method 'simclear'; did you mean 'simclr'\?; known: byol, "):
        registry.methods.get("simclear")
    with pytest.raises(ValueError, match=r"unknown loss 'tripplet'; did you mean 'triplet'"):
        registry.losses.get("tripplet")
    assert "simclr" in registry.methods and "simclear" not in registry.methods


class Tiny(TwoViewModel):
    def __init__(self, encoder, width: int = 4, **kwargs):
        super().__init__(encoder, **kwargs)
        self.width = width


def test_bad_registrations_are_refused_with_the_reason():
    fields = {"width": Int(doc="a width", min=1)}
    with pytest.raises(ValueError, match="lower-case identifier"):
        registry.register_method("My-Method", Tiny, batch="two_views", summary="s", fields=fields)
    with pytest.raises(ValueError, match=r"'simclr' is registered already \(by tfcontrast.models.ssl.simclr\)"):
        registry.register_method("simclr", Tiny, batch="two_views", summary="s", fields=fields)
    with pytest.raises(ValueError, match="`loss` and `default_loss` go together"):
        registry.register_method("tiny", Tiny, batch="two_views", summary="s", fields=fields, loss="labels")
    with pytest.raises(ValueError, match="`loss` must be None or one of"):
        registry.register_method("tiny", Tiny, batch="two_views", summary="s", fields=fields, loss="views",
                                 default_loss="x")
    with pytest.raises(ValueError, match=r"field 'depth' of Tiny has no default and Tiny\(\) has no argument 'depth'"):
        registry.register_method("tiny", Tiny, batch="two_views", summary="s", fields={"depth": Int(doc="d")})
    with pytest.raises(ValueError, match=r"batch kind 'tiny': fields \['size'\] need a default"):
        registry.register_batch_kind("tiny", summary="s", fields={"size": Int(doc="d")}, stream=None,
                                     examples_per_step=len)
    with pytest.raises(ValueError, match="`name` is the loss section's selector"):
        registry.register_loss("tiny", keras.losses.MeanSquaredError, inputs="labels", fields={"name": Int(1, "x")})
    with pytest.raises(ValueError, match="`inputs` must be one of"):
        registry.register_loss("tiny", keras.losses.MeanSquaredError, inputs="views", fields={})
    with pytest.raises(ValueError, match="a `head` loss reaches the model as `loss_head`; it takes no `model_kwargs`"):
        registry.register_loss("tiny", keras.losses.MeanSquaredError, inputs="labels", fields={}, head=True,
                               model_kwargs=lambda loss, context: {})
    assert "tiny" not in registry.methods and "tiny" not in registry.losses and "tiny" not in registry.batch_kinds


def test_a_module_in_a_searched_package_is_found_without_an_import_list(tmp_path, monkeypatch):
    package = tmp_path / "plugin_methods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny_loss.py").write_text(textwrap.dedent("""
        import keras
        from tfcontrast.fields import Float
        from tfcontrast.registry import register_loss

        class ScaledMSE(keras.losses.MeanSquaredError):
            '''Mean squared error, scaled.'''
            def __init__(self, scale=2.0, **kwargs):
                super().__init__(**kwargs)
                self.scale = scale

        register_loss("scaled_mse", ScaledMSE, inputs="labels", fields={"scale": Float(doc="factor", within="(0, inf)")})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "SEARCH_PACKAGES", registry.SEARCH_PACKAGES + ("plugin_methods",))
    monkeypatch.setattr(registry, "_discovered", False)
    try:
        spec = registry.losses.get("scaled_mse")
        assert spec.module == "plugin_methods.tiny_loss" and spec.defaults() == {"name": "scaled_mse", "scale": 2.0}
        assert spec.summary == "Mean squared error, scaled."
        assert "scaled_mse" in config_lib.loss_names("labels")
    finally:
        registry.losses.remove("scaled_mse")
        for name in ("plugin_methods", "plugin_methods.tiny_loss"):
            sys.modules.pop(name, None)


# --------------------------------------------------- a method from outside

TOY_METHOD = '''
"""Alignment and uniformity on the hypersphere (Wang and Isola, ICML 2020): a method defined outside tfcontrast."""

import keras
import tensorflow as tf

from tfcontrast.fields import Float, Int
from tfcontrast.models.ssl.base import TwoViewModel
from tfcontrast.registry import register_method


class AlignUniform(TwoViewModel):
    """L = E||f(x) - f(x+)||^2 + weight * log E exp(-2 ||f(x) - f(y)||^2), f on the unit sphere."""

    def __init__(self, encoder, projection_dim=32, weight=1.0, augment=None, collapse_metrics=True, **kwargs):
        super().__init__(encoder, augment=augment, collapse_metrics=collapse_metrics, **kwargs)
        self.projection_dim, self.weight = projection_dim, weight
        self.projector = keras.layers.Dense(projection_dim, name="projector")
        self.projector.build((None, self.feature_dim))
        self.built = True

    def two_view_loss(self, view_1, view_2, training):
        representations = self.encode_views(view_1, view_2, training)
        z = tf.math.l2_normalize(tf.cast(self.projector(representations), tf.float32), axis=1)
        a, b = tf.split(z, 2, axis=0)
        align = tf.reduce_mean(tf.reduce_sum(tf.square(a - b), axis=1))
        squared = tf.reduce_sum(tf.square(a[:, None, :] - a[None, :, :]), axis=-1)
        uniform = tf.math.log(tf.reduce_mean(tf.exp(-2.0 * squared)))
        return align + self.weight * uniform, z, representations


register_method(
    "align_uniform",
    AlignUniform,
    batch="two_views",
    summary="alignment + uniformity (Wang and Isola, ICML 2020)",
    fields={
        "projection_dim": Int(doc="projection width", min=1),
        "weight": Float(doc="weight of the uniformity term", within="[0, inf)"),
    },
    example={"projection_dim": 8},
)
'''

TOY_CONFIG = '''
"""Alignment and uniformity on the digits."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_method  # noqa: E402,F401  (registers align_uniform)

from tfcontrast.config import base  # noqa: E402


def get_config():
    c = base("align_uniform")
    c.model.projection_dim = 16  # projection width
    c.train.steps = 4  # a few steps
    c.train.steps_per_epoch = 2  # two epochs
    c.train.batch_size = 32  # images per step
    c.optimizer.warmup_steps = 0  # no warm-up
    c.encoder.features = 8  # a tiny CNN
    c.encoder.width = 4  # a tiny CNN
    c.eval.map_method = "pca"  # fast map
    return c
'''


@pytest.fixture
def toy_method_files(tmp_path):
    (tmp_path / "toy_method.py").write_text(TOY_METHOD)
    (tmp_path / "align_uniform_digits.py").write_text(TOY_CONFIG)
    path = sys.path[:]
    yield tmp_path
    registry.methods.remove("align_uniform")
    sys.modules.pop("toy_method", None)
    sys.path[:] = path


def test_a_method_registered_in_its_own_file_trains_and_evaluates_through_the_job(toy_method_files):
    config = config_lib.validate(config_lib.load(str(toy_method_files / "align_uniform_digits.py")))
    assert config.method == "align_uniform" and dict(config.model) == {"projection_dim": 16, "weight": 1.0}
    lines = []
    summary = train_lib.train(config, str(toy_method_files / "run"), out=lines.append)
    assert summary["status"] == "done" and summary["method"] == "align_uniform"
    assert summary["train"]["steps_done"] == 4 and np.isfinite(summary["train"]["final_metrics"]["loss"])
    assert summary["train"]["examples_per_step"] == 32  # from its batch kind
    assert summary["evaluation"]["settings"]["embedding_dim"] == 8  # the encoder, the default embedder
    assert 0.0 <= summary["evaluation"]["knn_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_method_registered_in_its_own_file_trains_through_the_command(toy_method_files):
    workdir = toy_method_files / "cli_run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "tfcontrast.cli", "train", "--config", str(toy_method_files / "align_uniform_digits.py"),
         "--workdir", str(workdir), "--config.train.stop_after_steps=2", "--config.model.weight=0.5"],
        capture_output=True, text=True, env=env, cwd=str(toy_method_files), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((workdir / "config.json").read_text())
    assert written["method"] == "align_uniform" and written["model"] == {"projection_dim": 16, "weight": 0.5}
    assert json.loads((workdir / "summary.json").read_text())["train"]["steps_done"] == 2

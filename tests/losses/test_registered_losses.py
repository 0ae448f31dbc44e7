"""Every registered loss: its config section builds the class it names, with the section's values.

The registrations live in each loss's own module (``register_loss`` after the
class); this file checks them all through the registry, as
``tests/models/test_registered_methods.py`` does for methods. Training every
loss by name through the job is in ``tests/test_job.py``.
"""

import re

import keras
import pytest

import tfcontrast as tfc
from tfcontrast import registry
from tfcontrast.losses import xbm
from tfcontrast.losses.base import SimilarityLoss
from tfcontrast.losses.class_weights import ClassWeightLoss

CONTEXT = registry.BuildContext(input_shape=(8, 8, 1), num_classes=5)
NAMES = registry.losses.names()

# Public loss classes that are deliberately not registered, and why (docs/losses.md, "Losses by name").
NOT_BY_NAME = {
    tfc.losses.NpairsLoss: "takes an anchor x positive similarity matrix, not (labels, embeddings)",
    tfc.losses.NpairsMultilabelLoss: "takes multi-hot rows and a similarity matrix",
    tfc.losses.TripletSemiHardLoss: "is `triplet` with mining=semi-hard (TF Addons' distance names)",
    tfc.losses.TripletHardLoss: "is `triplet` with mining=hard on P x K batches (every anchor has a positive)",
    tfc.losses.XBM: "is the xbm_memory_size / xbm_warmup_steps keys of every loss that takes extra candidates",
}


def section_of(spec, **changes) -> dict:
    return {key: value for key, value in {**spec.defaults(), **changes}.items() if key != "name"}


def takes_candidates(cls) -> bool:
    return issubclass(cls, SimilarityLoss) and cls.from_candidates is not None


@pytest.mark.parametrize("name", NAMES)
def test_the_defaults_build_the_registered_class_with_its_own_defaults(name):
    spec = registry.losses.get(name)
    assert spec.module == spec.loss.__module__  # registered in the file that defines it
    assert re.search(r"\b(19|20)\d\d\b", spec.summary), f"{name}: the summary cites the paper and its year"
    built = spec.build(section_of(spec), CONTEXT)
    if spec.head:
        assert type(built) is spec.loss and built.num_classes == CONTEXT.num_classes and not built.built
        plain = spec.loss(CONTEXT.num_classes)
    else:
        assert type(built) is spec.loss
        plain = spec.loss()
    assert built.get_config() == plain.get_config()
    for key in set(section_of(spec)) - set(xbm.MEMORY_FIELDS):  # every field is a constructor argument
        assert built.get_config()[key] == section_of(spec)[key]


@pytest.mark.parametrize("name", NAMES)
def test_a_loss_is_a_model_head_exactly_when_it_owns_trainable_weights(name):
    spec = registry.losses.get(name)
    assert spec.head == issubclass(spec.loss, ClassWeightLoss)
    if spec.head:
        assert spec.inputs == "labels"
        with pytest.raises(ValueError, match="one weight vector per class: it needs labelled training data"):
            spec.build(section_of(spec), registry.BuildContext(input_shape=(8, 8, 1)))
    else:
        assert issubclass(spec.loss, keras.losses.Loss)


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_that_takes_extra_candidates_has_the_memory_keys_and_builds_xbm_with_them(name):
    spec = registry.losses.get(name)
    assert (set(xbm.MEMORY_FIELDS) <= set(spec.fields)) == takes_candidates(spec.loss)
    if not takes_candidates(spec.loss):
        return
    assert type(spec.build(section_of(spec, xbm_warmup_steps=7), CONTEXT)) is spec.loss  # no memory: the plain loss
    wrapped = spec.build(section_of(spec, xbm_memory_size=96, xbm_warmup_steps=7), CONTEXT)
    assert isinstance(wrapped, tfc.losses.XBM) and (wrapped.memory_size, wrapped.warmup_steps) == (96, 7)
    assert type(wrapped.loss) is spec.loss and wrapped.loss.get_config() == spec.loss().get_config()


def test_every_public_label_loss_is_registered_or_documented_as_not_by_name():
    registered = {spec.loss for spec in registry.losses}
    label_losses = {
        cls for cls in vars(tfc.losses).values()
        if isinstance(cls, type) and issubclass(cls, (SimilarityLoss, ClassWeightLoss))
        and cls not in (SimilarityLoss, ClassWeightLoss)
    }
    assert label_losses - registered == set(NOT_BY_NAME)
    assert not registered & set(NOT_BY_NAME)


# The packaged configs that train these losses with `tfcontrast train --config NAME` (configs/*.py).
PACKAGED = {
    "multisimilarity_digits": ({"name": "multi_similarity"}, tfc.losses.MultiSimilarityLoss),
    "xbm_digits": ({"name": "multi_similarity", "xbm_memory_size": 640, "xbm_warmup_steps": 100}, tfc.losses.XBM),
    "arcface_digits": ({"name": "arcface", "margin": 0.5, "scale": 16.0}, tfc.losses.ArcFaceLoss),
    "proxy_anchor_digits": ({"name": "proxy_anchor", "margin": 0.1, "alpha": 32.0}, tfc.losses.ProxyAnchorLoss),
}


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_a_packaged_config_builds_the_model_with_the_loss_it_names(name):
    from tfcontrast import config as config_lib
    from tfcontrast.jobs import components

    section, cls = PACKAGED[name]
    config = config_lib.validate(config_lib.load(name))
    assert config.method == "embedding" and {k: config.loss[k] for k in section} == section
    assert {k: v for k, v in dict(config.loss).items() if k not in section} == {
        k: v for k, v in registry.losses.get(section["name"]).defaults().items() if k not in section
    }  # every other key: the loss's registered default
    model = components.initial_model(config, (8, 8, 1), 10)
    if registry.losses.get(section["name"]).head:
        assert model.loss is None and type(model.loss_head) is cls
        assert tuple(model.loss_head.class_weights.shape) == (10, config.model.embedding_dim)  # classes x width 64
        assert all(getattr(model.loss_head, k) == v for k, v in section.items() if k != "name")
    else:
        assert type(model.loss) is cls
        if cls is tfc.losses.XBM:
            assert (model.loss.memory_size, model.loss.warmup_steps) == (640, 100)
            assert type(model.loss.loss) is tfc.losses.MultiSimilarityLoss

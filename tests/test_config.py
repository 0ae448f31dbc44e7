"""Config loading and validation: every shipped config is valid; every kind of bad config is named."""

import glob
import json
import os

import ml_collections
import numpy as np
import pytest

from tfcontrast import config as config_lib, packaged_configs, registry

from .tiny_configs import IMAGE_METHODS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py")) if not p.endswith("__init__.py"))
RUN_CONFIGS = [p for p in CONFIGS if not p.endswith("base.py")]
DIGITS_CONFIGS = [p for p in CONFIGS if p.endswith("_digits.py")]


def load(name="directpred_digits", **overrides):
    return config_lib.load_file(os.path.join(ROOT, "configs", f"{name}.py"), overrides)


def problems(config) -> dict:
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.validate(config)
    return dict(info.value.problems)


def test_every_registered_method_has_a_packaged_digits_config_and_there_is_a_template():
    methods = {config_lib.validate(config_lib.load_file(p)).method for p in DIGITS_CONFIGS}
    assert methods == set(IMAGE_METHODS)
    assert "custom_template.py" in {os.path.basename(p) for p in CONFIGS}


@pytest.mark.parametrize("path", DIGITS_CONFIGS, ids=os.path.basename)
def test_digits_configs_load_and_validate(path):
    config = config_lib.validate(config_lib.load_file(path))
    spec = registry.methods.get(config.method)
    assert set(config.model) == set(spec.fields)
    assert set(registry.batch_kinds.get(spec.batch).fields) <= set(config.train)
    assert ("loss" in config) == (spec.loss is not None)
    assert config.data.name == "digits" and config.train.steps % config.train.steps_per_epoch == 0


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_key_a_config_sets_is_documented_with_a_comment(path):
    """Each `c.section.key = value` line carries a `#` comment (the issue asks for it)."""
    lines = [l.strip() for l in open(path, encoding="utf-8") if l.strip().startswith("c.")]
    assignments = [l for l in lines if "ConfigDict()" not in l]
    undocumented = [l for l in assignments if "  # " not in l]
    assert not undocumented, undocumented


def test_base_sets_and_documents_every_shared_key():
    shared = config_lib._run_config_file(os.path.join(ROOT, "configs", "base.py")).to_dict()
    assert set(shared) == set(config_lib.COMMON_FIELDS)
    for section, fields in config_lib.COMMON_FIELDS.items():
        if isinstance(fields, dict):
            assert set(shared[section]) == set(fields), section
    text = open(os.path.join(ROOT, "configs", "base.py"), encoding="utf-8").read()
    assert text.count("  # ") >= sum(len(f) if isinstance(f, dict) else 1 for f in config_lib.COMMON_FIELDS.values())


def test_every_registered_key_has_a_doc_and_a_default_that_validates():
    for spec in list(registry.methods) + list(registry.batch_kinds) + list(registry.losses):
        for key, field in spec.fields.items():
            assert field.doc, f"{spec.name}.{key} has no doc"
    for kind in registry.data_kinds:
        for section, fields in kind.sections.items():
            for key, field in (fields or {}).items():
                assert field.doc, f"data kind {kind.name}: {section}.{key} has no doc"
    for name in registry.methods.names():  # base(method) alone is a valid config: defaults pass their own checks
        config_lib.validate(config_lib.base(name))


def test_base_adds_the_registered_sections_of_the_method():
    byol = config_lib.base("byol")
    assert byol.method == "byol" and dict(byol.model) == {"projection_dim": 256, "hidden_dim": 4096, "tau_base": 0.99}
    assert byol.train.batch_size == 256 and "loss" not in byol
    embedding = config_lib.base("embedding")
    assert dict(embedding.loss) == {
        "name": "triplet", "margin": 1.0, "mining": "semi-hard", "distance": "euclidean", "soft": False, "xbm_memory_size": 0, "xbm_warmup_steps": 0,
    }
    assert embedding.train.classes_per_batch == 10 and embedding.train.samples_per_class == 8
    assert embedding.model.embedding_dim is None
    with pytest.raises(ValueError, match="unknown method 'bayol'; did you mean 'byol'"):
        config_lib.base("bayol")


def test_configs_load_by_name_or_path_alike():
    by_name = config_lib.validate(config_lib.load("directpred_digits", {"train.steps": 220}))
    by_path = config_lib.validate(config_lib.load(os.path.join(ROOT, "configs", "directpred_digits.py"), {"train.steps": 220}))
    assert by_name.to_dict() == by_path.to_dict() and by_name.train.steps == 220
    assert config_lib.load("directpred_digits.py").to_dict() == load().to_dict()
    with pytest.raises(config_lib.ConfigError, match=r"the packaged config of that name is --config directpred_digits"):
        config_lib.load("elsewhere/directpred_digits.py")
    with pytest.raises(config_lib.ConfigError, match=r"no config file at 'nope', and no packaged config .*simclr_digits"):
        config_lib.load("nope")


def test_a_config_copied_out_runs_from_any_folder(tmp_path, monkeypatch):
    """What `tfcontrast configs show NAME > my.py` gives: it finds its base wherever it is."""
    for name in ("supcon_digits", "siamese_digits", "simclr_digits"):
        (tmp_path / "my.py").write_text(packaged_configs.text(name))
        monkeypatch.chdir(tmp_path)
        copied = config_lib.validate(config_lib.load("my.py"))
        assert copied.to_dict() == config_lib.validate(config_lib.load(name)).to_dict()


def test_a_new_loss_name_resets_the_loss_section_before_the_other_loss_overrides():
    # the temperature comes first here: the name still applies first
    supcon = config_lib.validate(load("triplet_digits", **{"loss.temperature": 0.2, "loss.name": "supcon"}))
    no_memory = {"xbm_memory_size": 0, "xbm_warmup_steps": 0}
    assert supcon.method == "embedding" and dict(supcon.loss) == {"name": "supcon", "temperature": 0.2, **no_memory}
    assert dict(config_lib.validate(load("triplet_digits", **{"loss.name": "supcon"})).loss) == {
        "name": "supcon", "temperature": 0.1, **no_memory  # SupCon's registered defaults, nothing of the triplet section
    }
    # the same name keeps the config's values
    assert config_lib.validate(load("triplet_digits", **{"loss.name": "triplet"})).loss.margin == 0.2
    with pytest.raises(config_lib.ConfigError) as info:
        load("triplet_digits", **{"loss.name": "supcon", "loss.margin": 0.3, "loss.temperatur": 0.3})
    found = dict(info.value.problems)
    assert found["config.loss.margin"] == (
        "unknown key (known keys of config.loss: name, temperature, xbm_memory_size, xbm_warmup_steps)"
    )
    assert "did you mean 'temperature'?" in found["config.loss.temperatur"]
    with pytest.raises(config_lib.ConfigError, match=r"config.loss.name: unknown loss 'supconn'; did you mean 'supcon'"):
        load("triplet_digits", **{"loss.name": "supconn"})


def test_a_loss_of_another_kind_is_named():
    config = load("triplet_digits").to_dict()
    config["loss"] = {"name": "contrastive", "margin": 1.0}  # a pair loss on a label-trained model
    label_losses = config_lib.loss_names("labels")
    assert {"supcon", "triplet", "arcface", "multi_similarity"} <= set(label_losses) and "contrastive" not in label_losses
    assert problems(config) == {"config.loss.name": f"must be one of {label_losses}, got 'contrastive'"}
    config["loss"] = {"name": "supcon", "margin": 1.0, "xbm_memory_size": 0, "xbm_warmup_steps": 0}
    assert problems(config) == {
        "config.loss.margin": "unknown key (known keys of config.loss: name, temperature, xbm_memory_size, xbm_warmup_steps)",
        "config.loss.temperature": "missing",
    }
    config = load("simclr_digits").to_dict()
    config["loss"] = {"name": "supcon", "temperature": 0.1}  # SimCLR computes its own loss
    assert problems(config)["config.loss"].startswith("unknown key")


def test_template_needs_a_data_path_and_accepts_a_folder_or_npz(tmp_path):
    assert problems(load("custom_template"))["config.data.path"].startswith("is required for data.name='image_folder'")
    (tmp_path / "cats").mkdir()
    folder = config_lib.validate(load("custom_template", **{"data.path": str(tmp_path)}))
    assert folder.data.path == str(tmp_path)
    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.zeros((4, 8, 8, 1), np.float32), y=np.arange(4))
    assert config_lib.validate(load("custom_template", **{"data.name": "npz", "data.path": str(npz)})).data.name == "npz"
    # a folder given as an npz file, and a path that does not exist
    assert "existing .npz file" in problems(load("custom_template", **{"data.name": "npz", "data.path": str(tmp_path)}))["config.data.path"]
    missing = problems(load("custom_template", **{"data.path": str(tmp_path / "nope")}))
    assert "existing folder" in missing["config.data.path"]


def test_unknown_keys_are_named_with_a_suggestion():
    config = load().to_dict()
    config["optimizer"]["lrr"] = 0.1
    config["model"]["temperature"] = 0.2  # a SimCLR key in a DirectPred config
    config["extra"] = 1
    found = problems(config)
    assert "did you mean 'lr'?" in found["config.optimizer.lrr"]
    assert found["config.model.temperature"].startswith("unknown key")
    assert "known keys of config.model: projection_dim" in found["config.model.temperature"]
    assert found["config.extra"].startswith("unknown key")


def test_override_of_an_unknown_key_fails_at_load():
    with pytest.raises(config_lib.ConfigError) as info:
        load(**{"optimizer.lrr": 0.1, "trainn.steps": 3})
    found = dict(info.value.problems)
    assert "did you mean 'lr'?" in found["config.optimizer.lrr"]
    assert "did you mean 'train'?" in found["config.trainn.steps"]


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("optimizer", "lr", "0.1", "must be a number, got str '0.1'"),
        ("optimizer", "lr", -0.1, "must be > 0, got -0.1"),
        ("optimizer", "lr", float("nan"), "must be a finite number"),
        ("train", "steps", 1.5, "must be an int, got float 1.5"),
        ("train", "jit_compile", 1, "must be a bool (True/False), got int 1"),
        ("train", "batch_size", True, "must be an int, got bool True"),
        ("encoder", "name", "vgg", "must be one of ('digits_cnn', 'mlp', 'resnet18'), got 'vgg'"),
        ("augment", "jitter_prob", 1.5, "must lie in [0, 1], got 1.5"),
        ("augment", "crop_scale", (0.9, 0.5), "0 < min <= max <= 1"),
        ("data", "image_size", (8,), "must hold 2 values"),
        ("model", "rho", 1.0, "must lie in [0, 1), got 1.0"),
        ("data", "path", "/somewhere", "must be '' for data.name='digits'"),
    ],
)
def test_wrong_types_and_bad_values_name_the_key(section, key, value, message):
    config = load().to_dict()
    (config[section] if section else config)[key] = value
    name = f"config.{section}.{key}" if section else f"config.{key}"
    found = problems(config)
    assert message in found[name], found


def test_an_unknown_method_lists_the_registered_ones():
    config = load().to_dict()
    config["method"] = "mocov9"
    assert problems(config) == {"config.method": f"must be one of {registry.methods.names()}, got 'mocov9'"}
    del config["method"]
    assert problems(config) == {"config.method": f"must be one of {registry.methods.names()}, missing"}


def test_missing_key_and_cross_checks():
    config = load().to_dict()
    del config["train"]["batch_size"]
    assert problems(config) == {"config.train.batch_size": "missing"}
    config = load(**{"train.steps": 120, "train.steps_per_epoch": 50, "optimizer.warmup_steps": 10}).to_dict()
    assert "multiple of train.steps_per_epoch (50)" in problems(config)["config.train.steps"]
    found = problems(load(**{"train.steps": 500, "train.steps_per_epoch": 50, "optimizer.warmup_steps": 500,
                            "train.stop_after_steps": 30}))
    assert "below train.steps (500)" in found["config.optimizer.warmup_steps"]
    assert "multiple of train.steps_per_epoch (50)" in found["config.train.stop_after_steps"]
    assert "must be True for directpred" in problems(load(**{"augment.enabled": False}))["config.augment.enabled"]


def test_all_problems_are_reported_at_once():
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.validate(load(**{"optimizer.lr": -1.0, "encoder.name": "vgg"}))
    text = str(info.value)
    assert text.startswith("invalid config (2 problems)")
    assert "config.optimizer.lr: must be > 0" in text and "config.encoder.name: must be one of" in text


def test_validated_config_is_locked_normalised_and_round_trips_through_json():
    config = config_lib.validate(load(**{"optimizer.lr": 1}))
    assert isinstance(config.optimizer.lr, float) and config.optimizer.lr == 1.0
    assert config.eval.recall_ks == (1, 5, 10)
    with pytest.raises(AttributeError):
        config.optimizer.lrr = 0.1  # locked: no new keys
    text = config_lib.to_json(config)
    assert json.loads(text)["eval"]["recall_ks"] == [1, 5, 10]
    assert config_lib.from_json(text).to_dict() == config.to_dict()


def test_differences_ignore_only_execution_keys():
    a = config_lib.validate(load()).to_dict()
    b = config_lib.validate(load(**{"train.stop_after_steps": 220, "model.rho": 0.5})).to_dict()
    assert config_lib.differences(a, b) == ["model.rho"]
    assert config_lib.differences(a, a) == []


def test_load_file_errors(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="no config file"):
        config_lib.load_file(str(tmp_path / "missing.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(config_lib.ConfigError, match="defines no get_config"):
        config_lib.load_file(str(bad))
    (tmp_path / "notes").write_text("x = 1\n")
    with pytest.raises(config_lib.ConfigError, match="is not a Python file"):
        config_lib.load_file(str(tmp_path / "notes"))
    assert isinstance(load(), ml_collections.ConfigDict)

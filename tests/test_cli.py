"""The ``tfcontrast`` command end to end, in subprocesses, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfcontrast import cli, config as config_lib, data, jobs, packaged_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "directpred_digits.py")
TINY = [
    "--config.train.steps=4",
    "--config.train.steps_per_epoch=2",
    "--config.train.batch_size=64",
    "--config.train.jit_compile=False",
    "--config.optimizer.warmup_steps=0",
    "--config.encoder.features=16",
    "--config.encoder.width=8",
    "--config.model.projection_dim=16",
    "--config.model.hidden_dim=32",
    "--config.eval.map_method=pca",
    "--config.index.lookup_k=4",
]


def tfcontrast(*args, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "tfcontrast.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny default run, trained through the command line."""
    workdir = tmp_path_factory.mktemp("cli") / "run"
    result = tfcontrast("train", "--config", CONFIG, "--workdir", str(workdir), *TINY)
    return workdir, result


def test_train_writes_every_artefact(run):
    workdir, result = run
    for path in (
        "config.json",
        "checkpoint/state.json",
        "model/embedder.keras",
        "index/manifest.json",
        "export/saved_model.pb",
        "plots/training_curves.png",
        "plots/embedding_map.png",
        "plots/neighbors.png",
        "plots/spectrum.png",
        "summary.json",
    ):
        assert (workdir / path).is_file(), path
    assert any(name.startswith("events.out.tfevents") for _, _, names in os.walk(workdir / "logs") for name in names)
    assert not [p for p in os.listdir(workdir) if "tmp" in p or p.endswith(".previous")]  # no temporaries left

    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["method"] == "directpred"
    assert summary["config"] == json.loads((workdir / "config.json").read_text())
    assert summary["config"]["train"]["steps"] == summary["train"]["steps_done"] == 4
    assert summary["train"]["images_per_second"] > 0 and summary["train"]["wall_time_s"] > 0
    ev = summary["evaluation"]
    for scores in (ev, ev["baselines"]["random_encoder"], ev["baselines"]["raw_pixels"], ev["nuisance"]["trained"]):
        for key in ("knn_accuracy", "probe_accuracy", "recall@1", "recall@5", "recall@10", "map@r"):
            assert 0.0 <= scores[key] <= 1.0, key
        assert scores["recall@1"] <= scores["recall@5"] <= scores["recall@10"]
    # 10 balanced classes: anything that learned from the digits is far above chance (0.1)
    assert ev["baselines"]["raw_pixels"]["knn_accuracy"] > 0.9 and ev["knn_accuracy"] > 0.5
    assert ev["settings"] == {
        "knn_k": 20, "recall_ks": [1, 5, 10], "metric": "cosine", "backend": "exact",
        "embedding_dim": 16, "n_train": 1437, "n_test": 360,
        "raw_pixels": {"pixels": 64, "dim": 64, "projection": None},
        "embedding_map": {"method": "pca", "tsne_max_points": 2000},
    }
    assert 1.0 <= ev["collapse"]["effective_rank"] <= 16
    # the progress bar and the headline were printed
    assert "Epoch 2/2" in result.stdout and "kNN@20 accuracy" in result.stdout


def test_lookup_prints_k_neighbours(run, tmp_path):
    workdir, _ = run
    train = data.load_digits().x_train
    np.save(tmp_path / "q.npy", train[[7, 11]])  # two training images: each is its own nearest neighbour
    out = tfcontrast("lookup", "--workdir", str(workdir), "--query", str(tmp_path / "q.npy"), "--k", "3").stdout
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 6, out
    assert [int(r[1]) for r in rows[0::3]] == [7, 11]  # rank 1 ids
    assert float(rows[0][3]) < 1e-4 and float(rows[3][3]) < 1e-4  # distance ~0 to itself
    distances = [float(r[3]) for r in rows]
    assert distances[:3] == sorted(distances[:3]) and distances[3:] == sorted(distances[3:])


def test_exported_lookup_loads_without_tfcontrast(run, tmp_path):
    workdir, _ = run
    queries = data.load_digits().x_train[[7, 11]]
    np.save(tmp_path / "q.npy", queries)
    script = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"model = tf.saved_model.load({str(workdir / 'export')!r})\n"
        f"out = model.signatures['lookup'](inputs=tf.constant(np.load({str(tmp_path / 'q.npy')!r})))\n"
        "emb = model.signatures['embed'](inputs=tf.zeros([1, 8, 8, 1]))['embeddings']\n"
        "assert not any(m.startswith('tfcontrast') for m in sys.modules), 'tfcontrast was imported'\n"
        "print(json.dumps({'ids': out['ids'].numpy().tolist(), 'labels': out['labels'].numpy().tolist(),"
        " 'dim': int(emb.shape[1])}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=str(tmp_path), env=dict(env, TF_CPP_MIN_LOG_LEVEL="3")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    y_train = data.load_digits().y_train
    assert found["dim"] == 16 and len(found["ids"][0]) == 4  # index.lookup_k
    assert [ids[0] for ids in found["ids"]] == [7, 11]
    assert found["labels"][0][0] == y_train[7] and found["labels"][1][0] == y_train[11]


def test_train_again_does_not_retrain_and_evaluate_rewrites_the_summary(run):
    workdir, _ = run
    state = (workdir / "checkpoint" / "state.json").read_text()
    lines = []
    config = config_lib.from_json((workdir / "config.json").read_text())
    jobs.train(config, str(workdir), out=lines.append)  # what `tfcontrast train` runs, in-process
    assert "already trained (4 steps)" in lines[0]
    assert (workdir / "checkpoint" / "state.json").read_text() == state

    before = json.loads((workdir / "summary.json").read_text())
    os.remove(workdir / "summary.json")
    tfcontrast("evaluate", "--workdir", str(workdir))
    after = json.loads((workdir / "summary.json").read_text())
    for key in ("knn_accuracy", "probe_accuracy", "recall@1", "map@r"):  # deterministic from the saved model
        assert after["evaluation"][key] == before["evaluation"][key]
    assert after["evaluation"]["baselines"] == before["evaluation"]["baselines"]


def test_config_errors_are_readable_and_write_nothing(tmp_path):
    workdir = tmp_path / "never"
    unknown = tfcontrast("train", "--config", CONFIG, "--workdir", str(workdir), "--config.optimizer.lrr=1", check=False)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "config.optimizer.lrr: unknown key; did you mean 'lr'?" in unknown.stderr

    # a packaged config by name; a new loss name resets the loss section before the other loss keys apply
    switched = tfcontrast(
        "train", "--config", "triplet_digits", "--workdir", str(workdir), "--config.loss.name=supcon",
        "--config.loss.margin=0.3", check=False,
    )
    assert switched.returncode == 2 and "Traceback" not in switched.stderr
    assert "config.loss.margin: unknown key (known keys of config.loss: name, temperature)" in switched.stderr

    values = tfcontrast(
        "train", "--config", CONFIG, "--workdir", str(workdir), "--config.optimizer.lr=-0.1", "--config.encoder.name=vgg",
        check=False,
    )
    assert values.returncode == 2 and "Traceback" not in values.stderr
    assert "config.optimizer.lr: must be > 0, got -0.1" in values.stderr
    assert "config.encoder.name: must be one of ('digits_cnn', 'mlp', 'resnet18'), got 'vgg'" in values.stderr
    assert not workdir.exists()


def test_usage_errors(tmp_path):
    missing = tfcontrast("train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "w"), check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"--config: no config file at '{tmp_path / 'nope.py'}'" in missing.stderr
    with pytest.raises(cli.UsageError, match="expected one command of train, evaluate, lookup, configs, got nothing"):
        cli._command(["tfcontrast"])
    with pytest.raises(cli.UsageError, match="got fit"):
        cli._command(["tfcontrast", "fit"])
    with pytest.raises(ValueError, match=r"holds no run \(no config.json\)"):
        jobs.evaluate(str(tmp_path))


def test_overrides_are_parsed_typed_and_applied_as_the_command_does():
    """``--config NAME`` plus overrides, through the command's own parsing (in-process)."""
    positional, overrides = cli._parse_flags([
        "tfcontrast", "train", "--config", "triplet_digits", "--workdir", "w", "--config.loss.name=supcon",
        "--config.loss.temperature=0.05", "--config.train.jit_compile", "--noconfig.augment.enabled",
        "--config.eval.recall_ks=(1, 2)", "--config.model.embedding_dim=None",
    ])
    assert positional == ["tfcontrast", "train"] and cli._command(positional) == "train"
    config = cli._train_config(overrides)
    assert config.method == "embedding" and dict(config.loss) == {"name": "supcon", "temperature": 0.05}
    assert config.train.jit_compile is True and config.augment.enabled is False
    assert config.eval.recall_ks == (1, 2) and config.model.embedding_dim is None
    _, bad = cli._parse_flags(["tfcontrast", "train", "--config", "directpred_digits", "--config.optimizer.lr=fast"])
    with pytest.raises(config_lib.ConfigError, match=r"config.optimizer.lr: must be a number, got str 'fast'"):
        cli._train_config(bad)


def test_configs_lists_every_packaged_config_and_shows_one():
    listed = tfcontrast("configs").stdout
    for name in packaged_configs.names():
        assert f"  {name}  " in listed or f"  {name} " in listed, name
    assert "DirectPred on the bundled digits: the default run." in listed
    assert cli._configs(["show", "supcon_digits"]) == packaged_configs.text("supcon_digits").rstrip("\n")
    with pytest.raises(cli.UsageError, match="no packaged config 'nope'; packaged: base, byol_digits"):
        cli._configs(["show", "nope"])
    assert cli._command(["tfcontrast", "configs", "show", "x"]) == "configs"
    with pytest.raises(cli.UsageError):
        cli._command(["tfcontrast", "configs", "list", "x"])

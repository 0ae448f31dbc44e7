"""The ``tfcontrast`` command end to end, in subprocesses, as a user runs it."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfcontrast import cli, config as config_lib, data, jobs, packaged_configs
from tfcontrast.jobs import progress

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
    # stdout is a pipe here: one line per epoch (no progress bar redrawn per step), then the headline
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0].rsplit(" ", 2)[0] for line in epoch_lines] == ["epoch 1/2 (step 2/4)", "epoch 2/2 (step 4/4)"]
    assert all("loss " in line and "proj_std " in line and "erank " in line for line in epoch_lines)
    assert "Epoch 1/2" not in result.stdout and "\r" not in result.stdout and "━" not in result.stdout
    assert "kNN@20 accuracy" in result.stdout
    # the input contract of the bundled digits, in the run folder and the summary; a healthy run has no warning
    contract = json.loads((workdir / "input_contract.json").read_text())
    assert contract == summary["input_contract"] == {
        "format": "tfcontrast.input_contract", "version": 1, "shape": [8, 8, 1], "dtype": "float32",
        "range": [0.0, 1.0], "scale": 16.0,
    }
    assert summary["warnings"] == [] and "warning:" not in result.stdout


def test_lookup_prints_k_neighbours(run, tmp_path, capsys):
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
    assert "(id = row number in the run's training split)" in out and "train row" in out

    # raw digits (0-16), as sklearn ships them: refused with the range the model was trained on
    np.save(tmp_path / "raw.npy", np.round(train[[7, 11]] * 16))
    # (in-process, through the command's own parsing and error path: a subprocess costs a TensorFlow start)
    parsed = cli._parse_flags(["tfcontrast", "lookup", "--workdir", str(workdir), "--query", str(tmp_path / "raw.npy")])
    with pytest.raises(SystemExit) as stopped:
        cli.main(parsed)
    refused = capsys.readouterr()
    assert stopped.value.code == 1 and "Traceback" not in refused.err and refused.out == ""
    assert refused.err.strip().splitlines()[-1] == (
        "tfcontrast: error: `query` holds values in [0, 16], outside [0, 1]: the model was trained on float32 inputs "
        "of shape [8, 8, 1] with values in [0, 1] (raw values divided by 16). Raw values in [0, 16] must be divided "
        "by 16 first (--raw does it)."
    )


def test_lookup_scales_raw_queries_and_says_when_it_returns_fewer(run, tmp_path):
    workdir, _ = run
    train = data.load_digits().x_train
    np.save(tmp_path / "q.npy", train[:5])
    np.save(tmp_path / "raw.npy", np.round(train[:5] * 16))
    np.save(tmp_path / "raw8.npy", np.round(train[:5] * 16).astype(np.uint8))  # uint8: raw without --raw
    scaled = jobs.lookup(str(workdir), str(tmp_path / "q.npy"), k=4)
    for name, raw in (("raw.npy", True), ("raw8.npy", False)):
        got = jobs.lookup(str(workdir), str(tmp_path / name), k=4, raw=raw)
        np.testing.assert_array_equal(got.ids, scaled.ids)
        np.testing.assert_allclose(got.distances, scaled.distances, atol=1e-6)
    np.testing.assert_array_equal(scaled.ids[:, 0], np.arange(5))
    with pytest.raises(ValueError, match=r"--raw applies to .npy queries"):
        (tmp_path / "q.png").write_bytes(b"")
        jobs.lookup(str(workdir), str(tmp_path / "q.png"), raw=True)

    everything = jobs.lookup(str(workdir), str(tmp_path / "q.npy"), k=5000)
    assert everything.ids.shape == (5, 1437) and everything.index_size == 1437
    assert sorted(everything.ids[0]) == list(range(1437))
    text = jobs.format_neighbours(everything, "q.npy")
    assert text.splitlines()[0] == "(asked for 5000 neighbours; the index holds 1437 entries, so 1437 are listed)"
    assert "query 0 of q.npy: the 1437 nearest training examples" in text


@pytest.mark.slow  # ~30 s; tests/test_export.py loads an export without tfcontrast in the default run
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
    assert "config.loss.margin: unknown key (known keys of config.loss: name, temperature, xbm_memory_size, xbm_warmup_steps)" in switched.stderr

    values = tfcontrast(
        "train", "--config", CONFIG, "--workdir", str(workdir), "--config.optimizer.lr=-0.1", "--config.encoder.name=vgg",
        check=False,
    )
    assert values.returncode == 2 and "Traceback" not in values.stderr
    assert "config.optimizer.lr: must be > 0, got -0.1" in values.stderr
    assert "config.encoder.name: must be one of ('digits_cnn', 'mlp', 'resnet18'), got 'vgg'" in values.stderr
    assert not workdir.exists()


def fast(*args, cwd=None) -> tuple[subprocess.CompletedProcess, bool, float]:
    """``tfcontrast ARGS`` as the console script runs it; returns (result, TensorFlow imported?, seconds)."""
    script = (
        "import atexit, sys, time\n"
        "started = time.perf_counter()\n"
        "atexit.register(lambda: sys.stderr.write(f'\\nTF={\"tensorflow\" in sys.modules} S={time.perf_counter() - started:.3f}\\n'))\n"
        f"sys.argv = ['tfcontrast', *{list(args)!r}]\n"
        "from tfcontrast.cli import run\n"
        "run()\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=cwd or ROOT,
                            timeout=120)
    marker = result.stderr.strip().splitlines()[-1]
    result.stderr = result.stderr[: result.stderr.rstrip().rfind("\nTF=")]
    return result, marker.split()[0] == "TF=True", float(marker.split()[1][2:])


def test_help_version_configs_and_usage_errors_answer_without_tensorflow(tmp_path):
    """Issue 12: no TensorFlow import (10-17 s) before the arguments are parsed; --help exits 0."""
    seconds = {}
    for args in (["--help"], ["-h"], ["train", "--help"], ["lookup", "-h"], ["index", "--help"], ["--version"],
                 ["configs"], ["configs", "show", "simclr_digits"], ["fit"], ["evaluate", "--workdir", str(tmp_path / "f")]):
        result, imported_tf, seconds[" ".join(args)] = fast(*args)
        assert not imported_tf, args
        if args[0] in ("fit", "evaluate"):
            assert result.returncode == 2 and result.stderr.startswith("tfcontrast: error: "), (args, result.stderr)
        else:
            assert result.returncode == 0 and result.stderr == "", (args, result.stderr)
        if args[-1] in ("--help", "-h"):
            assert result.stdout.startswith("tfcontrast 0.1.0: train" if len(args) == 1 else "usage: tfcontrast " + args[0])
    # measured on 2 loaded cores: 0.3-0.8 s each (TensorFlow alone takes 10-17 s); the bound leaves room for load
    assert max(seconds.values()) < 5.0, seconds

    top, _, _ = fast("--help")
    for command in cli.COMMANDS:
        assert f"  {command}  " in top.stdout or f"  {command} " in top.stdout, command
    assert "tfcontrast train --config NAME --help" in top.stdout
    train_help, _, _ = fast("train", "-h")
    assert "--config  a packaged config name" in train_help.stdout and "--workdir  the run's folder" in train_help.stdout
    lookup_help, _, _ = fast("lookup", "--help")
    assert "--raw  the .npy query holds raw values" in lookup_help.stdout and "(default 5)" in lookup_help.stdout
    version, _, _ = fast("--version")
    assert version.stdout == "tfcontrast 0.1.0\n"


def test_train_help_lists_the_keys_of_the_chosen_config_with_their_docs():
    positional, overrides, wanted = cli._parse_flags(
        ["tfcontrast", "train", "--config", "simclr_digits", "--config.optimizer.lr=0.5", "--help"]
    )
    assert wanted and positional == ["tfcontrast", "train"]
    text = cli.help_text(positional, overrides)
    assert text.startswith("usage: tfcontrast train --config NAME_OR_FILE")
    assert "config keys of simclr_digits (override any with --config.SECTION.KEY=VALUE):" in text
    lines = {line.split(" = ")[0].strip(): line for line in text.splitlines() if " = " in line}
    assert "NT-Xent temperature" in lines["model.temperature"]  # a registered field's doc
    assert lines["optimizer.lr"].split()[2] == "0.5" and "peak learning rate, > 0" in lines["optimizer.lr"]  # configs/base.py
    assert "images per step" in lines["train.batch_size"]  # the batch kind's field
    assert set(lines) == set(config_lib.key_docs(config_lib.load("simclr_digits")))
    assert all(line.split("  ")[-1].strip() for line in lines.values()), "a key without a doc"
    bad = cli.help_text(*cli._parse_flags(["tfcontrast", "train", "--config", "nope", "-h"])[:2])
    assert "config keys: cannot read --config nope: " in bad


def test_a_workdir_that_is_a_file_is_a_usage_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for args in (["evaluate"], ["lookup", "--query", "q.npy"], ["index", "--images", "x", "--to", "y"]):
        result, imported_tf, _ = fast(args[0], "--workdir", str(notes), *args[1:])
        assert result.returncode == 2 and not imported_tf, result.stderr
        assert result.stderr.strip() == (
            f"tfcontrast: error: --workdir '{notes}' is a file, not a folder: give the run's folder (a new one for a new run)."
        )
    assert notes.read_text() == "mine"


def test_progress_is_a_bar_only_on_a_terminal(capsys):
    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    assert progress.use_bar("auto", Stream(True)) and not progress.use_bar("auto", Stream(False))
    assert progress.use_bar("bar", Stream(False)) and not progress.use_bar("lines", Stream(True))
    with pytest.raises(ValueError, match="`progress` must be one of"):
        progress.use_bar("quiet")
    lines = []
    logger = progress.EpochLines(steps_per_epoch=50, epochs=4, out=lines.append)
    logger.on_epoch_begin(1)
    logger.on_epoch_end(1, {"loss": 0.123456, "erank": 12.0})
    assert lines == [lines[0]] and lines[0].startswith("epoch 2/4 (step 100/200) ")
    assert lines[0].endswith(" s: erank 12, loss 0.1235")


def test_usage_errors(tmp_path):
    missing = tfcontrast("train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "w"), check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"--config: no config file at '{tmp_path / 'nope.py'}'" in missing.stderr
    with pytest.raises(cli.UsageError, match="expected one command of train, evaluate, lookup, index, finetune, configs, got nothing"):
        cli._command(["tfcontrast"])
    with pytest.raises(cli.UsageError, match="got fit"):
        cli._command(["tfcontrast", "fit"])
    with pytest.raises(ValueError, match=r"holds no run \(no config.json\)"):
        jobs.evaluate(str(tmp_path))


def test_overrides_are_parsed_typed_and_applied_as_the_command_does():
    """``--config NAME`` plus overrides, through the command's own parsing (in-process)."""
    positional, overrides, _ = cli._parse_flags([
        "tfcontrast", "train", "--config", "triplet_digits", "--workdir", "w", "--config.loss.name=supcon",
        "--config.loss.temperature=0.05", "--config.train.jit_compile", "--noconfig.augment.enabled",
        "--config.eval.recall_ks=(1, 2)", "--config.model.embedding_dim=None",
    ])
    assert positional == ["tfcontrast", "train"] and cli._command(positional) == "train"
    config = cli._train_config(overrides)
    assert config.method == "embedding" and dict(config.loss) == {"name": "supcon", "temperature": 0.05, "xbm_memory_size": 0, "xbm_warmup_steps": 0}
    assert config.train.jit_compile is True and config.augment.enabled is False
    assert config.eval.recall_ks == (1, 2) and config.model.embedding_dim is None
    _, bad, _ = cli._parse_flags(["tfcontrast", "train", "--config", "directpred_digits", "--config.optimizer.lr=fast"])
    with pytest.raises(config_lib.ConfigError, match=r"config.optimizer.lr: must be a number, got str 'fast'"):
        cli._train_config(bad)


def test_configs_lists_every_packaged_config_and_shows_one():
    listed = tfcontrast("configs").stdout
    for name in packaged_configs.names():
        assert f"  {name}  " in listed or f"  {name} " in listed, name
    assert "DirectPred on the bundled digits: the default run." in listed
    assert cli._configs(["show", "supcon_digits"]) == packaged_configs.text("supcon_digits").rstrip("\n")
    every = re.escape(", ".join(packaged_configs.names()))
    with pytest.raises(cli.UsageError, match=f"no packaged config 'nope'; packaged: {every}$"):
        cli._configs(["show", "nope"])
    assert cli._command(["tfcontrast", "configs", "show", "x"]) == "configs"
    with pytest.raises(cli.UsageError):
        cli._command(["tfcontrast", "configs", "list", "x"])

"""The text job's (summary, body) pair stage (tfcontrast/jobs/text_pairs.py): keys, pairs, loss, run and resume.

One tiny run on a generated folder of documents is stopped in the middle of
the pair stage by ``train.stop_after_steps`` and resumed by the same call: the
method's stage must not run again, the pair stage must continue from its
checkpoint, and the final encoder must differ from the method's.
"""

import json
import os

import numpy as np
import pytest

import keras

from tfcontrast import config as config_lib, text
from tfcontrast.jobs import checkpoint, kinds, text as text_job, text_pairs
from tfcontrast.jobs.workdir import Workdir
from tests.jobs.test_text import document, tiny_overrides
from tests.losses.test_ranking import reference_mnrl


def pair_overrides(folder, **extra) -> dict:
    return {**tiny_overrides(folder), "pairs.steps": 4, "pairs.warmup_steps": 0, "pairs.lr": 3e-3, **extra}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("documents")
    rng = np.random.default_rng(1)
    for i in range(40):
        (folder / f"doc{i:02d}.txt").write_text(document(rng, i % 5), encoding="utf-8")
    (folder / "no_summary.txt").write_text(" ".join(["matrix"] * 60), encoding="utf-8")  # one paragraph: no pair
    return folder


def test_the_pair_keys_are_off_by_default_on_for_declutr_docstrings_and_validated():
    assert config_lib.validate(config_lib.load("simcse_docstrings")).pairs.steps == 0
    declutr = config_lib.validate(config_lib.load("declutr_docstrings"))
    assert declutr.pairs.steps > 0 and declutr.pairs.steps % declutr.train.steps_per_epoch == 0
    cases = {
        "pairs.temperature": (0.05, "config.pairs.temperature: unknown key"),
        "pairs.steps": (3, "config.pairs.steps: must be 0 \\(off\\) or a multiple of train.steps_per_epoch"),
        "pairs.scale": (0.0, "config.pairs.scale"),
        "pairs.lr": (-1.0, "config.pairs.lr"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.validate(config_lib.load("declutr_docstrings", {key: value}))
    with pytest.raises(config_lib.ConfigError, match="config.pairs.warmup_steps: must be below pairs.steps"):
        config_lib.validate(config_lib.load("declutr_docstrings", {"pairs.steps": 200, "pairs.warmup_steps": 200}))
    # train.stop_after_steps may fall in the pair stage, not at or after its end
    steps = declutr.train.steps + declutr.pairs.steps
    assert config_lib.validate(config_lib.load("declutr_docstrings", {"train.stop_after_steps": steps - 200}))
    with pytest.raises(config_lib.ConfigError, match=f"below the run's {steps} steps in all"):
        config_lib.validate(config_lib.load("declutr_docstrings", {"train.stop_after_steps": steps}))
    with pytest.raises(config_lib.ConfigError, match="below train.steps"):  # no pair stage: the method's steps bound it
        config_lib.validate(config_lib.load("simcse_docstrings", {"train.stop_after_steps": 1200}))


def test_pairs_are_first_paragraph_and_rest_of_training_documents_only(folder):
    config = config_lib.validate(config_lib.load("declutr_docstrings", pair_overrides(folder)))
    data = text_job.load_data(config)
    queries, passages = text_pairs.training_pairs(data)
    assert 0 < len(queries) == len(passages) == sum("\n\n" in t for t in data.train.texts)  # one paragraph: no pair
    rebuilt = {f"{q}\n\n{p}" for q, p in zip(queries, passages)}
    assert len(rebuilt) == len(queries) and rebuilt <= set(data.train.texts)
    assert not rebuilt & set(data.held_out.texts)
    with pytest.raises(ValueError, match="pair stage needs train.batch_size \\(64\\)"):
        text_pairs.stream(config_lib.validate(config_lib.load("declutr_docstrings", pair_overrides(folder, **{"train.batch_size": 64}))), data)


def test_the_stage_loss_is_the_ranking_loss_at_pairs_scale_on_summary_body_batches(folder):
    config = config_lib.validate(config_lib.load("declutr_docstrings", pair_overrides(folder, **{"pairs.scale": 7.0})))
    data = text_job.load_data(config)
    encoder = text_job.build_encoder(config, data)
    model = text_pairs.build_model(config, encoder)
    queries, passages = next(iter(text_pairs.stream(config, data)))
    assert queries.shape == passages.shape == (config.train.batch_size, config.data.sequence_length)
    loss, _ = model.batch_loss((queries, passages), training=False)
    q = encoder(queries, training=False).numpy().astype(np.float64)
    p = encoder(passages, training=False).numpy().astype(np.float64)
    np.testing.assert_allclose(float(loss), reference_mnrl(q, p, scale=7.0), rtol=1e-5)
    # the stream resumes: skipping s steps gives the batch s of a fresh stream
    second = next(iter(text_pairs.stream(config, data, start_step=1)))
    fresh = list(text_pairs.stream(config, data).take(2))[1]
    np.testing.assert_array_equal(second[0].numpy(), fresh[0].numpy())


def test_the_stage_runs_after_the_method_changes_the_encoder_and_a_resume_repeats_no_stage(folder, tmp_path):
    workdir = str(tmp_path / "run")
    wd = Workdir(workdir)
    # method: 4 steps (2 epochs); pair stage: 4 steps; stop after 6 = in the middle of the pair stage
    config = config_lib.validate(config_lib.load("declutr_docstrings", pair_overrides(folder, **{"train.stop_after_steps": 6})))
    lines = []
    stopped = kinds.train(config, workdir, out=lines.append)
    assert stopped["status"] == "stopped" and any("stopped after step 6" in line for line in lines)
    method_state = checkpoint.read_state(wd.checkpoint)
    pair_state = checkpoint.read_state(wd.path(text_pairs.FOLDER))
    assert method_state["step"] == 4 and pair_state["step"] == 2
    assert [s["steps_done"] for s in stopped["train"]["stages"]] == [4, 2]
    method_weights = open(os.path.join(wd.checkpoint, method_state["weights"]), "rb").read()

    lines = []
    summary = kinds.train(config, workdir, out=lines.append)  # the same command: continues the pair stage only
    assert summary["status"] == "done"
    assert any("resuming the (summary, body) pair stage at step 2 of 4" in line for line in lines)
    again = checkpoint.read_state(wd.checkpoint)
    assert again["seal"] == method_state["seal"] and again["sessions"] == 1  # the method's stage did not run again
    assert open(os.path.join(wd.checkpoint, again["weights"]), "rb").read() == method_weights
    pairs_done = checkpoint.read_state(wd.path(text_pairs.FOLDER))
    assert pairs_done["step"] == 4 and pairs_done["sessions"] == 2 and len(pairs_done["history"]["loss"]) == 2
    stages = summary["train"]["stages"]
    assert [(s["name"], s["steps"], s["steps_done"]) for s in stages] == [("declutr", 4, 4), ("pairs", 4, 4)]
    assert json.load(open(wd.summary))["train"]["stages"] == stages
    assert "- pairs: 4 steps" in open(os.path.join(workdir, "report.md")).read()
    assert "declutr + pairs:" in text_job.headline(summary)

    # the saved encoder is the pair stage's: it differs from the method's final weights, and equals the stage's checkpoint
    data = text_job.load_data(config)
    method_model = text_job.build_model(config, data)
    checkpoint.restore(method_model, wd.checkpoint)
    pair_model = text_pairs.build_model(config, text_job.build_encoder(config, data))
    checkpoint.restore(pair_model, wd.path(text_pairs.FOLDER))
    saved = keras.models.load_model(wd.embedder, compile=False)
    probe = text.tokenize(data.vectorizer, list(data.held_out.texts[:4])).to_tensor(shape=(4, config.data.sequence_length))
    strings = text.embedder(saved)(list(data.held_out.texts[:4]))
    np.testing.assert_allclose(strings, pair_model.encoder(probe, training=False).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(strings, method_model.encoder(probe, training=False).numpy(), atol=1e-3)
    # the report's row "before_pairs" scores the method's encoder, "trained" the final one
    results = summary["evaluation"]["results"]
    assert list(results)[-2:] == ["before_pairs", "trained"]
    again = text.evaluate_text_encoder(method_model.encoder, data, seed=config.seed, baselines=())["trained"]
    assert again == pytest.approx(results["before_pairs"])

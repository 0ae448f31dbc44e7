"""The text job (tfcontrast/jobs/text.py): a registered text method trains, evaluates, exports and answers lookups.

The fast tests train a tiny DeCLUTR once on a generated folder of documents
(module fixture) and check everything the job writes. The full-size run of
the packaged config on the docstrings, with the issue's targets, is slow.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import config as config_lib, registry
from tfcontrast.jobs import kinds, text as text_job
from tfcontrast.jobs.training import RunError
from tfcontrast.jobs.workdir import Workdir

TOPICS = [
    "matrix eigenvalue eigenvector symmetric decomposition linear algebra solver".split(),
    "fourier transform frequency signal spectrum window sampling filter".split(),
    "random sample distribution probability generator seed variance normal".split(),
    "file path read write open directory encoding bytes".split(),
    "cluster kmeans centroid label distance inertia partition group".split(),
]
ROWS = ("tfidf", "random_encoder", "word2vec_mean", "before_pairs", "trained")  # tiny_overrides runs the pair stage
METRICS = ("span/recall@1", "span/recall@5", "span/mrr", "summary/recall@1", "summary/recall@5", "summary/mrr")
COUNTS = ("span/n", "summary/n")


def document(rng, topic: int) -> str:
    words = TOPICS[topic]
    summary = " ".join(rng.choice(words, 8))
    body = " ".join(rng.choice(words + ["the", "of", "a", "and"], 120))
    return f"{summary}\n\n{body}"


def tiny_overrides(folder) -> dict:
    return {
        "data.name": "text_folder", "data.path": str(folder), "data.min_words": 0, "data.vocab_size": 200,
        "data.sequence_length": 32, "encoder.dim": 16, "train.steps": 4, "train.steps_per_epoch": 2,
        "train.batch_size": 8, "train.min_span_tokens": 4, "optimizer.warmup_steps": 0,
        "eval.word2vec_dim": 8, "eval.word2vec_epochs": 1, "index.lookup_k": 3,
        "pairs.steps": 2, "pairs.warmup_steps": 0,
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("documents")
    rng = np.random.default_rng(0)
    texts = {}
    for i in range(40):
        name = f"doc{i:02d}.txt"  # a folder's document is named by its file
        texts[name] = document(rng, i % len(TOPICS))
        (folder / name).write_text(texts[name], encoding="utf-8")
    return folder, texts


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    folder, texts = corpus
    workdir = str(tmp_path_factory.mktemp("run") / "text")
    config = config_lib.validate(config_lib.load("declutr_docstrings", tiny_overrides(folder)))
    summary = kinds.train(config, workdir, out=lambda line: None)
    return config, workdir, summary, texts


def test_text_methods_go_to_the_text_job_through_their_batch_kind():
    for method in ("simcse", "declutr"):
        assert registry.data_kind_of(method).job_module() is text_job
    assert registry.data_kind_of("simclr").name == "images"


def test_text_configs_state_only_text_sections_and_refuse_unknown_keys():
    config = config_lib.validate(config_lib.load("simcse_docstrings"))
    assert "augment" not in config and set(config.index) == {"lookup_k"} and config.data.name == "docstrings"
    assert set(config.train) >= {"batch_size", "word_dropout"}
    with pytest.raises(config_lib.ConfigError, match="config.data.image_size"):
        config_lib.load("declutr_docstrings", {"data.image_size": (8, 8)})
    bad = config_lib.base("simcse").to_dict()
    bad["augment"] = {"enabled": True}
    with pytest.raises(config_lib.ConfigError, match="config.augment: unknown key"):
        config_lib.validate(bad)
    with pytest.raises(config_lib.ConfigError, match="config.data.path: is required"):
        config_lib.validate(config_lib.load("simcse_docstrings", {"data.name": "jsonl"}))


def test_the_run_writes_a_summary_with_every_row_and_the_targets(run):
    config, workdir, summary, _ = run
    assert summary["status"] == "done" and summary["train"]["steps_done"] == 4
    assert summary["data"]["train"] == 32 and summary["data"]["held_out"] == 8
    results = summary["evaluation"]["results"]
    assert set(results) == set(ROWS)
    for row in ROWS:
        assert set(results[row]) == set(METRICS + COUNTS) and results[row]["span/n"] == 8
        assert all(0.0 <= results[row][m] <= 1.0 for m in METRICS)
        assert results[row]["span/recall@1"] <= results[row]["span/recall@5"]
    # the topics are disjoint vocabularies: TF-IDF ranks a same-topic target first at least as often as chance (1/8)
    assert results["tfidf"]["span/recall@5"] > 0.5
    targets = summary["evaluation"]["targets"]
    ratio = results["trained"]["summary/recall@1"] / results["tfidf"]["summary/recall@1"]
    assert targets["summary_ratio"] == pytest.approx(ratio, abs=1e-4)
    assert targets["span_beats_tfidf"] == (results["trained"]["span/recall@1"] > results["tfidf"]["span/recall@1"])
    on_disk = json.load(open(Workdir(workdir).summary))
    assert on_disk["evaluation"]["results"] == results
    report = open(os.path.join(workdir, "report.md")).read()
    assert "| word2vec_mean |" in report and "| trained |" in report


def test_lookup_and_the_exported_signature_return_the_document_of_its_own_text(run):
    _, workdir, _, texts = run
    name = "doc07.txt"
    printed = kinds.lookup(workdir, texts[name], k=3)
    lines = printed.splitlines()[1:]
    assert len(lines) == 3 and lines[0].split()[1] == name  # the text itself is its nearest document (cosine 1)
    assert all(line.split()[1] in texts for line in lines)
    exported = tf.saved_model.load(Workdir(workdir).export)
    found = exported.signatures["lookup"](text=tf.constant([texts[name]]))
    names = [n.decode() for n in found["names"].numpy()[0]]
    assert names[0] == name and len(names) == 3
    assert found["scores"].numpy()[0, 0] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="non-empty text"):
        kinds.lookup(workdir, "  ", k=3)


def test_a_finished_run_is_not_retrained_and_another_config_is_refused(run, corpus):
    config, workdir, summary, _ = run
    lines = []
    assert kinds.train(config, workdir, out=lines.append)["evaluation"] == summary["evaluation"]
    assert any("nothing to do" in line for line in lines)
    other = config_lib.validate(config_lib.load("declutr_docstrings", {**tiny_overrides(corpus[0]), "model.temperature": 0.5}))
    with pytest.raises(RunError, match="config.model.temperature"):
        kinds.train(other, workdir, out=lambda line: None)


@pytest.mark.slow
def test_full_size_declutr_on_the_docstrings_beats_tfidf_on_spans_and_answers_on_the_command_line(tmp_path):
    """The packaged config as shipped (about 7 CPU-minutes on 2 cores): saved_model_cli and tfcontrast lookup.

    Measured (benchmarks/RESULTS.md, section 12): DeCLUTR then the (summary, body) pair stage; span -> span
    beats TF-IDF and summary -> body reaches more than the issue's 0.9x TF-IDF (both targets met).
    """
    workdir = str(tmp_path / "text")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    bin_dir = os.path.dirname(sys.executable)
    subprocess.run([os.path.join(bin_dir, "tfcontrast"), "train", "--config", "declutr_docstrings", "--workdir", workdir],
                   check=True, env=env, capture_output=True)
    targets = json.load(open(Workdir(workdir).summary))["evaluation"]["targets"]
    assert targets["span_beats_tfidf"] and targets["summary_at_least_0.9x"], targets
    looked_up = subprocess.run(
        [os.path.join(bin_dir, "tfcontrast"), "lookup", "--workdir", workdir, "--query", "eigenvalues of a symmetric matrix"],
        check=True, env=env, capture_output=True, text=True,
    ).stdout
    assert "eig" in looked_up
    cli = subprocess.run(
        [os.path.join(bin_dir, "saved_model_cli"), "run", "--dir", Workdir(workdir).export, "--tag_set", "serve",
         "--signature_def", "lookup", "--input_exprs", 'text=["eigenvalues of a symmetric matrix"]'],
        check=True, env=env, capture_output=True, text=True,
    ).stdout
    assert "names" in cli and "eig" in cli

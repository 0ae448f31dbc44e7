"""The command's indexes (tfcontrast/jobs/indexes.py): a run whose index is a Milvus collection (Milvus Lite
in-process, in tmp_path), and ``tfcontrast index`` on a small folder of PNGs into faiss and Milvus.

Default suite: the run's Milvus index built by ``run_index`` from given embeddings (no training), and
``tfcontrast index`` with a run trained without its evaluation. Slow: a whole run with
``index.backend=milvus`` (train, evaluate, evaluate again, lookup), which costs a full evaluation.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tfcontrast import cli, data, jobs, probe
from tfcontrast.jobs import evaluation, indexes, workdir as workdir_lib

from .tiny_configs import tiny_config

TOKEN = "user:s3cret-token-never-written"


def silent(line):
    pass


def test_the_runs_milvus_index_is_named_after_the_run_upserts_and_refuses_other_entries(tmp_path, monkeypatch):
    wd = workdir_lib.Workdir(str(tmp_path / "my run"))
    config = tiny_config("directpred", **{"index.backend": "milvus"})
    rng = np.random.default_rng(0)
    embeddings, labels = rng.normal(size=(40, 8)).astype(np.float32), np.arange(40) % 3
    monkeypatch.setenv(indexes.TOKEN_VARIABLE, TOKEN)  # Milvus Lite ignores it; it must never be written
    idx = indexes.run_index(config, wd, embeddings, labels)
    try:
        name = indexes.collection_name("my run", wd.root)
        assert name.startswith("tfcontrast_my_run_") and len(name) == len("tfcontrast_my_run_") + 8
        assert idx.collection == name and idx.uri == wd.milvus_lite and len(idx) == 40
        idx.save(wd.index, metadata=indexes.RUN_INDEX_METADATA)
    finally:
        indexes.close(idx)
    again = indexes.run_index(config, wd, embeddings, labels)  # evaluating again: an upsert of the same rows
    try:
        assert len(again) == 40
        found = again.search(embeddings[[4, 7]], 2)
        np.testing.assert_array_equal(found.ids[:, 0], [4, 7])
        np.testing.assert_array_equal(found.labels[:, 0], labels[[4, 7]])
    finally:
        indexes.close(again)
    with pytest.raises(ValueError, match=r"holds 40 entries that are not this run's 10 training embeddings"):
        indexes.run_index(config, wd, embeddings[:10], labels[:10])
    manifest = json.loads((tmp_path / "my run" / "index" / "manifest.json").read_text())
    assert manifest["kind"] == "milvus" and manifest["collection"] == name
    assert manifest["metadata"] == indexes.RUN_INDEX_METADATA
    reopened = indexes.load(wd.index)
    try:
        assert len(reopened) == 40
    finally:
        indexes.close(reopened)
    for root, _, names in os.walk(tmp_path):
        for file in names:
            with open(os.path.join(root, file), "rb") as f:
                assert b"s3cret" not in f.read(), file


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny DirectPred run, trained without its evaluation (what ``tfcontrast index`` needs: model and contract)."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    jobs.train(tiny_config("directpred", steps=2), str(workdir), out=silent, evaluate_after=False, progress="lines")
    return workdir


@pytest.fixture(scope="module")
def milvus_run(tmp_path_factory):
    """A tiny DirectPred run with index.backend=milvus: the collection lives in <workdir>/milvus.db."""
    workdir = tmp_path_factory.mktemp("milvus") / "run"
    config = tiny_config("directpred", **{"index.backend": "milvus", "index.lookup_k": 4})
    os.environ[indexes.TOKEN_VARIABLE] = TOKEN  # Milvus Lite ignores it; it must still never be written
    try:
        lines = []
        summary = jobs.train(config, str(workdir), out=lines.append)
    finally:
        del os.environ[indexes.TOKEN_VARIABLE]
    return workdir, config, summary, lines


@pytest.mark.slow
def test_a_milvus_run_builds_its_index_in_milvus_and_scores_as_faiss_exact(milvus_run):
    workdir, config, summary, lines = milvus_run
    wd = workdir_lib.Workdir(str(workdir))
    manifest = json.loads((workdir / "index" / "manifest.json").read_text())
    name = indexes.collection_name("run", wd.root)
    assert manifest["kind"] == "milvus" and manifest["uri"] == wd.milvus_lite and manifest["collection"] == name
    assert manifest["metadata"] == indexes.RUN_INDEX_METADATA
    assert summary["evaluation"]["settings"]["milvus"] == {"uri": wd.milvus_lite, "collection": name}
    assert os.path.isdir(wd.milvus_lite)
    # the token is in no file of the run folder (Milvus Lite's data included) and was never printed
    for root, _, names in os.walk(workdir):
        for file in names:
            with open(os.path.join(root, file), "rb") as f:
                assert TOKEN.encode() not in f.read() and b"s3cret" not in f.read(), file
    assert not any("s3cret" in line for line in lines)

    # the trained scores equal a faiss exact index's on the same embeddings
    run = evaluation.inputs.load_split(config)
    net = workdir_lib.load_embedder(wd.embedder)
    train, test = probe.embed(net, run.x_train), probe.embed(net, run.x_test)
    exact = evaluation.scores(config, indexes.memory_index(config, train, run.y_train), train, run.y_train, test, run.y_test)
    for key in ("knn_accuracy", "recall@1", "recall@5", "recall@10", "map@r"):
        assert summary["evaluation"][key] == pytest.approx(exact[key], abs=2e-6), key  # both rounded to 6 places

    # evaluating again upserts the same rows (no duplicates), and lookup reconnects from index/
    again = jobs.evaluate(str(workdir), out=silent)
    assert again["evaluation"]["recall@1"] == summary["evaluation"]["recall@1"]
    idx = indexes.load(wd.index)
    try:
        assert len(idx) == len(run.x_train)
    finally:
        indexes.close(idx)
    np.save(workdir.parent / "q.npy", run.x_train[[5, 9]])
    found = jobs.lookup(str(workdir), str(workdir.parent / "q.npy"), k=3)
    np.testing.assert_array_equal(found.ids[:, 0], [5, 9])
    assert found.training_split and found.index_size == len(run.x_train)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """30 test digits as 8-bit PNG files in two sub-folders; their arrays in file order."""
    folder = tmp_path_factory.mktemp("pngs") / "photos"
    x = data.load_digits().x_test[:30]
    for i, image in enumerate(x):
        (folder / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(folder / f"part{i % 2}" / f"{i:02d}.png")
    return folder


def test_index_command_into_a_faiss_folder_then_lookup_prints_paths(trained_run, pngs, tmp_path, capsys):
    workdir = trained_run
    out = tmp_path / "photos_index"
    positional, overrides, wanted = cli._parse_flags(
        ["tfcontrast", "index", "--workdir", str(workdir), "--images", str(pngs), "--to", str(out), "--batch-size", "8"]
    )
    assert cli.main((positional, overrides, wanted)) == 0
    printed = capsys.readouterr()
    assert f"indexed 30 images of {pngs} into {out}" in printed.out
    assert f"tfcontrast lookup --workdir {workdir} --index {out} --query IMAGE" in printed.out
    assert "indexed 30/30 images" in printed.err and "images/s" in printed.err  # build_from_dataset's progress

    query = sorted(pngs.rglob("*.png"))[7]
    found = jobs.lookup(str(workdir), str(query), k=3, index=str(out))
    assert not found.training_split and found.index_size == 30
    assert found.ids[0, 0] == 7 and found.distances[0, 0] < 1e-5 and found.data[0][0] == str(query)
    text = jobs.format_neighbours(found, str(query))
    assert "the 3 nearest indexed entries" in text and str(query) in text and "train row" not in text

    # a finished build returns at once: running the command again changes nothing
    before = (out / "manifest.json").read_text()
    indexes.index_images(str(workdir), str(pngs), str(out), batch_size=8, out=silent, progress=False)
    assert (out / "manifest.json").read_text() == before


def test_index_command_into_milvus_and_its_refusals(trained_run, pngs, tmp_path):
    workdir = trained_run
    wd = workdir_lib.Workdir(str(workdir))
    lines = []
    entries = indexes.index_images(
        str(workdir), str(pngs / "*" / "*.png"), str(tmp_path / "photos.db"), collection="photos", batch_size=16,
        out=lines.append, progress=False,
    )
    assert entries == 30 and "into Milvus collection 'photos'" in lines[0]
    manifest = wd.path("indexes", "photos")
    query = sorted(pngs.rglob("*.png"))[12]
    found = jobs.lookup(str(workdir), str(query), k=2, index=manifest)
    assert found.ids[0, 0] == 12 and found.data[0][0] == str(query)

    with pytest.raises(ValueError, match="is the run's own index of its training split"):
        indexes.index_images(str(workdir), str(pngs), wd.index, out=silent, progress=False)
    with pytest.raises(ValueError, match="--shard needs a Milvus --to"):
        indexes.index_images(str(workdir), str(pngs), str(tmp_path / "f"), shard=(0, 2), out=silent, progress=False)
    with pytest.raises(ValueError, match="matches no image files"):
        indexes.index_images(str(workdir), str(tmp_path / "none"), str(tmp_path / "f"), out=silent, progress=False)
    with pytest.raises(ValueError, match="checkpoint .* was made with batch_size=16"):
        indexes.index_images(str(workdir), str(pngs / "*" / "*.png"), str(tmp_path / "photos.db"), collection="photos",
                             batch_size=8, out=silent, progress=False)

"""build_from_dataset: streaming equals adding everything at once; resume after SIGKILL equals an
uninterrupted run; shards cover every element once with the same ids; progress; refusals."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.index import Index, MilvusIndex, build_from_dataset
from tfcontrast.index.build import BuildProgress, ProgressPrinter, progress_path

N, BATCH = 240, 32


def make_dataset(n=N):
    """Deterministic elements: an 8x8x3 image, a label and a payload, generated on the fly."""

    def element(i):
        image = tf.random.stateless_uniform([8, 8, 3], seed=tf.stack([i, tf.constant(7, tf.int64)]))
        return {"image": image, "label": i % 5, "data": tf.strings.format("item-{}", i)}

    return tf.data.Dataset.range(n).map(element)


WEIGHTS = np.random.default_rng(0).normal(size=(8 * 8 * 3, 6)).astype(np.float32)


def embed(images):
    """A deterministic NumPy embedder (the same in every process)."""
    return np.asarray(images).reshape(len(images), -1) @ WEIGHTS


def everything_at_once(n=N):
    elements = list(make_dataset(n).as_numpy_iterator())
    images = np.stack([e["image"] for e in elements])
    return embed(images), np.array([e["label"] for e in elements]), [e["data"].decode() for e in elements]


def assert_same_entries(a, b):
    (xa, ia, la), (xb, ib, lb) = a.to_arrays(), b.to_arrays()
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(xa, xb)
    assert a.get_data(ia) == b.get_data(ib)


def test_streaming_equals_adding_everything_at_once():
    seen = []
    idx = build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, progress=seen.append)
    x, labels, data = everything_at_once()
    want = Index("euclidean")
    want.add(x, labels=labels, data=data)
    assert_same_entries(idx, want)
    assert [p.rows_done for p in seen] == [min(N, BATCH * (b + 1)) for b in range(8)] + [N]
    assert all(p.total_rows == N and p.resumed_from == 0 for p in seen)
    assert seen[-1].finished and not any(p.finished for p in seen[:-1]) and seen[0].eta_seconds is not None


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    output = tmp_path / "index"
    child = textwrap.dedent(
        f"""
        import time
        from tests.index.test_build import BATCH, embed, make_dataset
        from tfcontrast.index import Index, build_from_dataset
        build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, output={str(output)!r},
                           checkpoint_seconds=0, progress=lambda p: time.sleep(0.4))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], env=dict(os.environ, PYTHONPATH=os.getcwd()))
    progress_file = progress_path(str(output))
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if os.path.exists(progress_file) and json.loads(open(progress_file).read())["batches_done"] >= 2:
                break
            assert proc.poll() is None, "the build finished or crashed before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 180 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = json.loads(open(progress_file).read())["rows_done"]
    assert 0 < killed_at < N
    seen = []
    resumed = build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, output=output, progress=seen.append)
    assert seen[0].resumed_from >= killed_at and seen[-1].rows_done == N and seen[-1].finished
    uninterrupted = build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, progress=False)
    assert_same_entries(resumed, uninterrupted)
    assert_same_entries(Index.load(output), uninterrupted)
    assert sorted(os.listdir(tmp_path)) == [".index.tfcontrast-lock", "index", "index.progress.json"]
    # A finished build returns at once, with the saved index.
    again = build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, output=output, progress=False)
    assert_same_entries(again, uninterrupted)


def test_shards_write_every_element_once_with_the_ids_of_one_process(tmp_path):
    milvus = MilvusIndex(str(tmp_path / "shards.db"), collection="shared", metric="euclidean", index_type="FLAT")
    for i in range(3):  # three "processes", one collection
        build_from_dataset(embed, make_dataset(), milvus, BATCH, shard=(i, 3), output=tmp_path / f"shard{i}", progress=False)
    single = build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, progress=False)
    (xm, im, lm), (xs, is_, ls) = milvus.to_arrays(), single.to_arrays()
    np.testing.assert_array_equal(im, is_)  # every position once, ids = positions
    np.testing.assert_array_equal(lm, ls)
    np.testing.assert_allclose(xm, xs, rtol=1e-6)
    assert milvus.get_data([0, 1, 239]) == ["item-0", "item-1", "item-239"]
    shard1 = Index("euclidean")
    build_from_dataset(embed, make_dataset(), shard1, BATCH, shard=(1, 3), progress=False)
    assert shard1.entries()[0].tolist() == list(range(1, N, 3))


def test_a_milvus_build_resumes_in_its_collection(tmp_path):
    milvus = MilvusIndex(str(tmp_path / "resume.db"), collection="resumed", metric="euclidean", index_type="FLAT")

    class Interrupted(Exception):
        pass

    def interrupt_after_three_batches(p):
        if p.batches_done == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        build_from_dataset(embed, make_dataset(), milvus, BATCH, output=tmp_path / "out", checkpoint_seconds=0,
                           progress=interrupt_after_three_batches)
    assert json.loads((tmp_path / "out.progress.json").read_text())["rows_done"] == 3 * BATCH
    with pytest.raises(ValueError, match="dataset_size=240"):  # not the dataset of the checkpoint
        build_from_dataset(embed, make_dataset(100), milvus, BATCH, output=tmp_path / "out", progress=False)
    seen = []
    build_from_dataset(embed, make_dataset(), milvus, BATCH, output=tmp_path / "out", progress=seen.append)
    assert seen[0].resumed_from == 3 * BATCH and seen[-1].finished and len(milvus) == N
    single = build_from_dataset(embed, make_dataset(), Index("euclidean"), BATCH, progress=False)
    (xm, im, lm), (xs, is_, ls) = milvus.to_arrays(), single.to_arrays()
    np.testing.assert_array_equal(im, is_)
    np.testing.assert_array_equal(lm, ls)
    np.testing.assert_allclose(xm, xs, rtol=1e-6)


def test_refusals(tmp_path):
    saved = Index("euclidean")
    saved.add(np.ones((2, 3)))
    saved.save(tmp_path / "plain")
    with pytest.raises(ValueError, match="did not write"):
        build_from_dataset(embed, make_dataset(10), Index("euclidean"), 4, output=tmp_path / "plain", progress=False)
    build_from_dataset(embed, make_dataset(10), Index("euclidean"), 4, output=tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="batch_size=4"):
        build_from_dataset(embed, make_dataset(10), Index("euclidean"), 5, output=tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match=r"holds Index\(metric='euclidean'"):
        build_from_dataset(embed, make_dataset(10), Index("cosine"), 4, output=tmp_path / "out", progress=False)
    full = Index("euclidean")
    full.add(np.ones((1, 6)), ids=[99])
    with pytest.raises(ValueError, match="pass an empty index"):
        build_from_dataset(embed, make_dataset(10), full, 4, output=tmp_path / "out", progress=False)
    restarted = build_from_dataset(embed, make_dataset(10), Index("euclidean"), 5, output=tmp_path / "out", resume=False, progress=False)
    assert len(restarted) == 10 and Index.load(tmp_path / "out").metadata["build"]["batch_size"] == 5
    for kwargs, match in (
        (dict(batch_size=0), "`batch_size`"),
        (dict(shard=(3, 3)), "`shard` index"),
        (dict(shard=(0, 0)), "shard count"),
        (dict(checkpoint_seconds=-1), "`checkpoint_seconds`"),
        (dict(progress="yes"), "`progress`"),
    ):
        with pytest.raises(ValueError, match=match):
            build_from_dataset(embed, make_dataset(10), Index(), **dict(dict(batch_size=4), **kwargs))
    with pytest.raises(ValueError, match=r"\[4, dim\] embeddings"):
        build_from_dataset(lambda x: np.ones(4), make_dataset(10), Index(), 4, progress=False)
    with pytest.raises(ValueError, match="'image'"):
        build_from_dataset(embed, tf.data.Dataset.range(3).map(lambda i: {"x": i}), Index(), 4, progress=False)


def test_progress_printer_writes_rate_and_eta():
    import io

    stream = io.StringIO()
    printer = ProgressPrinter(stream, seconds=3600)
    printer(BuildProgress(100, 1, 1000, 50.0, 2.0, 18.0, 0, False))
    printer(BuildProgress(200, 2, 1000, 50.0, 4.0, 16.0, 0, False))  # within the interval: skipped
    printer(BuildProgress(1000, 10, 1000, 50.0, 20.0, 0.0, 0, True))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "indexed 100/1,000 images, 50 images/s, ETA 0m18s",
        "indexed 1,000/1,000 images, 50 images/s, done in 0m20s",
    ]

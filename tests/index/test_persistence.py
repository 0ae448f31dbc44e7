import hashlib
import io
import json
import os
import pathlib
import pickle

import numpy as np
import pytest

from tfcontrast.index import Index, IndexFileError, persistence


def build(backend, rng, remove=True):
    params = {"nlist": 4, "nprobe": 4} if backend == "ivf" else {}
    idx = Index("cosine", backend, **params)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    data = [b"\x00\x01bytes", {"name": "two", "tags": [1, 2]}, None] + [f"item-{i}" for i in range(47)]
    idx.add(x, labels=np.arange(50) % 5, ids=np.arange(50) * 3, data=data)
    if remove:
        idx.remove([0, 3 * 3, 3 * 30])  # hnsw keeps tombstones, ivf dead slots, exact compacts
    return idx, x


def write_signed_manifest(path, manifest):
    """Writes ``manifest`` with a freshly forged checksum of its own (what a deliberate forger would do)."""
    manifest = dict(manifest, manifest_sha256=persistence.manifest_checksum(manifest))
    (pathlib.Path(path) / "manifest.json").write_text(json.dumps(manifest))


def rewrite(path, name, payload):
    """Replaces a file and forges its manifest entry (size and SHA-256 match) and the manifest's checksum."""
    with open(os.path.join(path, name), "wb") as f:
        f.write(payload)
    manifest = json.loads((pathlib.Path(path) / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    write_signed_manifest(path, manifest)


@pytest.mark.parametrize("backend", ["exact", "hnsw", "ivf"])
def test_round_trip_gives_identical_searches(backend, rng, tmp_path):
    idx, x = build(backend, rng)
    path = idx.save(tmp_path / "idx")
    loaded = Index.load(path)
    assert (loaded.metric, loaded.backend, loaded.dim, len(loaded)) == ("cosine", backend, 6, 47)
    assert loaded.params == idx.params
    before, after = idx.search(x, k=10), loaded.search(x, k=10)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.labels, before.labels)
    np.testing.assert_array_equal(after.distances, before.distances)
    assert after.data == before.data
    assert loaded.get_data([3 * 1, 3 * 2, 3 * 5]) == [{"name": "two", "tags": [1, 2]}, None, "item-2"]
    assert not np.isin(after.ids, [0, 3 * 3, 3 * 30]).any()
    # Default ids continue after the largest id ever added (147), removed or not.
    assert loaded.add(rng.normal(size=(1, 6))).tolist() == [148]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format_version"] == persistence.FORMAT_VERSION and manifest["count"] == 47
    assert set(manifest["files"]) == {"index.faiss", "ids.npy", "labels.npy", "alive.npy", "data.json"}


def test_bytes_payload_survives_and_empty_index_round_trips(rng, tmp_path):
    idx, _ = build("exact", rng, remove=False)
    loaded = Index.load(idx.save(tmp_path / "a"))
    assert loaded.get_data([0]) == [b"\x00\x01bytes"]
    empty = Index.load(Index("euclidean", "hnsw", M=8).save(tmp_path / "b"))
    assert (len(empty), empty.dim, empty.params["M"]) == (0, None, 8)
    assert np.all(empty.search(np.ones((1, 3)), k=2).ids == -1)
    empty.add(np.ones((2, 3)))
    assert len(empty) == 2


def test_crash_while_writing_leaves_the_previous_index_intact(rng, tmp_path, monkeypatch):
    idx, x = build("hnsw", rng)
    path = idx.save(tmp_path / "idx")
    idx.add(rng.normal(size=(5, 6)))
    calls = []
    real_write = persistence.write_bytes

    def failing_write(directory, name, payload):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real_write(directory, name, payload)

    monkeypatch.setattr(persistence, "write_bytes", failing_write)
    with pytest.raises(OSError, match="simulated"):
        idx.save(path)
    monkeypatch.undo()
    assert len(calls) == 3
    assert sorted(os.listdir(tmp_path)) == [".idx.tfcontrast-lock", "idx"]  # no temporary left behind
    old = Index.load(path)
    assert len(old) == 47  # the index as first saved, not the 52-entry one
    idx.save(path)
    assert len(Index.load(path)) == 52


def test_crash_between_the_two_renames_loads_the_previous_copy(rng, tmp_path):
    idx, _ = build("exact", rng)
    path = idx.save(tmp_path / "idx")
    os.rename(path, tmp_path / ".idx.previous")  # state right after the first rename
    with pytest.warns(RuntimeWarning, match="interrupted"):
        recovered = Index.load(path)
    assert len(recovered) == 47
    recovered.save(path)  # the next save completes the swap and cleans up
    assert sorted(os.listdir(tmp_path)) == [".idx.tfcontrast-lock", "idx"]


def test_tampered_file_is_refused(rng, tmp_path):
    path = build("exact", rng)[0].save(tmp_path / "idx")
    raw = bytearray((tmp_path / "idx" / "index.faiss").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "idx" / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(IndexFileError, match="SHA-256"):
        Index.load(path)


def test_truncated_file_is_refused(rng, tmp_path):
    path = build("hnsw", rng)[0].save(tmp_path / "idx")
    raw = (tmp_path / "idx" / "ids.npy").read_bytes()
    (tmp_path / "idx" / "ids.npy").write_bytes(raw[:-8])
    with pytest.raises(IndexFileError, match="truncated"):
        Index.load(path)


def test_truncated_faiss_bytes_with_forged_checksum_are_refused(rng, tmp_path):
    path = build("hnsw", rng)[0].save(tmp_path / "idx")
    raw = (tmp_path / "idx" / "index.faiss").read_bytes()
    rewrite(path, "index.faiss", raw[: len(raw) // 2])
    with pytest.raises(IndexFileError, match="not a readable faiss index"):
        Index.load(path)


@pytest.mark.parametrize("how", ["object_npy", "raw_pickle"])
def test_pickled_arrays_are_refused_even_with_forged_checksums(rng, tmp_path, how):
    path = build("exact", rng)[0].save(tmp_path / "idx")
    if how == "object_npy":
        buffer = io.BytesIO()
        np.save(buffer, np.array([{"evil": 1}] * 47, dtype=object), allow_pickle=True)
        payload = buffer.getvalue()
    else:
        payload = pickle.dumps(np.arange(47))
    rewrite(path, "ids.npy", payload)
    with pytest.raises(IndexFileError, match="pickle"):
        Index.load(path)


def test_arrays_inconsistent_with_the_manifest_are_refused(rng, tmp_path):
    path = build("exact", rng)[0].save(tmp_path / "idx")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(47, np.int64))  # right shape and dtype, duplicate ids
    rewrite(path, "ids.npy", buffer.getvalue())
    with pytest.raises(IndexFileError, match="inconsistent"):
        Index.load(path)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3, np.float64))
    rewrite(path, "labels.npy", buffer.getvalue())
    with pytest.raises(IndexFileError, match=r"int64 array of shape \(47,\)"):
        Index.load(path)


def test_manifest_problems_are_refused(rng, tmp_path):
    path = build("exact", rng)[0].save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    good = json.loads(manifest_path.read_text())
    # Checked after the manifest's own checksum: each case forges a valid checksum.
    cases = [
        (dict(good, format_version=99), "format_version 99"),
        (dict(good, format="other"), "not a tfcontrast.index manifest"),
        (dict(good, count="47"), "`count` must be a int"),
        (dict(good, dim=7), "disagrees with the manifest"),
        (dict(good, backend="hnsw"), "disagrees with the manifest"),
        (dict(good, metric="cosine", params={"nlist": 3}), "invalid manifest"),
        (dict(good, kind="milvus"), "holds a 'milvus' index"),
        (dict(good, metadata=[1]), "`metadata` must be a dict"),
        (dict(good, files=dict(good["files"], **{"../escape": {"sha256": "0", "bytes": 0}})), "invalid file name"),
        (dict(good, files=dict(good["files"], extra={"sha256": "0", "bytes": 0})), "missing"),
    ]
    for manifest, match in cases:
        write_signed_manifest(path, manifest)
        with pytest.raises(IndexFileError, match=match):
            Index.load(path)
    manifest_path.write_text(json.dumps(good)[:-20])
    with pytest.raises(IndexFileError, match="not valid JSON"):
        Index.load(path)
    manifest_path.unlink()
    with pytest.raises(IndexFileError, match="no manifest.json"):
        Index.load(path)
    with pytest.raises(IndexFileError, match="does not exist"):
        Index.load(tmp_path / "nowhere")
    assert issubclass(IndexFileError, ValueError)


def test_metadata_round_trips_under_the_manifest_checksum(rng, tmp_path):
    idx, _ = build("exact", rng)
    path = idx.save(tmp_path / "idx", metadata={"run": "demo", "step": 3})
    assert Index.load(path).metadata == {"run": "demo", "step": 3} and idx.metadata["step"] == 3
    with pytest.raises(ValueError, match="`metadata` must be JSON-serialisable"):
        idx.save(tmp_path / "idx", metadata={"bad": float("nan")})
    with pytest.raises(ValueError, match="`metadata` must be a dict"):
        idx.save(tmp_path / "idx", metadata=[1])
    assert Index.load(path).metadata["run"] == "demo"  # refused saves left the index as it was


def test_save_refuses_a_file_path(rng, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        build("exact", rng)[0].save(tmp_path / "file")

"""Issue 11, index cases C1 (unbounded k), S2/S3 (float32 overflow at add and search) and S5 (manifest
without a checksum of its own). Each test reproduces a case that failed before."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfcontrast as tfc
from tfcontrast.index import Index, IndexFileError, NearestNeighbors, persistence


def test_c1_a_huge_k_is_clamped_to_the_entries_without_allocating_it(tmp_path):
    # Before: k=10**9 padded every row to 10**9 columns (7.45 GiB for one query), k=2**62 raised
    # "array is too big". Run where a large allocation fails instead of exhausting the machine.
    script = textwrap.dedent(
        """
        import resource, numpy as np
        resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))
        from tfcontrast.index import Index, NearestNeighbors
        rng = np.random.default_rng(0)
        x, q = rng.random((50, 8)), rng.random((3, 8))
        for backend, params in (("exact", {}), ("hnsw", {}), ("ivf", {"nlist": 4})):
            idx = Index("euclidean", backend, **params)
            idx.add(x)
            for k in (10**9, 2**62):
                res = idx.search(q, k=k)
                assert res.ids.shape == res.distances.shape == (3, 50), (backend, k, res.ids.shape)
                assert sorted(res.ids[0].tolist()) == list(range(50))
        layer = NearestNeighbors(x, k=10**9)
        assert layer.width == 50 and tuple(layer(q)["ids"].shape) == (3, 50)
        assert layer.search(q, k=2**62).ids.shape == (3, 50)
        # VmHWM is this process's own peak; ru_maxrss would include the parent's memory from before exec
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
        print("peak MiB", int(hwm.split()[1]) // 1024)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split("peak MiB")[-1]) < 2048


def test_c1_milvus_clamps_k_the_same_way(tmp_path, rng):
    idx = tfc.index.MilvusIndex(str(tmp_path / "c1.db"), metric="euclidean")
    idx.add(rng.random((50, 8)))
    assert idx.search(rng.random((3, 8)), k=10**9).ids.shape == (3, 50)


@pytest.mark.parametrize("metric", ["euclidean", "inner_product", "cosine"])
def test_s2_s3_vectors_beyond_float32_distances_are_refused_at_add_and_search(metric):
    # Before: euclidean returned the vector at 2e19 as padding (id -1, distance inf) with len == 2;
    # inner_product returned distance -inf.
    idx = Index(metric)
    with pytest.raises(ValueError, match=r"`embeddings` has 1 row\(s\) whose norm is too large .* first rows \[1\]"):
        idx.add([[0.0, 0.0], [2e19, 0.0]])
    assert len(idx) == 0
    idx.add([[0.0, 0.0], [1e18, 0.0]])  # the largest magnitudes still accepted give finite distances
    res = idx.search([[-1e18, 0.0]], k=2)
    assert np.all(np.isfinite(res.distances)) and sorted(res.ids[0].tolist()) == [0, 1]
    with pytest.raises(ValueError, match=r"`queries` has 1 row\(s\) whose norm is too large"):
        idx.search([[2e19, 0.0]], k=1)
    layer = NearestNeighbors([[0.0, 0.0], [1.0, 0.0]], metric=metric, k=1)
    with pytest.raises(ValueError, match=r"`queries` has 1 row\(s\) whose norm exceeds"):
        layer(np.array([[2e19, 0.0]], np.float32))


def test_s5_an_edited_manifest_field_is_refused(tmp_path, rng):
    # Before: changing "metric" from cosine to inner_product in manifest.json loaded another index.
    idx = Index("cosine")
    idx.add(rng.normal(size=(5, 3)) * 10)
    path = idx.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for field, value in (("metric", "inner_product"), ("next_id", 99), ("params", {"x": 1})):
        manifest_path.write_text(json.dumps(dict(manifest, **{field: value}), indent=2, sort_keys=True))
        with pytest.raises(IndexFileError, match="fails its own checksum"):
            Index.load(path)
        with pytest.raises(IndexFileError, match="fails its own checksum"):
            tfc.index.load(path)
    manifest_path.write_text(json.dumps(manifest))  # reformatting alone is not a modification
    assert Index.load(path).metric == "cosine"


def test_s5_a_manifest_without_checksum_loads_only_on_request(tmp_path, rng):
    idx = Index("euclidean")
    idx.add(rng.normal(size=(4, 3)))
    path = idx.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    old = json.loads(manifest_path.read_text())
    for key in ("kind", persistence.CHECKSUM_KEY):
        old.pop(key)
    manifest_path.write_text(json.dumps(dict(old, format_version=1)))  # as tfcontrast 0.1.0 wrote it
    with pytest.raises(IndexFileError, match="format_version 1 .*legacy_manifest=True"):
        Index.load(path)
    with pytest.warns(RuntimeWarning, match="read unverified"):
        legacy = Index.load(path, legacy_manifest=True)
    assert len(legacy) == 4 and legacy.metric == "euclidean"
    legacy.save(path)  # saving again upgrades it
    assert json.loads(manifest_path.read_text())["format_version"] == persistence.FORMAT_VERSION
    assert len(Index.load(path)) == 4

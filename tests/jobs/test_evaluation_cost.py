"""What the evaluation costs (issue 12, section 4): passes over the data, probe fits, probe width, map method.

One tiny run on generated 16x16x3 images (768 raw pixels, wider than
``RAW_PIXEL_DIMS``), trained once, evaluated once with counters around the
probe fits and the embedding calls; every test reads those counts.
"""

import json

import numpy as np
import pytest

from tfcontrast import probe
from tfcontrast.jobs import evaluation, training
from ..tiny_configs import tiny_config

N_IMAGES, SIZE, CLASSES = 120, 16, 4


def generated_images(path) -> None:
    """``N_IMAGES`` uint8 16x16x3 images of ``CLASSES`` classes (one colour pattern each, plus noise)."""
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 1, size=(CLASSES, 1, 1, 3)) * np.linspace(0.3, 1.0, SIZE)[None, :, None, None]
    y = np.arange(N_IMAGES) % CLASSES
    x = np.clip(patterns[y] + rng.normal(0, 0.1, size=(N_IMAGES, SIZE, SIZE, 3)), 0, 1)
    np.savez(path, x=np.round(255 * x).astype(np.uint8), y=y)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """``(summary, probe fits [(train rows, width)], embedded row counts)`` of one tiny RGB run."""
    folder = tmp_path_factory.mktemp("evalcost")
    generated_images(folder / "images.npz")
    config = tiny_config(
        "directpred", steps=2, **{"data.name": "npz", "data.path": str(folder / "images.npz"),
                                  "train.batch_size": 32, "eval.map_method": "tsne", "eval.knn_k": 5}
    )
    workdir = str(folder / "run")
    training.train(config, workdir, out=lambda line: None, evaluate_after=False)
    fits, embedded = [], []
    real_fit, real_embed, real_limit = probe.fit_linear_probe, probe.embed, evaluation.TSNE_MAX_POINTS

    def counted_fit(x, y, *args, **kwargs):
        fits.append(np.shape(x))
        return real_fit(x, y, *args, **kwargs)

    def counted_embed(network, images, *args, **kwargs):
        embedded.append(len(images))
        return real_embed(network, images, *args, **kwargs)

    probe.fit_linear_probe, probe.embed = counted_fit, counted_embed
    evaluation.TSNE_MAX_POINTS = 10  # below the 30 test images: the map must switch to PCA
    try:
        summary = evaluation.evaluate(workdir, out=lambda line: None)
    finally:
        probe.fit_linear_probe, probe.embed, evaluation.TSNE_MAX_POINTS = real_fit, real_embed, real_limit
    with open(f"{workdir}/summary.json", encoding="utf-8") as f:
        assert json.load(f)["evaluation"] == summary["evaluation"]
    return summary, fits, embedded


def test_one_probe_fit_per_source(evaluated):
    summary, fits, _ = evaluated
    n_train = summary["evaluation"]["settings"]["n_train"]
    # trained, random encoder, raw pixels: one fit each, scored on the clean and the nuisance queries
    # (the evaluation before issue 12 refitted the same probe for each query set: 6 fits)
    assert len(fits) == 3
    assert all(rows == n_train for rows, _ in fits)
    nuisance = summary["evaluation"]["nuisance"]
    for source in ("trained", "random_encoder", "raw_pixels"):
        assert 0.0 <= nuisance[source]["probe_accuracy"] <= 1.0


def test_each_network_embeds_each_split_once(evaluated):
    summary, _, embedded = evaluated
    settings = summary["evaluation"]["settings"]
    n_train, n_test = settings["n_train"], settings["n_test"]
    # two networks (trained, random encoder) x (train split + clean queries + nuisance queries);
    # before issue 12 the random encoder's clean queries were embedded a second time for its collapse indicators
    assert sorted(embedded) == sorted([n_train, n_test, n_test] * 2)
    assert sum(embedded) == 2 * (n_train + 2 * n_test)


def test_raw_pixels_wider_than_256_are_probed_in_256_dims(evaluated):
    summary, fits, _ = evaluated
    note = summary["evaluation"]["settings"]["raw_pixels"]
    assert note["pixels"] == SIZE * SIZE * 3 == 768
    assert note["dim"] == evaluation.RAW_PIXEL_DIMS == 256
    assert "singular vectors" in note["projection"]
    assert max(width for _, width in fits) <= 256  # no probe reads the 768 raw pixels


def test_tsne_is_replaced_by_pca_above_the_size_limit(evaluated):
    summary, _, _ = evaluated
    assert summary["evaluation"]["settings"]["embedding_map"] == {"method": "pca", "tsne_max_points": 10}
    assert evaluation.embedding_map_method("tsne", evaluation.TSNE_MAX_POINTS) == "tsne"
    assert evaluation.embedding_map_method("tsne", evaluation.TSNE_MAX_POINTS + 1) == "pca"
    assert evaluation.embedding_map_method("pca", 10**6) == "pca"


def test_pixel_projection_keeps_the_geometry_of_low_rank_pixels(rng):
    # 300 rows of width 300 and rank 20: the top 256 singular directions hold all of it,
    # so distances and inner products survive the projection exactly (up to float32 round-off)
    x = (rng.normal(size=(300, 20)) @ rng.normal(size=(20, 300))).astype(np.float32)
    queries = {"clean": x[:30] * 0.5}
    with evaluation.single_threaded_numerics():  # as in evaluate (threaded BLAS spin-waits on a loaded machine)
        features = evaluation.pixel_features(x.reshape(300, 10, 10, 3), {"clean": queries["clean"].reshape(30, 10, 10, 3)})
        basis = evaluation.pixel_basis(x, 256)
    assert features.train.shape == (300, 256) and features.queries["clean"].shape == (30, 256)
    full = np.linalg.norm(queries["clean"][:, None] - x[None], axis=-1)
    projected = np.linalg.norm(features.queries["clean"][:, None] - features.train[None], axis=-1)
    np.testing.assert_allclose(projected, full, rtol=1e-3, atol=1e-3 * full.max())
    np.testing.assert_allclose(basis.T @ basis, np.eye(256), atol=1e-4)
    # narrow pixels are kept as they are
    narrow = evaluation.pixel_features(x[:, :64], {"clean": x[:5, :64]})
    np.testing.assert_array_equal(narrow.train, x[:, :64])
    assert narrow.note == {"pixels": 64, "dim": 64, "projection": None}

import numpy as np
import pytest
from matplotlib import image as mpimg

from tfcontrast import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    return mpimg.imread(path)


def test_training_curves_draws_one_panel_per_metric(tmp_path):
    history = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 1.9], "proj_std": [0.1, 0.12, 0.13]}
    one = read_png(plots.training_curves({"loss": history["loss"]}, tmp_path / "one.png"))
    two = read_png(plots.training_curves(history, tmp_path / "curves.png"))
    assert two.shape[1] > 1.8 * one.shape[1]  # two panels side by side (val_loss shares one)
    assert two.std() > 0.01  # not a blank canvas


def test_embedding_map_and_spectrum_write_images(tmp_path, rng):
    x = rng.normal(size=(60, 8))
    labels = np.repeat(np.arange(3), 20)
    for method in ("pca", "tsne"):
        assert read_png(plots.embedding_map(x, labels, tmp_path / f"map_{method}.png", method=method)).std() > 0.01
    assert read_png(plots.singular_value_spectrum(x, tmp_path / "spectrum.png")).std() > 0.01


def test_neighbor_grid_has_a_row_per_query_and_a_column_per_neighbour(tmp_path, rng):
    queries = rng.uniform(size=(3, 8, 8, 1))
    neighbours = rng.uniform(size=(3, 4, 8, 8, 1))
    small = read_png(plots.neighbor_grid(queries[:1], [0], neighbours[:1, :2], [[0, 1]], tmp_path / "small.png"))
    big = read_png(plots.neighbor_grid(queries, [0, 1, 2], neighbours, [[0, 1, 0, 0]] * 3, tmp_path / "grid.png"))
    assert big.shape[0] > 2.5 * small.shape[0] and big.shape[1] > 1.5 * small.shape[1]


def test_label_efficiency_draws_every_classifier(tmp_path):
    def point(k, mean):
        return (k, {"mean": mean, "std": 0.01, "min": mean - 0.02, "max": mean + 0.01})

    curves = {
        "supervised": [point(1, 0.2), point(2, 0.35), point(10, 0.8)],
        "fine_tuned": [point(1, 0.75), point(2, 0.85), point(10, 0.95)],
    }
    one = read_png(plots.label_efficiency({"supervised": curves["supervised"]}, tmp_path / "one.png"))
    two = read_png(plots.label_efficiency(curves, tmp_path / "two.png", labels={"fine_tuned": "fine-tuned"}, title="t"))
    assert two.std() > 0.01 and one.shape == two.shape
    assert np.abs(two - one).sum() > 0  # the second line (and its legend entry) is drawn


def test_writes_atomically_and_leaves_no_temporary_files(tmp_path):
    plots.singular_value_spectrum(np.eye(5), tmp_path / "s.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: plots.training_curves({}, p), "empty"),
        (lambda p: plots.embedding_map(np.ones((4, 2)), [0, 1], p), "2 entries for 4 rows"),
        (lambda p: plots.embedding_map(np.ones((4, 2)), [0] * 4, p, method="umap"), "method"),
        (lambda p: plots.singular_value_spectrum(np.array([[np.nan, 1.0], [1.0, 2.0]]), p), "NaN"),
        (lambda p: plots.label_efficiency({}, p), "curves"),
        (lambda p: plots.label_efficiency({"a": []}, p), "curves"),
        (lambda p: plots.label_efficiency({"a": [(1, {"mean": np.nan, "min": 0.1, "max": 0.2})]}, p), "finite"),
        (lambda p: plots.label_efficiency({"a": [(1, {"mean": 0.5, "min": 0.6, "max": 0.7})]}, p), "min <= mean <= max"),
        (lambda p: plots.label_efficiency({"a": [(0, {"mean": 0.5, "min": 0.5, "max": 0.5})]}, p), "labels per class"),
        (lambda p: plots.neighbor_grid(np.ones((2, 8, 8)), [0, 1], np.ones((3, 1, 8, 8)), [[0], [1], [2]], p), "neighbor_images"),
        (lambda p: plots.neighbor_grid(np.ones((2, 8, 8, 2)), [0, 1], np.ones((2, 1, 8, 8, 2)), [[0], [1]], p), "query_images"),
    ],
)
def test_bad_input_raises_value_error_and_writes_nothing(call, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "x.png")
    assert not any(tmp_path.iterdir())

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib import pyplot as plt
from matplotlib.colors import to_rgb

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
    row_pixels = 1.15 * 110  # 1.15 in per row at 110 dpi; title and legend take the same room in both
    assert big.shape[0] - small.shape[0] > 2 * 0.9 * row_pixels and big.shape[1] > small.shape[1]
    fig = plots.neighbor_grid_figure(queries, [0, 1, 2], neighbours, [[0, 1, 0, 0]] * 3)
    assert len(fig.axes) == 3 * 5  # a query and 4 neighbours per row
    plt.close(fig)


def test_neighbor_grid_has_a_title_a_legend_and_labels_inside_the_images(rng):
    queries = rng.uniform(size=(2, 8, 8, 1))
    neighbours = rng.uniform(size=(2, 3, 8, 8, 1))
    fig = plots.neighbor_grid_figure(queries, [0, 1], neighbours, [[0, 1, 0], [0, 1, 1]], title="simclr: neighbours",
                                     class_names=["zero", "one"])
    try:
        assert fig._suptitle.get_text() == "simclr: neighbours"
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["q 7: a query image (left), of class 7", "neighbour of the query's class", "neighbour of another class"]
        assert "nearest first" in fig.legends[0].get_title().get_text()
        rows = [fig.axes[i * 4:(i + 1) * 4] for i in range(2)]
        labels = [[(ax.texts[0].get_text(), ax.texts[0].get_bbox_patch().get_facecolor()[:3]) for ax in row] for row in rows]
        green, red, blue = to_rgb("green"), to_rgb("red"), to_rgb(plots.QUERY_COLOUR)
        assert labels[0] == [("q zero", blue), ("zero", green), ("one", red), ("zero", green)]
        assert labels[1] == [("q one", blue), ("zero", red), ("one", green), ("one", green)]
        for ax in fig.axes:  # the label sits inside its image, in axes coordinates
            x, y = ax.texts[0].get_position()
            assert ax.texts[0].get_transform() == ax.transAxes and 0 <= x <= 1 and 0 <= y <= 1
        assert [ax.get_title() for ax in rows[0]] == ["query", "1", "2", "3"]
    finally:
        plt.close(fig)
    default = plots.neighbor_grid_figure(queries, [0, 1], neighbours, [[0, 1, 0], [0, 1, 1]])
    assert default._suptitle.get_text() == "nearest neighbours of each query" and default.axes[1].texts[0].get_text() == "0"
    plt.close(default)


def test_training_curves_name_the_method_label_the_axes_and_draw_the_healthy_bands():
    history = {"loss": [1.0, 0.8], "proj_std": [0.2, 0.18], "erank": [12.0, 11.0]}
    bands = {"proj_std": (0.025, 0.1, 0.25), "erank": (0.32, 1.6, 16.0)}
    fig = plots.training_curves_figure(history, title="directpred: training curves", bands=bands)
    try:
        assert fig._suptitle.get_text() == "directpred: training curves"
        loss, std, rank = fig.axes
        assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3
        assert (loss.get_ylabel(), std.get_ylabel(), rank.get_ylabel()) == ("loss", "mean per-dimension std", "effective rank")
        assert "1/sqrt(d) = spread over the sphere" in std.get_title() and "F = all directions" in rank.get_title()
        for ax, (floor, healthy, ceiling) in ((std, bands["proj_std"]), (rank, bands["erank"])):
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert f"healthy range ({healthy:.3g}-{ceiling:.3g})" in legend and f"collapse (< {floor:.3g})" in legend
            spans = sorted(tuple(np.round(p.get_extents().transformed(ax.transData.inverted()).intervaly, 6))
                           for p in ax.patches)
            assert spans == [(0.0, floor), (healthy, ceiling)]
        assert loss.get_legend() is None  # no band, no validation curve: nothing to explain
    finally:
        plt.close(fig)


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

"""Bundled digits and the stratified split."""

import numpy as np
import pytest

from tfcontrast import data


def test_digits_are_float_images_in_unit_range_with_a_stratified_split():
    split = data.load_digits()
    assert split.x_train.shape == (1437, 8, 8, 1) and split.x_test.shape == (360, 8, 8, 1)
    assert split.x_train.dtype == np.float32 and 0.0 == split.x_train.min() and split.x_train.max() == 1.0
    # Stratified: each class's share of the test split is within one example of 20%.
    train_counts, test_counts = np.bincount(split.y_train), np.bincount(split.y_test)
    assert np.all(np.abs(test_counts - 0.2 * (train_counts + test_counts)) <= 1)


def test_split_is_deterministic_in_the_seed():
    a, b, c = data.load_digits(seed=0), data.load_digits(seed=0), data.load_digits(seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_test, c.y_test)


def test_raw_pixel_cosine_nearest_neighbour_is_the_published_baseline():
    """Cosine 1-NN on raw pixels, test queries against train: 0.98 (the bar the issues quote)."""
    split = data.load_digits()
    q = split.x_test.reshape(360, -1)
    r = split.x_train.reshape(1437, -1)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    accuracy = np.mean(split.y_train[np.argmax(q @ r.T, axis=1)] == split.y_test)
    assert accuracy == pytest.approx(0.98, abs=0.005)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"labels": np.zeros(3)}, "labels"),
        ({"labels": np.array([0, 0, 0, 1])}, "single example"),
    ],
)
def test_bad_split_arguments(kwargs, match):
    args = {"x": np.zeros((4, 2)), "labels": np.array([0, 0, 1, 1]), **kwargs}
    with pytest.raises(ValueError, match=match):
        data.stratified_split(args.pop("x"), args.pop("labels"), **args)


# ------------------------------------------------------------ P x K batches

import math  # noqa: E402

import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402


def batches_of(dataset):
    return [tuple(t.numpy() for t in element) for element in dataset]


def test_class_balanced_batches_hold_p_distinct_classes_with_k_distinct_examples_each(rng):
    labels = np.repeat(np.arange(7) * 10 + 3, 9)  # 7 classes with arbitrary ids, 9 examples each
    x = np.arange(len(labels))[:, None]  # x[i] = i: a batch shows which examples were drawn
    for xb, yb in batches_of(data.class_balanced_batches(x, labels, 3, 4, steps=12, seed=5)):
        assert xb.shape == (12, 1) and yb.dtype == np.int32
        np.testing.assert_array_equal(labels[xb[:, 0]], yb)  # each label belongs to its example
        classes, counts = np.unique(yb, return_counts=True)
        assert len(classes) == 3 and np.all(counts == 4)
        for c in classes:
            assert len(set(xb[yb == c, 0])) == 4  # K distinct examples of the class


def test_every_class_appears_in_every_round_of_ceil_c_over_p_batches():
    labels = np.repeat(np.arange(10), 5)
    batches = batches_of(data.class_balanced_batches(np.zeros((50, 2)), labels, 4, 2, steps=12, seed=1))
    rounds = math.ceil(10 / 4)
    for start in range(0, 12, rounds):
        seen = set(np.concatenate([yb for _, yb in batches[start:start + rounds]]))
        assert seen == set(range(10)), (start, seen)


def test_class_balanced_batches_are_a_function_of_the_seed_and_endless_without_steps():
    split = data.load_digits()
    first = batches_of(data.class_balanced_batches(split.x_train, split.y_train, 5, 3, steps=3, seed=0))
    again = batches_of(data.class_balanced_batches(split.x_train, split.y_train, 5, 3, steps=3, seed=0))
    other = batches_of(data.class_balanced_batches(split.x_train, split.y_train, 5, 3, steps=3, seed=1))
    for (xa, ya), (xb, yb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other))
    endless = data.class_balanced_batches(split.x_train, split.y_train, 5, 3)
    assert endless.cardinality() == tf.data.INFINITE_CARDINALITY
    assert data.class_balanced_batches(split.x_train, split.y_train, 5, 3, steps=7).cardinality() == 7


def test_a_class_smaller_than_k_is_an_error_unless_repeats_are_allowed():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 6)
    with pytest.raises(ValueError, match=r"class 1 has 2 examples, fewer than `samples_per_class`=4"):
        data.class_balanced_batches(np.zeros((14, 3)), labels, 2, 4)
    x = np.arange(14)[:, None]
    for xb, yb in batches_of(data.class_balanced_batches(x, labels, 3, 4, steps=3, allow_repeats=True)):
        small = xb[yb == 1, 0]
        assert len(small) == 4 and set(small) == {6, 7}  # both of its examples, each twice
        assert len(set(xb[yb == 0, 0])) == 4  # larger classes still draw distinct examples


def test_augment_is_applied_to_the_images_only():
    labels = np.repeat(np.arange(3), 4)
    dataset = data.class_balanced_batches(np.ones((12, 2), np.float32), labels, 3, 2, steps=1, augment=lambda b: b * 5)
    xb, yb = batches_of(dataset)[0]
    assert np.all(xb == 5) and set(yb) == {0, 1, 2}


# ------------------------------------------------------- pairs and triplets


def test_pairs_are_exactly_balanced_and_labelled_by_class_equality():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])  # class 3 has one example: never an anchor
    x = np.arange(10)[:, None]
    dataset = data.pair_dataset(x, labels, batch_size=20, steps=5, seed=3)
    for element in dataset:
        (x1, x2), y = element
        i, j, y = x1.numpy()[:, 0], x2.numpy()[:, 0], y.numpy()
        assert y.dtype == np.float32 and y.sum() == 10  # exactly half positive
        np.testing.assert_array_equal(y, (labels[i] == labels[j]).astype(np.float32))
        assert np.all(i != j) and not np.any(i == 9)


def test_positive_fraction_sets_the_share_of_positive_pairs():
    labels = np.repeat(np.arange(4), 5)
    for fraction, expected in ((0.0, 0), (0.25, 4), (1.0, 16)):
        _, y = next(iter(data.pair_dataset(np.zeros((20, 1)), labels, 16, steps=1, positive_fraction=fraction)))
        assert y.numpy().sum() == expected


def test_pair_partners_are_uniform_over_their_candidates():
    """Class 0 = {0, 1, 2}: the positive partner of anchor 0 is 1 or 2, each about half the time."""
    labels = np.array([0, 0, 0, 1, 1, 1])
    element = next(iter(data.triplet_dataset(np.arange(6)[:, None], labels, 6000, steps=1)))
    anchors, positives, negatives = (t.numpy()[:, 0] for t in element[0])
    partner_of_0 = positives[anchors == 0]
    assert set(partner_of_0) == {1, 2} and abs(np.mean(partner_of_0 == 1) - 0.5) < 0.05
    assert set(negatives[anchors == 0]) == {3, 4, 5}
    assert abs(np.mean(np.isin(anchors, [0, 1, 2])) - 0.5) < 0.05


def test_triplets_have_a_same_class_positive_and_an_other_class_negative():
    labels = np.repeat(np.arange(5), 4)
    x = np.arange(20)[:, None].astype(np.float32)
    dataset = data.triplet_dataset(x, labels, batch_size=32, steps=3, seed=2, augment=lambda b: b + 0.0)
    again = [[t.numpy() for t in element[0]] for element in data.triplet_dataset(x, labels, 32, steps=3, seed=2)]
    for n, element in enumerate(dataset):
        assert len(element) == 1 and len(element[0]) == 3  # ((anchor, positive, negative),)
        a, p, q = (t.numpy()[:, 0].astype(int) for t in element[0])
        assert np.all(labels[a] == labels[p]) and np.all(a != p) and np.all(labels[a] != labels[q])
        np.testing.assert_array_equal(again[n][0][:, 0], a)  # reproducible from the seed


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: data.class_balanced_batches(np.zeros((0, 2)), np.zeros(0, int), 1, 1), "empty"),
        (lambda: data.class_balanced_batches(np.zeros((4, 2)), [0, 1, 0], 2, 1), "labels"),
        (lambda: data.class_balanced_batches(np.zeros((4, 2)), [0.0, 0.5, 1.0, 1.0], 2, 1), "non-integer"),
        (lambda: data.class_balanced_batches(np.zeros((4, 2)), [0, 0, 1, 1], 3, 1), "classes_per_batch"),
        (lambda: data.class_balanced_batches(np.zeros((4, 2)), [0, 0, 1, 1], 2, 0), "samples_per_class"),
        (lambda: data.class_balanced_batches(np.zeros((4, 2)), [0, 0, 1, 1], 2, 1, augment=3), "augment"),
        (lambda: data.pair_dataset(np.zeros((4, 2)), [0, 0, 0, 0], 4), "at least 2 classes"),
        (lambda: data.pair_dataset(np.zeros((3, 2)), [0, 1, 2], 4), "no class with 2"),
        (lambda: data.pair_dataset(np.zeros((4, 2)), [0, 0, 1, 1], 4, positive_fraction=1.5), "positive_fraction"),
        (lambda: data.triplet_dataset(np.zeros((4, 2)), [0, 0, 1, 1], 0), "batch_size"),
        (lambda: data.triplet_dataset(np.zeros((4, 2)), [0, 0, 1, 1], 4, steps=0), "steps"),
    ],
)
def test_builders_reject_bad_input(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# ------------------------------------------------------------------ loaders


def test_load_npz_reads_both_key_spellings_and_scales_uint8(tmp_path, rng):
    images = rng.integers(0, 256, size=(5, 4, 4, 3)).astype(np.uint8)
    np.savez(tmp_path / "a.npz", images=images, labels=np.array([0, 1, 2, 1, 0], np.int64))
    x, y = data.load_npz(tmp_path / "a.npz")
    assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (5, 4, 4, 3)
    np.testing.assert_allclose(x, images / 255.0, rtol=1e-6)
    np.savez(tmp_path / "b.npz", x=np.full((2, 3), 7.5), y=np.array([[1.0], [4.0]]))
    x, y = data.load_npz(str(tmp_path / "b.npz"))
    assert np.all(x == 7.5) and y.tolist() == [1, 4]


def test_load_npz_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="not a file"):
        data.load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "keys.npz", data=np.zeros(3), target=np.zeros(3))
    with pytest.raises(ValueError, match=r"found keys \['data', 'target'\]"):
        data.load_npz(tmp_path / "keys.npz")
    np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match="object"):
        data.load_npz(tmp_path / "pickled.npz")
    np.savez(tmp_path / "frac.npz", x=np.zeros((2, 3)), y=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="integer class ids"):
        data.load_npz(tmp_path / "frac.npz")
    np.savez(tmp_path / "length.npz", x=np.zeros((3, 3)), y=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        data.load_npz(tmp_path / "length.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        data.load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3)), y=np.zeros(0, int))
    with pytest.raises(ValueError, match="no examples"):
        data.load_npz(tmp_path / "empty.npz")


def write_folder(root, colours):
    """root/<class>/<i>.png: solid 6x4 images of the given RGB colours."""
    for name, values in colours.items():
        (root / name).mkdir(parents=True)
        for i, rgb in enumerate(values):
            Image.new("RGB", (4, 6), rgb).save(root / name / f"{i}.png")


def test_load_image_folder_returns_resized_images_in_unit_range_and_class_names(tmp_path):
    write_folder(tmp_path, {"cat": [(255, 0, 0), (0, 255, 0)], "dog": [(0, 0, 255)]})
    x, y, names = data.load_image_folder(tmp_path, image_size=(3, 2))
    assert names == ["cat", "dog"] and y.tolist() == [0, 0, 1] and y.dtype == np.int32
    assert x.shape == (3, 3, 2, 3) and x.dtype == np.float32
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)  # solid colours survive resizing
    np.testing.assert_allclose(x.reshape(3, -1, 3), np.repeat(expected[:, None], 6, axis=1), atol=1e-6)
    grey, _, _ = data.load_image_folder(tmp_path, image_size=(3, 2), color_mode="grayscale")
    assert grey.shape == (3, 3, 2, 1) and 0.0 <= grey.min() and grey.max() <= 1.0


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        data.load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class sub-folders"):
        data.load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="images"):
        data.load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="color_mode"):
        data.load_image_folder(tmp_path, color_mode="cmyk")
    with pytest.raises(ValueError, match="image_size"):
        data.load_image_folder(tmp_path, image_size=(0, 4))


# ----------------------------------------------------------- labelled_subset


def test_labelled_subset_has_exact_counts_per_class_and_returns_its_indices():
    split = data.load_digits()
    for k in (1, 2, 5, 10):
        x, y, indices = data.labelled_subset(split.x_train, split.y_train, per_class=k, seed=3)
        assert np.array_equal(np.bincount(y, minlength=10), np.full(10, k))
        assert len(set(indices.tolist())) == 10 * k and np.all(np.diff(indices) > 0)
        np.testing.assert_array_equal(x, split.x_train[indices])
        np.testing.assert_array_equal(y, split.y_train[indices])


def test_labelled_subset_fraction_rounds_each_class_share():
    y = np.repeat([0, 1, 2], [100, 51, 3])  # 1% of each: 1, 0.51 -> 1, 0.03 -> at least 1
    _, got, _ = data.labelled_subset(np.zeros((len(y), 2)), y, fraction=0.01, seed=0)
    assert np.bincount(got).tolist() == [1, 1, 1]
    _, got, _ = data.labelled_subset(np.zeros((len(y), 2)), y, fraction=0.1, seed=0)
    assert np.bincount(got).tolist() == [10, 5, 1]  # 5.1 -> 5, 0.3 -> 1 (never a class left out)
    _, got, _ = data.labelled_subset(np.zeros((len(y), 2)), y, fraction=1.0, seed=0)
    assert np.bincount(got).tolist() == [100, 51, 3]


def test_labelled_subset_is_reproducible_nested_and_changes_with_the_seed():
    split = data.load_digits()
    draw = lambda k, seed: data.labelled_subset(split.x_train, split.y_train, per_class=k, seed=seed)[2]  # noqa: E731
    np.testing.assert_array_equal(draw(5, 0), draw(5, 0))
    assert not np.array_equal(draw(5, 0), draw(5, 1))
    assert set(draw(1, 0)) < set(draw(2, 0)) < set(draw(5, 0)) < set(draw(10, 0))  # nested budgets, one seed


def test_labelled_subset_of_the_train_split_is_disjoint_from_the_test_split():
    """Unique example ids through a stratified split: no drawn id belongs to the test side."""
    labels = np.repeat(np.arange(5), 40)
    ids = np.arange(len(labels))
    split = data.stratified_split(ids, labels, test_fraction=0.25, seed=0)
    for seed in range(3):
        x, y, indices = data.labelled_subset(split.x_train, split.y_train, per_class=10, seed=seed)
        assert not set(x.tolist()) & set(split.x_test.tolist())
        np.testing.assert_array_equal(labels[x], y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one"),
        ({"per_class": 1, "fraction": 0.5}, "exactly one"),
        ({"per_class": 0}, "per_class"),
        ({"per_class": 2.5}, "per_class"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"per_class": 4}, r"class 2 has 3 examples .* asks for 4"),
        ({"per_class": 1, "seed": -1}, "seed"),
    ],
)
def test_labelled_subset_bad_arguments(kwargs, match):
    y = np.repeat([0, 1, 2], [5, 6, 3])
    with pytest.raises(ValueError, match=match):
        data.labelled_subset(np.zeros((len(y), 2)), y, **kwargs)
    with pytest.raises(ValueError, match="labels"):
        data.labelled_subset(np.zeros((4, 2)), np.zeros(3, int), per_class=1)

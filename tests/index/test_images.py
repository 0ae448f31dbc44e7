import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.index import Index, build_from_dataset, decode_images, image_dataset, image_files


@pytest.fixture
def folder(tmp_path, rng):
    """Six small PNGs in two sub-folders, plus a file that is not an image."""
    pixels = {}
    for name in ("b/2.png", "a/1.png", "b/10.png", "a/0.png", "c.png", "b/z/deep.PNG"):
        image = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
        path = tmp_path / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(image).numpy())
        pixels[str(path)] = image
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    return tmp_path / "images", pixels


def test_files_are_listed_sorted_with_positions_as_ids(folder):
    root, pixels = folder
    elements = list(image_files(root).as_numpy_iterator())
    paths = [e["data"].decode() for e in elements]
    assert paths == sorted(pixels) and [e["id"] for e in elements] == list(range(6))
    globbed = [e["data"].decode() for e in image_files(str(root / "b" / "**" / "*.*")).as_numpy_iterator()]
    assert globbed == sorted(p for p in pixels if "/b/" in p)


def test_decoded_images_are_the_pixels_in_0_1(folder):
    root, pixels = folder
    for element in image_dataset(root, image_size=(5, 4)).as_numpy_iterator():
        want = pixels[element["data"].decode()] / 255.0
        np.testing.assert_allclose(element["image"], want, atol=1e-6)
    resized = next(image_dataset(root, image_size=(8, 8), channels=1).as_numpy_iterator())["image"]
    assert resized.shape == (8, 8, 1) and resized.dtype == np.float32 and 0 <= resized.min() <= resized.max() <= 1


def test_an_index_built_from_files_returns_their_paths(folder):
    root, pixels = folder
    idx = build_from_dataset(
        lambda images: np.asarray(images).reshape(len(images), -1), image_files(root), Index("euclidean"), 4,
        preprocess=decode_images((5, 4)), progress=False,
    )
    paths = sorted(pixels)
    query = (pixels[paths[3]] / 255.0).reshape(1, -1)
    res = idx.search(query, k=1)
    assert res.ids.tolist() == [[3]] and res.data == [[paths[3]]] and res.distances[0, 0] < 1e-5


def test_bad_patterns_and_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="matches no image files"):
        image_files(tmp_path)
    with pytest.raises(ValueError, match="matches no image files"):
        image_files(str(tmp_path / "*.jpg"))
    with pytest.raises(ValueError, match="`image_size`"):
        decode_images((0, 3))
    with pytest.raises(ValueError, match="`channels`"):
        decode_images((3, 3), channels=2)

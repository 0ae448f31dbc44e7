import subprocess
import sys

import keras
import numpy as np
import pytest

from tfcontrast import losses

LABELLED = [
    losses.TripletLoss(margin=0.3, mining="hard", distance="cosine", soft=True),
    losses.TripletSemiHardLoss(margin=0.4, distance_metric="angular"),
    losses.TripletHardLoss(margin=0.6, soft=True, distance_metric="squared-L2"),
    losses.SupConLoss(temperature=0.2),
    losses.MultiSimilarityLoss(distance="l2", alpha=1.5, epsilon=0.3),
    losses.PNLoss(distance="sql2", positive_mining_strategy="easy", negative_mining_strategy="hard", margin=0.2),
    losses.LiftedStructLoss(margin=0.7),
    losses.XBM(losses.CircleLoss(gamma=32.0), memory_size=24, warmup_steps=2),
]
ALL = LABELLED + [
    losses.ContrastiveLoss(margin=2.5),
    losses.NTXentLoss(temperature=0.3, block_size=16),
    losses.BYOLLoss(),
    losses.SimSiamLoss(),
]


@pytest.mark.parametrize("loss", ALL, ids=lambda l: type(l).__name__)
def test_serialize_round_trip_keeps_config_and_values(loss, rng):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    a = rng.normal(size=(6, 4)).astype(np.float32)
    b = np.array([0, 0, 1, 1, 2, 2]) if loss in LABELLED else rng.normal(size=(6, 4)).astype(np.float32)
    if isinstance(loss, losses.ContrastiveLoss):
        a, b = rng.integers(0, 2, 6).astype(np.float32), rng.uniform(0, 3, 6).astype(np.float32)
    args = (b, a) if loss in LABELLED else (a, b)
    assert float(restored(*args)) == pytest.approx(float(loss(*args)))


@pytest.mark.parametrize("loss", LABELLED, ids=lambda l: type(l).__name__)
def test_compiled_model_survives_keras_save_and_load(loss, tmp_path, rng):
    loss = type(loss).from_config(loss.get_config())  # a fresh one: an XBM memory belongs to one model
    inputs = keras.Input([5])
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer="sgd", loss=loss)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.loss) is type(loss) and restored.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5)


def test_saved_model_loads_in_a_fresh_process_with_only_import_tfcontrast(tmp_path):
    inputs = keras.Input([4])
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss=losses.TripletLoss(margin=0.25, mining="all"))
    model.save(tmp_path / "m.keras")
    code = (
        "import keras, tfcontrast\n"
        f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
        "print(type(m.loss).__name__, m.loss.margin, m.loss.mining)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "TripletLoss 0.25 all"

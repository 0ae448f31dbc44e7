"""KNNMonitor and CollapseMonitor: their numbers, and that they reach History, the progress bar and TensorBoard."""

import csv as csv_module

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.callbacks import CollapseMonitor, KNNMonitor, eigenbasis_alignment
from tfcontrast.data import load_digits
from tfcontrast.models import DirectPred, SimCLR
from tfcontrast.models.ssl.directpred import directpred_predictor
from tfcontrast.probe import embed


def loop_knn(references, reference_labels, queries, query_labels, k, temperature=0.07):
    """Reference: explicit loops over queries and neighbours; cosine; votes weighted exp(-(1 - cos) / T)."""
    correct = 0
    for q, label in zip(queries, query_labels):
        sims = [float(np.dot(q, r) / (np.linalg.norm(q) * np.linalg.norm(r))) for r in references]
        order = sorted(range(len(references)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            votes[reference_labels[i]] = votes.get(reference_labels[i], 0.0) + np.exp(-(1.0 - sims[i]) / temperature)
        correct += max(votes, key=votes.get) == label
    return correct / len(queries)


def test_alignment_hand_values(rng):
    d = 6
    u, _ = np.linalg.qr(rng.normal(size=(d, d)))
    f = u @ np.diag(np.arange(1.0, d + 1)) @ u.T  # distinct eigenvalues: a unique eigenbasis
    # Same eigenvectors, any spectrum (DirectPred's W_p): fully aligned.
    assert eigenbasis_alignment(u @ np.diag(rng.uniform(0.1, 1, d)) @ u.T, f) == pytest.approx(1.0)
    assert eigenbasis_alignment(f, f) == pytest.approx(1.0)
    # In F's eigenbasis, W = [[0, 1], [1, 0]] on the first pair has no diagonal: alignment 0.
    w = np.zeros((d, d))
    w[0, 1] = w[1, 0] = 1.0
    assert eigenbasis_alignment(u @ w @ u.T, f) == pytest.approx(0.0, abs=1e-12)
    # Diagonal 1 and off-diagonal pair 1: energy 1 + 2 on ||W||^2, 1 on the diagonal -> 1/3.
    w[2, 2] = 1.0
    assert eigenbasis_alignment(u @ w @ u.T, f) == pytest.approx(1.0 / 3.0)
    assert eigenbasis_alignment(np.zeros((d, d)), f) == 0.0
    with pytest.raises(ValueError, match="square"):
        eigenbasis_alignment(np.zeros((2, 3)), f)


@pytest.fixture(scope="module")
def digits():
    split = load_digits()
    return split.x_train[:256].reshape(256, 64), split.y_train[:256], split.x_test[:100].reshape(100, 64), split.y_test[:100]


def mlp(seed=0):
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu", kernel_initializer=init)(inputs)
    return keras.Model(inputs, keras.layers.Dense(32, kernel_initializer=init)(h))


def noisy_views(images):
    return tuple(images + tf.random.normal(tf.shape(images), stddev=0.1) for _ in range(2))


def test_knn_monitor_logs_into_history_progress_bar_and_later_callbacks(digits, tmp_path, capsys):
    x_ref, y_ref, x_query, y_query = digits
    keras.utils.set_random_seed(0)
    model = SimCLR(mlp(), projection_dim=16, temperature=0.2, augment=noisy_views)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    monitor = KNNMonitor(x_ref, y_ref, x_query, y_query, k=20, every=3)
    # CSVLogger stands for any later logging callback (TensorBoard reads the same logs dict).
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    history = model.fit(x_ref, batch_size=64, epochs=4, verbose=2, callbacks=[monitor, csv])

    values = history.history["knn_accuracy"]
    assert len(values) == 3  # epochs 1 (the first), 3 (every=3) and 4 (the last); not 2
    # The last logged value is the kNN of the trained encoder, recomputed independently.
    expected = loop_knn(embed(model.encoder, x_ref), y_ref, embed(model.encoder, x_query), y_query, 20)
    assert values[-1] == pytest.approx(expected)
    assert values[-1] > 0.5  # real digits after a little training: far above the 0.1 of chance
    assert "knn_accuracy:" in capsys.readouterr().out
    with open(tmp_path / "log.csv") as f:
        rows = list(csv_module.DictReader(f))
    logged = [row["knn_accuracy"] for row in rows]
    assert logged[1] == "NA"  # epoch 2: not computed
    assert [float(logged[i]) for i in (0, 2, 3)] == pytest.approx(values)


def test_knn_monitor_accepts_any_search_index(digits, tmp_path):
    from tfcontrast.index import MilvusIndex

    x_ref, y_ref, x_query, y_query = digits
    encoder = mlp()
    collections = iter(range(100))

    def fresh_milvus():  # an empty collection per measurement
        return MilvusIndex(str(tmp_path / "knn.db"), f"knn{next(collections)}", "cosine", "FLAT")

    default = KNNMonitor(x_ref, y_ref, x_query, y_query, k=20)
    on_milvus = KNNMonitor(x_ref, y_ref, x_query, y_query, k=20, index_factory=fresh_milvus)
    for monitor in (default, on_milvus):
        monitor.set_model(encoder)
    expected = loop_knn(embed(encoder, x_ref), y_ref, embed(encoder, x_query), y_query, 20)
    assert default.measure()["knn_accuracy"] == pytest.approx(expected)
    assert on_milvus.measure()["knn_accuracy"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="`index_factory`"):
        KNNMonitor(x_ref, y_ref, x_query, y_query, index_factory="milvus")


def test_collapse_monitor_matches_numpy_and_the_directpred_predictor(digits):
    x_ref = digits[0]
    keras.utils.set_random_seed(0)
    model = DirectPred(mlp(), projection_dim=16, hidden_dim=32, augment=noisy_views)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    monitor = CollapseMonitor(x_ref[:128], prefix="m_")
    history = model.fit(x_ref, batch_size=64, epochs=2, verbose=0, callbacks=[monitor])
    logs = {k: v[-1] for k, v in history.history.items()}
    assert len(history.history["m_embedding_std"]) == 2

    h = embed(model.encoder, x_ref[:128]).astype(np.float64)
    z = h / np.linalg.norm(h, axis=1, keepdims=True)
    assert logs["m_embedding_std"] == pytest.approx(z.std(axis=0).mean(), rel=1e-4)
    sigma = np.linalg.svd(h - h.mean(axis=0), compute_uv=False)
    p = sigma / sigma.sum()
    assert logs["m_embedding_erank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-3)

    f = embed(model.projector, h).astype(np.float64)
    w = model.predictor.kernel.numpy()
    assert logs["m_predictor_alignment"] == pytest.approx(eigenbasis_alignment(w, f.T @ f / len(f)), rel=1e-4)
    assert 0.0 < logs["m_predictor_alignment"] <= 1.0 + 1e-9
    # Setting the predictor by the DirectPred rule from these very projections aligns it exactly.
    model.predictor.kernel.assign(directpred_predictor(tf.constant(f.T @ f / len(f), tf.float32), 0.01))
    assert monitor.measure()["m_predictor_alignment"] == pytest.approx(1.0, abs=1e-4)


def test_collapse_monitor_sees_a_collapsed_encoder(digits):
    inputs = keras.Input((64,))
    constant = keras.Model(inputs, keras.layers.Dense(8, kernel_initializer="zeros", bias_initializer="ones")(inputs))
    monitor = CollapseMonitor(digits[0][:32])
    monitor.set_model(constant)
    values = monitor.measure()
    # 0 up to the float32 cancellation of sqrt(E[z^2] - E[z]^2) (healthy: ~1/sqrt(8) = 0.35).
    assert values["embedding_std"] == pytest.approx(0.0, abs=1e-3)
    assert values["embedding_erank"] == pytest.approx(1.0, abs=1e-6)
    assert "predictor_alignment" not in values and "projection_std" not in values


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x, y: KNNMonitor(x, y[:-1], x, y), "reference_labels"),
        (lambda x, y: KNNMonitor(x, y, x[:0], y[:0]), "query_images"),
        (lambda x, y: KNNMonitor(x, y, x, y, k=0), "`k`"),
        (lambda x, y: KNNMonitor(x, y, x, y, temperature=0.0), "`temperature`"),
        (lambda x, y: KNNMonitor(x, y - 1, x, y), "reference_labels"),
        (lambda x, y: KNNMonitor(x, y + 0.5, x, y), "reference_labels"),
        (lambda x, y: CollapseMonitor(x, every=0), "`every`"),
        (lambda x, y: CollapseMonitor(x, batch_size=0), "`batch_size`"),
    ],
)
def test_bad_arguments_raise(make, message):
    x, y = np.zeros((4, 64), np.float32), np.arange(4)
    with pytest.raises(ValueError, match=message):
        make(x, y)

"""KNNMonitor and CollapseMonitor: their numbers, and that they reach History, the progress bar and TensorBoard;
CollapseAlarm: silent on healthy runs, one warning in words on a collapsing one."""

import csv as csv_module
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.callbacks import CollapseAlarm, CollapseMonitor, CollapseWarning, KNNMonitor, eigenbasis_alignment
from tfcontrast.data import load_digits
from tfcontrast.models import BYOL, DirectPred, SimCLR
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
        (lambda x, y: CollapseAlarm(start_fraction=0), "`start_fraction`"),
        (lambda x, y: CollapseAlarm(std_floor=1.0), "`std_floor`"),
        (lambda x, y: CollapseAlarm(rank_floor=-0.1), "`rank_floor`"),
        (lambda x, y: CollapseAlarm(initial={"loss": 1.0}), "`initial`"),
        (lambda x, y: CollapseAlarm(projection_dim=0), "`projection_dim`"),
    ],
)
def test_bad_arguments_raise(make, message):
    x, y = np.zeros((4, 64), np.float32), np.arange(4)
    with pytest.raises(ValueError, match=message):
        make(x, y)


class _Dims:
    """What CollapseAlarm reads of a model: its widths, and stop_training."""

    def __init__(self, projection_dim=None, feature_dim=None):
        self.projection_dim, self.feature_dim, self.stop_training = projection_dim, feature_dim, False


def feed(alarm, model, epochs):
    """Runs the alarm over per-epoch logs as fit would; returns the messages."""
    messages = []
    alarm.out = messages.append
    alarm.set_model(model)
    alarm.on_train_begin()
    for epoch, logs in enumerate(epochs):
        alarm.on_epoch_end(epoch, dict(logs))
    return messages


def test_collapse_alarm_hand_values():
    # below 25% of the first epoch's value: at 0.049 < 0.05, not at 0.06; once only
    messages = feed(CollapseAlarm(), _Dims(), [{"proj_std": 0.2, "erank": 20}, {"proj_std": 0.06, "erank": 20},
                                               {"proj_std": 0.049, "erank": 20}, {"proj_std": 0.01, "erank": 1}])
    assert len(messages) == 1
    assert messages[0].startswith(
        "collapse alarm at epoch 3: the projection std (spread of the normalised projections) fell to 0.049, below 25% "
        "of its first-epoch value 0.2: the projections are collapsing towards one point"
    )
    # the effective rank, relative to its start
    messages = feed(CollapseAlarm(), _Dims(), [{"proj_std": 0.2, "erank": 40}, {"proj_std": 0.2, "erank": 9.9}])
    assert "the effective rank of the representations fell to 9.9, below 25% of its first-epoch value 40" in messages[0]
    assert "dimensional collapse" in messages[0]
    # ceilings, from the first epoch on: std < 0.1 / sqrt(16) = 0.025; erank < 0.02 * 128 = 2.56
    alarm = CollapseAlarm()
    messages = feed(alarm, _Dims(projection_dim=16, feature_dim=128), [{"proj_std": 0.024, "erank": 50}])
    assert "fell to 0.024, below 0.1 x its ceiling 1/sqrt(16) = 0.25" in messages[0] and alarm.epoch == 1
    messages = feed(CollapseAlarm(), _Dims(projection_dim=16, feature_dim=128), [{"proj_std": 0.2, "erank": 2.5}])
    assert "fell to 2.5, below 0.02 x its ceiling 128 (the feature width)" in messages[0]
    assert feed(CollapseAlarm(), _Dims(projection_dim=16, feature_dim=128), [{"proj_std": 0.026, "erank": 2.6}]) == []
    # a resumed run compares with the first epoch of the whole run (initial), from its first epoch on
    messages = feed(CollapseAlarm(initial={"proj_std": 0.2}), _Dims(), [{"proj_std": 0.04}])
    assert "below 25% of its first-epoch value 0.2" in messages[0]
    # stop=True stops; NaN is left to TerminateOnNonFinite
    model = _Dims()
    messages = feed(CollapseAlarm(stop=True), model, [{"proj_std": 0.2}, {"proj_std": 0.01}])
    assert model.stop_training and messages[0].endswith("training stops here (stop=True).")
    assert feed(CollapseAlarm(), _Dims(16, 16), [{"proj_std": float("nan"), "erank": float("nan")}]) == []
    with pytest.raises(ValueError, match=r"this model logs \['loss', 'pos_dist'\]"):
        feed(CollapseAlarm(), _Dims(), [{"loss": 1.0, "pos_dist": 0.5}])


class BYOLWithoutPredictor(BYOL):
    """BYOL without its predictor: collapses (Grill et al. 2020, table 5a), fast with tau_base = 0."""

    def predict_head(self, projections, training):
        return projections


@pytest.mark.parametrize("cls", [BYOLWithoutPredictor, BYOL], ids=["collapsing", "healthy"])
def test_collapse_alarm_on_a_collapsing_and_a_healthy_run(cls, digits):
    """Measured here: without the predictor the projection std falls 0.17 -> 0.04 in 5 epochs (ceiling
    1/sqrt(16) = 0.25); real BYOL stays at 0.22-0.23. The alarm (stop=True) stops the first at epoch 5 or 6."""
    keras.utils.set_random_seed(0)
    views = lambda images: tuple(images + tf.random.normal(tf.shape(images), stddev=0.2) for _ in range(2))  # noqa: E731
    model = cls(mlp(), projection_dim=16, hidden_dim=64, tau_base=0.0, augment=views)
    model.compile(optimizer=keras.optimizers.SGD(0.3, momentum=0.9))
    alarm = CollapseAlarm(stop=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(digits[0], batch_size=64, epochs=8, verbose=0, callbacks=[alarm])
    raised = [w for w in caught if issubclass(w.category, CollapseWarning)]
    stds = history.history["proj_std"]
    if cls is BYOL:
        assert alarm.message is None and not raised and len(stds) == 8, stds
        assert min(stds) > 0.15
    else:
        assert alarm.epoch in (4, 5, 6) and len(stds) == alarm.epoch, stds  # stopped at the alarm
        assert len(raised) == 1 and str(raised[0].message) == alarm.message
        assert "the projection std" in alarm.message and "below 25% of its first-epoch value" in alarm.message
        assert stds[-1] < 0.25 * stds[0]

"""Distiller: its loss on mixed labelled / unlabelled batches against NumPy loops, a fixed teacher, learning, XLA, replicas."""

import math

import keras
import numpy as np
import pytest

import tfcontrast as tfc
from tfcontrast.models import Distiller, FineTuner

from .checks import assert_jit_fit_matches_graph_fit, assert_one_step_matches


@pytest.fixture(scope="module")
def digits(digits_vectors):
    return digits_vectors


def mlp(seed: int, hidden: int = 32, name: str | None = None) -> keras.Model:
    """64 -> hidden (ReLU) -> 10 logits, no BatchNorm or dropout: training and inference agree."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(hidden, activation="relu", kernel_initializer=init)(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, kernel_initializer=init)(h), name=name)


def noisy_teacher(seed: int = 7) -> keras.Model:
    """A teacher with BatchNorm and Dropout(0.5): in training mode its logits would differ from inference."""
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(32, use_bias=False, kernel_initializer=init)(inputs)
    h = keras.layers.BatchNormalization(synchronized=True)(h)
    h = keras.layers.Dropout(0.5)(keras.layers.ReLU()(h))
    return keras.Model(inputs, keras.layers.Dense(10, kernel_initializer=init)(h), name="teacher")


@pytest.fixture(scope="module")
def trained_teacher(digits):
    """The noisy teacher fitted for a few epochs on 300 labels (so its BatchNorm statistics are not the initial ones)."""
    keras.utils.set_random_seed(0)
    teacher = noisy_teacher()
    teacher.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(digits[0][:300], digits[1][:300], batch_size=50, epochs=8, verbose=0)
    return teacher


def np_softmax(row):
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


def np_reference(teacher_logits, student_logits, labels, t, alpha):
    """(loss, distill) of one batch: mean over all rows of the soft cross-entropy + alpha x mean CE over labels >= 0."""
    distill = []
    for t_row, s_row in zip(np.asarray(teacher_logits, np.float64), np.asarray(student_logits, np.float64)):
        p_t = np_softmax([v / t for v in t_row])
        p_s = np_softmax([v / t for v in s_row])
        distill.append(-sum(p * math.log(q) for p, q in zip(p_t, p_s)))
    supervised = []
    for s_row, y in zip(np.asarray(student_logits, np.float64), labels):
        if y >= 0:
            supervised.append(-math.log(np_softmax(list(s_row))[y]))
    distill = sum(distill) / len(distill)
    sup = sum(supervised) / len(supervised) if supervised else 0.0
    return distill + alpha * sup, distill


def mixed_labels(y, labelled: int, seed: int = 0):
    """y with all but `labelled` entries replaced by -1 (unlabelled)."""
    rng = np.random.default_rng(seed)
    out = np.full(len(y), -1, np.int32)
    keep = rng.choice(len(y), labelled, replace=False)
    out[keep] = y[keep]
    return out


# ----------------------------------------------------------------- the loss


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.0), (2.0, 0.7), (0.5, 1.5)])
def test_loss_matches_the_numpy_reference_on_a_mixed_batch(temperature, alpha, digits, trained_teacher):
    """The train step's loss (before the update) and evaluate's loss equal the reference from the teacher in inference mode."""
    x, y = digits[0][:40], digits[1][:40]
    labels = mixed_labels(y, 12)
    distiller = Distiller(trained_teacher, mlp(1), temperature=temperature, alpha=alpha)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    teacher_logits = trained_teacher.predict(x, verbose=0)
    student_logits = distiller.predict(x, verbose=0)
    want_loss, want_distill = np_reference(teacher_logits, student_logits, labels, temperature, alpha)
    logs = distiller.evaluate(x, labels, batch_size=40, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert logs["distill_loss"] == pytest.approx(want_distill, rel=1e-5)
    hit = np.argmax(student_logits, 1) == y
    assert logs["accuracy"] == pytest.approx(hit[labels >= 0].mean())
    assert logs["agreement"] == pytest.approx(np.mean(np.argmax(student_logits, 1) == np.argmax(teacher_logits, 1)))
    step = distiller.train_on_batch(x, labels, return_dict=True)  # logs of the forward pass before the update
    assert step["loss"] == pytest.approx(want_loss, rel=1e-5)


def test_unlabelled_batches_and_alpha_zero_ignore_labels(digits, trained_teacher):
    x, y = digits[0][:32], digits[1][:32]
    distiller = Distiller(trained_teacher, mlp(2), alpha=0.0)
    distiller.compile(optimizer="sgd")
    plain = distiller.evaluate(x, batch_size=32, verbose=0, return_dict=True)["loss"]
    labelled = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert plain == pytest.approx(labelled, rel=1e-6)
    weighted = Distiller(trained_teacher, distiller.student, alpha=1.0)
    weighted.compile(optimizer="sgd")
    all_unlabelled = np.full(32, -1)
    assert weighted.evaluate(x, all_unlabelled, batch_size=32, verbose=0, return_dict=True)["loss"] == pytest.approx(plain, rel=1e-6)


# ---------------------------------------------------------- the fixed teacher


def test_teacher_never_changes_and_owns_no_optimizer_slot(digits, trained_teacher):
    x, y = digits[0][:256], digits[1][:256]
    before = [w.numpy().copy() for w in trained_teacher.weights]
    student = mlp(3)
    start = [w.numpy().copy() for w in student.weights]
    distiller = Distiller(trained_teacher, student, temperature=2.0, alpha=0.5, augment=lambda b: b + 0.05)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    distiller.fit(x, mixed_labels(y, 30), batch_size=64, epochs=2, verbose=0)
    for a, w in zip(before, trained_teacher.weights):
        np.testing.assert_array_equal(a, w.numpy(), err_msg=w.path)
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(start, student.weights))
    assert not trained_teacher.trainable_variables
    assert len(distiller.optimizer.variables) == 2 + 2 * len(student.trainable_variables)  # iterations, lr, Adam's m and v


# ---------------------------------------------------------------- learning


@pytest.mark.parametrize("kind", ["self", "smaller"])
def test_a_student_learns_the_teacher_from_unlabelled_images(kind, digits):
    """Teacher: a FineTuner fitted on 100 labels. Students learn from 1,437 unlabelled images only.

    Self-distillation (a new FineTuner of the same pretrained encoder) and a
    smaller MLP (16 hidden units) both end up agreeing with the teacher on
    most test images and within a few points of its accuracy.
    """
    x, y, x_test, y_test = digits
    keras.utils.set_random_seed(0)
    encoder = keras.Model(*(lambda i: (i, keras.layers.Dense(32, activation="relu")(i)))(keras.Input((64,))))
    x_few, y_few, _ = tfc.data.labelled_subset(x, y, per_class=10, seed=0)
    teacher = FineTuner(encoder, 10)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-2))
    teacher.fit(x_few, y_few, batch_size=50, epochs=40, verbose=0)
    teacher_accuracy = teacher.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    student = FineTuner(encoder, 10) if kind == "self" else mlp(4, hidden=16)
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)
    distiller.fit(x, batch_size=128, epochs=12, verbose=0)
    after = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert teacher_accuracy > 0.7
    assert after["agreement"] > 0.85 and after["agreement"] > before["agreement"] + 0.3, (before, after)
    assert after["accuracy"] > teacher_accuracy - 0.08, (teacher_accuracy, after)
    student_accuracy = np.mean(np.argmax(distiller.student.predict(x_test, verbose=0), 1) == y_test)
    assert student_accuracy == pytest.approx(after["accuracy"])  # the student alone is the classifier


# ------------------------------------------------------- XLA, replicas, precision


def test_jit_compiled_fit_matches_the_graph_fit(digits, trained_teacher):
    assert_jit_fit_matches_graph_fit(
        lambda: Distiller(trained_teacher, mlp(5), temperature=2.0, alpha=0.5),
        digits[0][:64],
        mixed_labels(digits[1][:64], 20),
        weights=lambda distiller: distiller.student.get_weights(),
    )


def test_two_replicas_equal_one_device_after_a_step(two_replicas, digits, trained_teacher):
    """Global means of both terms, even with the labelled rows all on one replica."""
    x, y = digits[0][:32], digits[1][:32]
    labels = np.full(32, -1, np.int32)
    labels[:6] = y[:6]  # replica 0 holds every label, replica 1 none
    single = Distiller(trained_teacher, mlp(6), temperature=2.0, alpha=0.8)
    single.compile(optimizer=keras.optimizers.Adam(1e-2))
    with two_replicas.scope():
        teacher = noisy_teacher()
        teacher.set_weights(trained_teacher.get_weights())
        mirrored = Distiller(teacher, mlp(6), temperature=2.0, alpha=0.8)
        mirrored.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_one_step_matches(
        single, mirrored, x, labels, ["loss", "distill_loss", "accuracy", "agreement"],
        weights=lambda distiller: distiller.student.get_weights(),
    )


def test_mixed_float16_student_with_float32_loss(digits, trained_teacher, float16_policy):
    student = mlp(7)
    assert student.compute_dtype == "float16"
    distiller = Distiller(trained_teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    history = distiller.fit(digits[0][:256], mixed_labels(digits[1][:256], 40), batch_size=64, epochs=3, verbose=0)
    assert all(np.isfinite(v) for v in history.history["loss"])
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert distiller.predict(digits[0][:4], verbose=0).dtype == np.float32


# -------------------------------------------------------------------- saving


def test_keras_file_round_trip(tmp_path, digits, trained_teacher):
    distiller = Distiller(trained_teacher, mlp(8), temperature=2.0, alpha=0.3)
    distiller.compile(optimizer="adam")
    distiller.fit(digits[0][:64], batch_size=32, verbose=0)
    distiller.save(tmp_path / "d.keras")
    restored = keras.models.load_model(tmp_path / "d.keras")
    assert isinstance(restored, Distiller) and (restored.temperature, restored.alpha) == (2.0, 0.3)
    assert not restored.teacher.trainable_variables
    np.testing.assert_array_equal(restored.predict(digits[2], verbose=0), distiller.predict(digits[2], verbose=0))
    np.testing.assert_array_equal(restored.teacher.predict(digits[2], verbose=0), trained_teacher.predict(digits[2], verbose=0))


# ----------------------------------------------------------------- bad input


def test_bad_arguments_are_value_errors_naming_them(two_replicas, trained_teacher):
    inputs = keras.Input((64,))
    five = keras.Model(inputs, keras.layers.Dense(5)(inputs))
    for kwargs, match in [
        ({"student": five}, "5 classes .* 10"),
        ({"student": trained_teacher}, "shares variables"),
        ({"student": keras.Model(trained_teacher.input, trained_teacher.output)}, "shares variables"),
        ({"temperature": 0.0}, "temperature"),
        ({"alpha": -1.0}, "alpha"),
        ({"student": lambda x: x}, "student"),
    ]:
        with pytest.raises(ValueError, match=match):
            Distiller(**{"teacher": trained_teacher, "student": mlp(9), **kwargs})
    with two_replicas.scope(), pytest.raises(ValueError, match="`teacher` was created outside"):
        Distiller(trained_teacher, mlp(9))


def test_bad_labels_fail_before_training(digits, trained_teacher):
    x, y = digits[0][:32], digits[1][:32]
    distiller = Distiller(trained_teacher, mlp(10))
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"class ids in \[-1, 10\)"):
        distiller.fit(x, np.where(y == 3, -2, y), verbose=0)
    with pytest.raises(ValueError, match=r"class ids in \[-1, 10\)"):
        distiller.evaluate(x, np.where(y == 3, 10, y), verbose=0)

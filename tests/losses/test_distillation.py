"""The SimCLRv2 distillation loss against float64 NumPy loops and hand-derived values."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import losses


def np_softmax(row):
    """softmax of one row, written out (max subtracted for stability)."""
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def np_distillation(teacher, student, t):
    """-sum_y P_T(y; t) log P_S(y; t) per example, explicit loops in float64."""
    out = []
    for t_row, s_row in zip(np.asarray(teacher, np.float64), np.asarray(student, np.float64)):
        p_t = np_softmax([v / t for v in t_row])
        p_s = np_softmax([v / t for v in s_row])
        out.append(-sum(p * math.log(q) for p, q in zip(p_t, p_s)))
    return np.array(out)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 3.0])
def test_matches_the_numpy_loops(temperature, rng):
    teacher = rng.normal(scale=3.0, size=(7, 5))
    student = rng.normal(scale=3.0, size=(7, 5))
    want = np_distillation(teacher, student, temperature)
    got32 = losses.distillation_loss(teacher.astype("float32"), student.astype("float32"), temperature)
    got64 = losses.distillation_loss(teacher, student, temperature)
    assert got32.dtype == tf.float32 and got64.dtype == tf.float64
    np.testing.assert_allclose(got32.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got64.numpy(), want, rtol=1e-12)
    mean = losses.DistillationLoss(temperature)(teacher, student)
    assert float(mean) == pytest.approx(want.mean(), rel=1e-6)  # the Keras Loss computes in float32


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_a_one_hot_teacher_gives_the_cross_entropy_at_temperature_t(temperature, rng):
    """Teacher logits 1e4 apart: P_T is one-hot on y, so the loss is -log softmax(student / t)[y]."""
    labels = np.array([0, 3, 1, 3])
    teacher = 1e4 * np.eye(4)[labels]
    student = rng.normal(size=(4, 4))
    got = losses.distillation_loss(teacher, student, temperature).numpy()
    for i, y in enumerate(labels):
        scaled = student[i] / temperature
        cross_entropy = -(scaled[y] - math.log(sum(math.exp(v) for v in scaled)))
        assert got[i] == pytest.approx(cross_entropy, rel=1e-12)


def test_hand_values():
    # Uniform teacher and student over C classes: log C.
    assert float(losses.distillation_loss([[0.0, 0.0, 0.0]], [[5.0, 5.0, 5.0]])[0]) == pytest.approx(math.log(3))
    # Student = teacher: the teacher's entropy; p = softmax([log 3, 0]) = (3/4, 1/4).
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    value = losses.distillation_loss([[math.log(3.0), 0.0]], [[math.log(3.0), 0.0]], 1.0)
    assert float(value[0]) == pytest.approx(entropy, rel=1e-6)
    # Temperature 2 on logits (2 log 3, 0) gives the same (3/4, 1/4).
    value = losses.distillation_loss([[2 * math.log(3.0), 0.0]], [[2 * math.log(3.0), 0.0]], 2.0)
    assert float(value[0]) == pytest.approx(entropy, rel=1e-6)


def test_gradient_is_the_probability_gap_over_t_and_the_teacher_gets_none(rng):
    """d loss / d s_c = (P_S(c; t) - P_T(c; t)) / t; no gradient reaches the teacher."""
    t = 2.0
    teacher = tf.constant(rng.normal(size=(3, 4)))
    student = tf.constant(rng.normal(size=(3, 4)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([teacher, student])
        total = tf.reduce_sum(losses.distillation_loss(teacher, student, t))
    grad_s, grad_t = tape.gradient(total, [student, teacher])
    for i in range(3):
        p_s = np_softmax(student.numpy()[i] / t)
        p_t = np_softmax(teacher.numpy()[i] / t)
        np.testing.assert_allclose(grad_s.numpy()[i], (np.array(p_s) - np.array(p_t)) / t, rtol=1e-10)
    assert grad_t is None or not np.any(grad_t.numpy())


def test_half_precision_inputs_compute_in_float32(rng):
    teacher, student = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    got = losses.distillation_loss(tf.constant(teacher, tf.float16), tf.constant(student, tf.bfloat16), 0.5)
    assert got.dtype == tf.float32
    half = lambda a, d: tf.cast(tf.cast(a, d), tf.float64).numpy()  # noqa: E731
    want = np_distillation(half(teacher, tf.float16), half(student, tf.bfloat16), 0.5)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_class_config_round_trip():
    loss = losses.DistillationLoss(temperature=0.3, name="kd")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, losses.DistillationLoss) and clone.get_config() == loss.get_config()
    assert clone.temperature == 0.3


@pytest.mark.parametrize(
    "teacher, student, temperature, match",
    [
        (np.zeros((2, 3)), np.zeros((2, 3)), 0.0, "temperature"),
        (np.zeros((2, 3)), np.zeros((2, 3)), float("nan"), "temperature"),
        (np.zeros((2, 3)), np.zeros((2, 4)), 1.0, "teacher_logits.*student_logits"),
        (np.zeros((2, 3)), np.zeros((3, 3)), 1.0, "teacher_logits.*student_logits"),
        (np.zeros(3), np.zeros(3), 1.0, "teacher_logits"),
    ],
)
def test_bad_input_is_a_value_error_naming_it(teacher, student, temperature, match):
    with pytest.raises(ValueError, match=match):
        losses.distillation_loss(teacher, student, temperature)

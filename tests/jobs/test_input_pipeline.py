"""The training pipelines never make ``fit`` wait (issue 19): fixed prefetch, tf.data autotuning off.

With tf.data's autotuning on (TensorFlow's default), destroying the iterator
when ``model.fit`` returned sometimes waited 14-20 s without using any CPU
(``benchmarks/bench_train.py --stalls``). Every pipeline the package builds
for training ends in :func:`tfcontrast.data.steady_pipeline`; these tests fail
on a pipeline that leaves autotuning on.
"""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcontrast import data, multicrop, registry
from tfcontrast.jobs import components, inputs

from tfcontrast.text import streams as text_streams

from ..tiny_configs import IMAGE_METHODS, tiny_config


@pytest.fixture(scope="module")
def digits():
    config = tiny_config("directpred")
    return inputs.load_split(config)


def test_steady_pipeline_keeps_the_elements_and_turns_autotuning_off():
    source = tf.data.Dataset.range(10).map(lambda i: i * i, num_parallel_calls=tf.data.AUTOTUNE).batch(3)
    assert source.options().autotune.enabled is not False  # TensorFlow's default: on
    steady = data.steady_pipeline(source)
    assert steady.options().autotune.enabled is False
    assert [b.tolist() for b in steady.as_numpy_iterator()] == [[0, 1, 4], [9, 16, 25], [36, 49, 64], [81]]


def one_method_per_batch_kind() -> list[str]:
    """The first registered image method of each batch kind (the stream is the batch kind's; text: below)."""
    first = {}
    for spec in registry.methods:
        if spec.name in IMAGE_METHODS:
            first.setdefault(spec.batch, spec.name)
    return sorted(first.values())


@pytest.mark.parametrize("method", one_method_per_batch_kind())
def test_the_job_stream_of_every_batch_kind_has_autotuning_off(method, digits):
    config = tiny_config(method)
    views = inputs.augmentation(config, digits.input_shape)
    stream = inputs.training_stream(config, digits, views, start_step=1)
    assert stream.options().autotune.enabled is False, method


def test_the_text_streams_have_autotuning_off():
    ids = tf.ragged.constant([[1, 2, 3, 4, 5, 6, 7, 8]] * 4 + [[2, 3, 4, 5, 6, 7, 8, 9, 10]] * 4, dtype=tf.int32)
    for name, stream in {
        "simcse_batches": text_streams.simcse_batches(ids, batch_size=4, sequence_length=4, steps=2),
        "declutr_batches": text_streams.declutr_batches(ids, batch_size=2, sequence_length=4, min_length=2, max_length=3, steps=2),
    }.items():
        assert stream.options().autotune.enabled is False, name


def test_public_training_pipelines_have_autotuning_off(digits):
    x, y = digits.x_train[:64], digits.y_train[:64]
    crops = multicrop.MultiCropAugmentation(8, 4, num_local=2, global_scale=(0.5, 1.0), local_scale=(0.2, 0.5))
    # (two_view_dataset, class_balanced_batches and pair_dataset are the job streams' sources, tested above)
    pipelines = {
        "multi_crop_dataset": multicrop.multi_crop_dataset(x, 16, crops),
        "triplet_dataset": data.triplet_dataset(x, y, 8, steps=2),
    }
    for name, pipeline in pipelines.items():
        assert pipeline.options().autotune.enabled is False, name


class _EndOfTraining(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.mark = time.perf_counter()


@pytest.mark.slow
def test_fit_returns_without_waiting_on_the_pipeline(digits):
    """Three 25-s fits of the job's stream: none waits more than 1 s after its last callback.

    The waits of autotuned pipelines appeared only after fits longer than
    ~15 s and not after every fit (the autotuning thread wakes at growing
    intervals), hence slow and several fits; the structural tests above are the
    fast guard.
    """
    config = tiny_config("directpred", steps=100_000, **{"train.steps_per_epoch": 100_000})
    model = components.initial_model(config, digits.input_shape, digits.num_classes)
    views = inputs.augmentation(config, digits.input_shape)
    waits = []
    for _ in range(3):
        stream = inputs.training_stream(config, digits, views)
        end, stop = _EndOfTraining(), _StopAfterSeconds(25.0)
        model.fit(stream, epochs=1, steps_per_epoch=100_000, verbose=0, callbacks=[stop, end])
        waits.append(time.perf_counter() - end.mark)
    assert max(waits) < 1.0, waits


class _StopAfterSeconds(keras.callbacks.Callback):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True

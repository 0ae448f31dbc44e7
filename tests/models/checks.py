"""Checks shared by the classifier tests (FineTuner, Distiller): XLA against graph, replicas against one device."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf


def assert_jit_fit_matches_graph_fit(build, x, y, weights=lambda model: model.get_weights()) -> None:
    """Two epochs of ``build()`` with SGD + momentum, with and without XLA: the same losses and weights."""
    results = []
    for jit in (False, True):
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=jit)
        history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        results.append((history.history, weights(model)))
    (graph, w_graph), (xla, w_xla) = results
    np.testing.assert_allclose(xla["loss"], graph["loss"], rtol=1e-4)
    for a, b in zip(w_graph, w_xla):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


def assert_one_step_matches(single, mirrored, x, y, names, weights=lambda model: model.get_weights()) -> None:
    """One ``fit`` step on the whole batch: the mirrored model's logs ``names`` and weights equal the single device's.

    Both models must be compiled (the mirrored one's optimizer inside its strategy's scope).
    """
    results = []
    for model in (single, mirrored):
        history = model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
        results.append(({k: v[0] for k, v in history.history.items()}, weights(model)))
    (logs_1, w_1), (logs_2, w_2) = results
    for name in names:
        assert logs_2[name] == pytest.approx(logs_1[name], rel=1e-5), name
    for a, b in zip(w_1, w_2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)

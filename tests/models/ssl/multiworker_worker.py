"""One worker of the MultiWorkerMirroredStrategy test (run as a script by test_multiworker.py).

Reads TF_CONFIG, trains BYOL for a few steps on fixed views of real digits and
writes every model variable to an .npz file (no pickle) for the test to compare.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from tfcontrast.models import BYOL  # noqa: E402


def main(out_path: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x = (load_digits().images[:64] / 16.0).astype("float32").reshape(64, 64)
    rng = np.random.default_rng(0)
    v1 = x + rng.normal(scale=0.2, size=x.shape).astype("float32")
    v2 = x + rng.normal(scale=0.2, size=x.shape).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((v1, v2)).batch(16)  # global batch 16
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((64,))
        h = keras.layers.Dense(32)(inputs)
        h = keras.layers.BatchNormalization(synchronized=True)(h)
        encoder = keras.Model(inputs, keras.layers.ReLU()(h))
        model = BYOL(encoder, projection_dim=8, hidden_dim=16, tau_base=0.9)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    initial = {w.path: w.numpy() for w in model.weights}
    history = model.fit(dataset, epochs=2, verbose=0)
    final = {w.path: w.numpy() for w in model.weights}
    changed = sum(not np.array_equal(initial[k], final[k]) for k in final)
    np.savez(out_path, losses=np.array(history.history["loss"]), changed=changed, **{f"w/{k}": v for k, v in final.items()})


if __name__ == "__main__":
    main(sys.argv[1])

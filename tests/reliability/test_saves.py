"""Issue 11, "Data lost" and "Crashes and hangs" C2/C3: saves never destroy what they did not write;
loads read only regular files of the expected size.

Each test reproduces a case of the issue that failed before tfcontrast.storage.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import tfcontrast as tfc
from tfcontrast import storage
from tfcontrast.index import Index, IndexFileError


def small_index(seed=0, n=5):
    index = Index()
    index.add(np.random.default_rng(seed).random((n, 4)))
    return index


@pytest.mark.parametrize("path", ["", "."])
def test_d1_saving_to_the_current_directory_is_refused(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(storage.RefusedPathError):
        small_index().save(path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_d2_saving_over_a_user_directory_is_refused(tmp_path):
    user = tmp_path / "userdir"
    (user / "sub").mkdir(parents=True)
    (user / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="not a index written by tfcontrast|not a.*index"):
        small_index().save(user)
    assert (user / "precious.txt").read_text() == "x" and (user / "sub").is_dir()


def test_d2_an_earlier_index_is_replaced(tmp_path):
    small_index(0).save(tmp_path / "idx")
    small_index(1, n=7).save(tmp_path / "idx")
    assert len(Index.load(tmp_path / "idx")) == 7


def encoder():
    inputs = tf.keras.Input((4,))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(inputs))


def test_d3_export_over_a_user_directory_is_refused(tmp_path):
    user = tmp_path / "exp_user"
    user.mkdir()
    (user / "precious.txt").write_text("x")
    with pytest.raises(storage.RefusedPathError):
        tfc.export.export_saved_model(encoder(), user)
    assert sorted(os.listdir(user)) == ["precious.txt"]


def test_d3_an_earlier_export_is_replaced(tmp_path):
    path = tmp_path / "exp"
    tfc.export.export_saved_model(encoder(), path)
    assert tfc.export.is_export(path)
    tfc.export.export_saved_model(encoder(), path)
    assert tfc.export.is_export(path) and sorted(os.listdir(tmp_path)) == [".exp.tfcontrast-lock", "exp"]


def test_saving_through_a_symlink_updates_its_target(tmp_path):
    small_index(0).save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    small_index(1, n=9).save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    assert len(Index.load(tmp_path / "real")) == 9 and len(Index.load(tmp_path / "link")) == 9


def test_c2_a_file_replaced_by_a_link_to_dev_zero_is_refused(tmp_path):
    path = small_index().save(tmp_path / "idx")
    os.remove(os.path.join(path, "index.faiss"))
    os.symlink("/dev/zero", os.path.join(path, "index.faiss"))
    with pytest.raises(IndexFileError, match="symbolic link"):
        Index.load(path)


def test_c3_a_fifo_in_place_of_ids_does_not_block(tmp_path):
    path = small_index().save(tmp_path / "idx")
    os.remove(os.path.join(path, "ids.npy"))
    os.mkfifo(os.path.join(path, "ids.npy"))
    started = time.monotonic()
    with pytest.raises(IndexFileError, match="not a regular file"):
        Index.load(path)
    assert time.monotonic() - started < 5


SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from tfcontrast.index import Index
    index = Index()
    index.add(np.random.default_rng(int(sys.argv[2])).random((20000, 64)))
    print("ready", flush=True)
    while True:
        index.save(sys.argv[1])
    """
)


def test_killed_saves_leave_a_loadable_index_and_no_temporaries(tmp_path):
    """SIGKILL a process that saves in a loop at random moments; the index always loads."""
    target = tmp_path / "idx"
    small_index(0, n=3).save(target)
    rng = np.random.default_rng(0)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(target), str(round_)], stdout=subprocess.PIPE, env=env, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = Index.load(target)  # the previous or the new one, never a broken one
        assert len(loaded) in (3, 20000)
    small_index(1, n=4).save(target)  # the next save removes what the killed ones left
    assert sorted(os.listdir(tmp_path)) == [".idx.tfcontrast-lock", "idx"]
    assert len(Index.load(target)) == 4


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from tfcontrast.index import Index
    index = Index()
    index.add(np.random.default_rng(int(sys.argv[2])).random((500, 16)))
    for _ in range(15):
        index.save(sys.argv[1])
    """
)


def test_two_processes_saving_to_one_path_both_succeed(tmp_path):
    target = tmp_path / "idx"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(i)], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert len(Index.load(target)) == 500
    assert sorted(os.listdir(tmp_path)) == [".idx.tfcontrast-lock", "idx"]

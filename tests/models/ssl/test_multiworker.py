"""BYOL under a real two-process MultiWorkerMirroredStrategy on 127.0.0.1."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

WORKER = pathlib.Path(__file__).with_name("multiworker_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[3]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_byol_to_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        env["CUDA_VISIBLE_DEVICES"] = ""
        cmd = [sys.executable, str(WORKER), str(tmp_path / f"worker{index}.npz")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=240)
        finally:
            for other in procs:
                if other.poll() is None and proc.returncode is None:
                    other.kill()
        assert proc.returncode == 0, err[-3000:]

    results = [np.load(tmp_path / f"worker{i}.npz", allow_pickle=False) for i in range(2)]
    names = [k for k in results[0].files if k.startswith("w/")]
    assert len(names) > 20 and set(names) == set(k for k in results[1].files if k.startswith("w/"))
    for name in names:
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)
    np.testing.assert_array_equal(results[0]["losses"], results[1]["losses"])
    assert np.all(np.isfinite(results[0]["losses"]))
    assert int(results[0]["changed"]) > 20  # online, target, BN statistics and the step all moved
    steps = [k for k in names if k.endswith("ssl_step")]
    assert len(steps) == 1 and int(results[0][steps[0]]) == 8  # 2 epochs x 64 examples / global batch 16

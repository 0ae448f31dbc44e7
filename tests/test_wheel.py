"""The command as a wheel installs it (issue 12 §2): built from a copy of the sources, installed into a
fresh virtual environment outside the clone, and run there as the console script ``tfcontrast`` on a
shortened main job (``--config directpred_digits`` resolved to the packaged config).

Slow (a wheel build and a TensorFlow start, about a minute): ``.ci/run`` runs it as its wheel job
(``python -m pytest -m slow tests/test_wheel.py``) after the default suite.

The fresh venv gets tfcontrast from the wheel only; its dependencies (TensorFlow, faiss, ...) are the
test environment's, reached through a ``.pth`` line naming that environment's site-packages. A path
added by a ``.pth`` file is not itself scanned for ``.pth`` files, so the test environment's editable
install of the clone is not active there: ``import tfcontrast`` finds the wheel's copy (asserted).
"""

import json
import os
import subprocess
import sys
import sysconfig

import pytest

from .test_cli import TINY as SHORT_JOB
from .test_packaged_configs import build_wheel

pytestmark = pytest.mark.slow



def test_the_wheel_runs_the_command_in_a_fresh_venv_outside_the_clone(tmp_path):
    venv, elsewhere = tmp_path / "venv", tmp_path / "elsewhere"
    wheel, pip = build_wheel(tmp_path)
    elsewhere.mkdir()

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "test_environment_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def command(*args, check=True):
        result = subprocess.run([str(venv / "bin" / "tfcontrast"), *args], cwd=elsewhere, env=env,
                                capture_output=True, text=True, timeout=600)
        if check:
            assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
        return result

    where = subprocess.run([str(python), "-c", "import tfcontrast; print(tfcontrast.__file__)"], cwd=elsewhere,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert where == os.path.join(site, "tfcontrast", "__init__.py")  # the wheel's copy, not the clone

    assert command("--version").stdout.startswith("tfcontrast ")
    assert "commands:" in command("--help").stdout
    assert "directpred_digits" in command("configs").stdout
    assert command("configs", "show", "directpred_digits").stdout.startswith('"""')

    trained = command("train", "--config", "directpred_digits", "--workdir", "runs/demo", *SHORT_JOB)
    summary = json.loads((elsewhere / "runs" / "demo" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["method"] == "directpred"
    assert 0.0 <= summary["evaluation"]["knn_accuracy"] <= 1.0
    # stdout is a pipe: one line per epoch, no progress bar redrawn per step
    assert [line.split(" (")[0] for line in trained.stdout.splitlines() if line.startswith("epoch ")] == [
        "epoch 1/2", "epoch 2/2"
    ]
    assert "\r" not in trained.stdout and "━" not in trained.stdout

    import numpy as np

    from tfcontrast import data

    np.save(elsewhere / "q.npy", data.load_digits().x_train[:1])
    looked = command("lookup", "--workdir", "runs/demo", "--query", "q.npy", "--k", "2")
    first = next(line.split() for line in looked.stdout.splitlines() if line.strip().startswith("1 "))
    assert first[1] == "0"  # a training image is its own nearest neighbour

    bad = command("evaluate", "--workdir", "q.npy", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("tfcontrast: error: --workdir 'q.npy' is a file")

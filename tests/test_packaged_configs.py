"""The configs ship with the package: found by name from a clone and from an installed wheel."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tfcontrast import packaged_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "configs")
FILES = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f != "__init__.py")


def test_in_a_clone_the_configs_are_the_top_level_folder():
    assert str(packaged_configs.directory()) == CONFIG_DIR
    assert packaged_configs.names() == FILES and "base" in FILES and "directpred_digits" in FILES


def test_every_config_has_a_one_line_summary_and_the_listing_shows_it():
    listing = packaged_configs.listing().splitlines()
    assert len(listing) == len(FILES)
    for name, line in zip(FILES, listing):
        summary = packaged_configs.summary(name)
        assert summary.endswith("."), (name, summary)
        assert line.split()[0] == name and line.rstrip().endswith(summary)


def test_resolve_takes_a_path_first_then_a_name(tmp_path, monkeypatch):
    packaged = os.path.join(CONFIG_DIR, "simclr_digits.py")
    assert packaged_configs.resolve("simclr_digits") == packaged_configs.resolve("simclr_digits.py")
    assert str(packaged_configs.resolve("simclr_digits")) == packaged
    # a file of the same name in the working folder is what the user means
    (tmp_path / "simclr_digits.py").write_text("def get_config(): pass\n")
    monkeypatch.chdir(tmp_path)
    assert str(packaged_configs.resolve("simclr_digits.py")) == "simclr_digits.py"
    assert str(packaged_configs.resolve("simclr_digits")) == packaged  # a bare name is never a file without .py
    assert packaged_configs.resolve("elsewhere/simclr_digits.py") is None
    assert packaged_configs.resolve("nope") is None and packaged_configs.resolve("__init__") is None
    assert packaged_configs.text("base").startswith('"""Shared sections')
    with pytest.raises(ValueError, match="no packaged config 'nope'"):
        packaged_configs.text("nope")


def _copy_sources(dest):
    """The files a build reads, copied so that the build leaves nothing in the clone."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("tfcontrast", "configs"):
        shutil.copytree(os.path.join(ROOT, folder), dest / folder, ignore=ignore)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), dest / name)


def build_wheel(tmp_path):
    """Builds the wheel from a copy of the sources in ``tmp_path``; returns ``(wheel path, pip command)``."""
    src, dist = tmp_path / "src", tmp_path / "dist"
    _copy_sources(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # in place (no download) where the environment can build; a fresh venv (CI's) lacks `wheel`: pip fetches it
    in_place = ["--no-build-isolation"] if all(importlib.util.find_spec(m) for m in ("setuptools", "wheel")) else []
    subprocess.run([*pip, "wheel", "--no-deps", *in_place, "-w", str(dist), str(src)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = dist.glob("tfcontrast-*.whl")
    return wheel, pip


CHECK_INSTALLED = """
import json, sys
from tfcontrast import cli, config, packaged_configs
sys.argv = ["tfcontrast", "configs"]
try:
    cli.run()
except SystemExit as stop:
    assert not stop.code, stop.code
supcon = config.validate(config.load("supcon_digits"))
print(json.dumps({
    "package": config.__file__,
    "directory": str(packaged_configs.directory()),
    "names": packaged_configs.names(),
    "resolved": str(packaged_configs.resolve("directpred_digits")),
    "supcon": [supcon.method, supcon.loss.name, supcon.model.embedding_dim],
}))
"""


def test_a_wheel_holds_the_configs_and_resolves_them_by_name_outside_the_clone(tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    wheel, pip = build_wheel(tmp_path)
    elsewhere.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        metadata = archive.read(next(m for m in members if m.endswith("METADATA"))).decode()
        entry_points = archive.read(next(m for m in members if m.endswith("entry_points.txt"))).decode()
    assert {f"tfcontrast/configs/{name}.py" for name in FILES} <= members
    assert "tfcontrast = tfcontrast.cli:run" in entry_points
    assert "Provides-Extra: test" in metadata and "Requires-Dist: ml-collections" in metadata

    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", CHECK_INSTALLED], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    installed = site / "tfcontrast"
    assert found["package"].startswith(str(installed))  # the wheel's copy, not the clone
    assert found["directory"] == str(installed / "configs") and found["names"] == FILES
    assert found["resolved"] == str(installed / "configs" / "directpred_digits.py")
    assert found["supcon"] == ["embedding", "supcon", 64]
    for name in FILES:
        assert f"  {name} " in result.stdout, name

"""The README is the front door: its commands are the ones CI runs and its Python runs as written."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SKIP = "<!-- readme-test: skip -->"


def fenced_blocks(text: str, language: str) -> list[str]:
    """The ```language blocks of a Markdown text, without those marked with the skip comment."""
    blocks = []
    for match in re.finditer(r"(?P<before>[^\n]*)\n```" + language + r"\n(?P<body>.*?)\n```", text, re.S):
        if match.group("before").strip() != SKIP:
            blocks.append(match.group("body"))
    return blocks


def test_fenced_blocks_finds_and_skips():
    text = "intro\n```python\na = 1\n```\n" + SKIP + "\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert fenced_blocks(text, "python") == ["a = 1"]
    assert fenced_blocks(text, "bash") == ["ls"]


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    main_command = fenced_blocks(text.split("<!-- main-command -->", 1)[1], "bash")[0]
    test_command = fenced_blocks(text.split("<!-- test-command -->", 1)[1], "bash")[0]
    assert main_command.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert "tfcontrast train --config configs/directpred_digits.py --workdir runs/demo" in main_command
    assert test_command == (
        'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest -n 2 --dist loadscope'
    )
    assert text.index("<!-- main-command -->") < text.index("<!-- test-command -->") < text.index("## What the main job")
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (README.parent / image).is_file(), image


def test_readme_python_blocks_run_as_written(tmp_path):
    """Every ```python block, in order, in one fresh interpreter (blocks build on each other)."""
    blocks = fenced_blocks(README.read_text(), "python")
    assert len(blocks) >= 6
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # The blocks save a model, an index and an export where they say they do.
    for written in ("digits_triplet.keras", "digits_index", "digits_export/saved_model.pb"):
        assert (tmp_path / written).exists(), written


def default_run_block(text: str) -> str:
    """The output of the default run as the README shows it (the block after ``<!-- default-run-output -->``)."""
    after = text.split("<!-- default-run-output -->", 1)[1]
    return re.search(r"```\n(.*?)\n```", after, re.S).group(1)


def readme_numbers(block: str) -> dict[str, float]:
    """The scores the README states for the default run, by their summary.json names."""
    patterns = {
        "knn_accuracy": r"kNN@20 accuracy ([0-9.]+)",
        "probe_accuracy": r"probe ([0-9.]+)",
        "recall@1": r"recall@1 ([0-9.]+)",
        "recall@5": r"recall@5 ([0-9.]+)",
        "map@r": r"mAP@R ([0-9.]+)",
        "nuisance_knn": r"under nuisance [^:]*: kNN ([0-9.]+)",
        "random_encoder_knn": r"\(random encoder ([0-9.]+), raw pixels",
        "raw_pixels_knn": r"raw pixels ([0-9.]+)\); probe",
        "effective_rank": r"effective rank ([0-9.]+) of",
    }
    out = {}
    for name, pattern in patterns.items():
        match = re.search(pattern, block)
        assert match, f"the README's default-run block has no {name} ({pattern})"
        out[name] = float(match.group(1))
    return out


def test_the_default_run_block_states_every_score():
    numbers = readme_numbers(default_run_block(README.read_text()))
    assert 0.9 < numbers["knn_accuracy"] <= 1 and 0 < numbers["nuisance_knn"] <= 1, numbers


@pytest.mark.slow
def test_the_readme_default_run_numbers_are_what_a_fresh_run_gives(tmp_path):
    """Runs the main command (about 70 s on 2 cores) and compares its summary.json with the README."""
    text = README.read_text()
    command = fenced_blocks(text.split("<!-- main-command -->", 1)[1], "bash")[0].split(" && ")[-1]
    args = command.split()[1:]  # .venv/bin/tfcontrast train --config ... --workdir runs/demo
    args[args.index("--workdir") + 1] = str(tmp_path / "demo")
    args[args.index("--config") + 1] = str(README.parent / args[args.index("--config") + 1])
    result = subprocess.run(
        [sys.executable, "-m", "tfcontrast", *args], cwd=tmp_path, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((tmp_path / "demo" / "summary.json").read_text())["evaluation"]
    fresh = {
        "knn_accuracy": evaluation["knn_accuracy"],
        "probe_accuracy": evaluation["probe_accuracy"],
        "recall@1": evaluation["recall@1"],
        "recall@5": evaluation["recall@5"],
        "map@r": evaluation["map@r"],
        "nuisance_knn": evaluation["nuisance"]["trained"]["knn_accuracy"],
        "random_encoder_knn": evaluation["baselines"]["random_encoder"]["knn_accuracy"],
        "raw_pixels_knn": evaluation["baselines"]["raw_pixels"]["knn_accuracy"],
        "effective_rank": evaluation["collapse"]["effective_rank"],
    }
    stated = readme_numbers(default_run_block(text))
    for name, value in stated.items():
        digits = 1 if name == "effective_rank" else 4
        assert round(fresh[name], digits) == value, (name, fresh[name], value)

"""The README is the front door: its commands are the ones CI runs and its Python runs as written."""

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
    assert test_command == 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
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

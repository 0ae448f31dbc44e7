"""``tfcontrast finetune``: its options (in-process) and, slow-marked, the command in a subprocess.

The job itself is tested in tests/jobs/test_finetuning.py; this file keeps the
command's options equal to the job's defaults and checks that a run through
the command gives what the job gives in-process (the same subsets, the same
accuracies: reproducible across processes).
"""

import inspect
import json
import os
import subprocess
import sys

import pytest

from tfcontrast import cli
from tfcontrast.jobs import finetuning, training

from .tiny_configs import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "finetune: --steps must be >= 1, got 0"),
        (["--encoder-lr-multiplier", "-1"], "finetune: --encoder-lr-multiplier must be > 0, got -1.0"),
        (["--labels-per-class", "1,x"], "--labels-per-class takes distinct ints >= 1, comma-separated, got '1,x'"),
        (["--labels-per-class", "0"], "--labels-per-class takes distinct ints >= 1"),
        (["--seeds", "0,0"], "--seeds takes distinct ints >= 0"),
    ],
)
def test_bad_options_are_usage_errors(args, message):
    try:
        positional, overrides, help_wanted = cli._parse_flags(["tfcontrast", "finetune", "--workdir", "w", *args])
        assert cli._command(positional) == "finetune" and not overrides and not help_wanted
        cli._refuse_flags("finetune", overrides)  # every finetune option is finetune's
        with pytest.raises(cli.UsageError, match=message.replace("(", r"\(")):
            cli._finetune("w")
    finally:
        cli.FLAGS.unparse_flags()  # the next parse starts from the defaults


def test_option_defaults_are_the_job_defaults():
    recipe = finetuning.Recipe().to_dict()
    assert set(cli.RECIPE_FLAGS) == set(recipe)
    for key, value in recipe.items():
        if key != "batch_size":  # shared with `index` (default 256 there); finetune passes only the options given
            assert cli.FLAGS[key].default == value, key
    defaults = inspect.signature(finetuning.finetune).parameters
    for flag, arg in (("labels_per_class", "labels_per_class"), ("seeds", "seeds"), ("distill", "distill")):
        default = cli.FLAGS[flag].default
        assert (default if isinstance(default, bool) else tuple(map(int, default))) == defaults[arg].default, flag
    assert "finetune" in cli.COMMANDS and cli.USAGES["finetune"].startswith("tfcontrast finetune --workdir")
    assert "labels per class" in cli.help_text(["tfcontrast", "finetune"])


def test_options_of_finetune_are_refused_elsewhere():
    try:
        positional, overrides, _ = cli._parse_flags(["tfcontrast", "evaluate", "--workdir", "w", "--distill"])
        with pytest.raises(cli.UsageError, match="evaluate takes no --distill"):
            cli._refuse_flags(cli._command(positional), overrides)
    finally:
        cli.FLAGS.unparse_flags()


@pytest.mark.slow
def test_the_command_gives_what_the_job_gives_in_process(tmp_path):
    workdir = str(tmp_path / "run")
    training.train(tiny_config("directpred", steps=4), workdir, out=lambda _: None, evaluate_after=False)
    recipe = finetuning.Recipe(steps=5, batch_size=8, lr=3e-3, distill_steps=3, distill_batch_size=32, from_layer=0)
    flags = ["--steps", "5", "--batch-size", "8", "--lr", "0.003", "--distill-steps", "3", "--distill-batch-size", "32"]
    result = subprocess.run(
        [sys.executable, "-m", "tfcontrast.cli", "finetune", "--workdir", workdir, "--labels-per-class", "1,2",
         "--seeds", "1", "--distill", "--from-layer", "0", *flags],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    by_command = json.loads(open(os.path.join(workdir, "semi_supervised.json")).read())
    assert by_command["recipe"] == recipe.to_dict()  # the options given, the Recipe's defaults for the others
    assert os.path.isfile(os.path.join(workdir, "plots", "label_efficiency.png"))
    assert "2 per class (20 labels)" in result.stdout and "semi_supervised.json" in result.stdout
    in_process = finetuning.finetune(workdir, labels_per_class=(1, 2), seeds=(1,), distill=True, recipe=recipe, out=lambda _: None)
    for a, b in zip(by_command["budgets"], in_process["budgets"]):
        assert a["runs"] == b["runs"]  # the same subsets, accuracies and agreement in another process

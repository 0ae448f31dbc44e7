"""The ``tfcontrast`` command: train, evaluate and search similarity models.

Usage::

    tfcontrast train --config NAME_OR_FILE --workdir runs/<name> [--config.key=value ...]
    tfcontrast evaluate --workdir runs/<name>
    tfcontrast lookup --workdir runs/<name> --query FILE [--k 5]
    tfcontrast finetune --workdir runs/<name> [--labels-per-class 1,2,5,10] [--distill] [recipe options]
    tfcontrast configs [show NAME]

* ``train`` validates the config (every problem is reported with its key,
  before anything is written), trains with a Keras progress bar, checkpoints
  every epoch, then evaluates and exports. The same command on the same
  workdir continues an interrupted run; on a finished run it does nothing
  more. See :mod:`tfcontrast.jobs.training` and :mod:`tfcontrast.jobs.workdir`.
* ``evaluate`` re-scores a trained run from its saved model and rewrites its
  index, export, plots and ``summary.json`` (:mod:`tfcontrast.jobs.evaluation`).
* ``lookup`` prints the ``k`` nearest training examples of an image file or
  ``.npy`` array, with labels and distances (:mod:`tfcontrast.jobs.queries`).
* ``finetune`` measures the label-efficiency curve of a finished run: for
  each budget of labels per class and each subset seed, a supervised network
  trained from scratch, a linear probe, the fine-tuned network and (with
  ``--distill``) its self-distilled student, scored on the test split; writes
  ``semi_supervised.json`` and ``plots/label_efficiency.png``
  (:mod:`tfcontrast.jobs.finetuning`; the recipe options are the fields of its ``Recipe``).
* ``configs`` lists the packaged configs, one line each; ``configs show NAME``
  prints one, to copy and edit (:mod:`tfcontrast.packaged_configs`).

``--config`` takes a packaged config name (``directpred_digits``) or a config
file (``configs/directpred_digits.py``, ``my.py``): an ``ml_collections`` file
whose ``get_config()`` returns the run's ``ConfigDict``
(:mod:`tfcontrast.config`). Any key can be overridden as
``--config.optimizer.lr=0.1`` (a bool also as ``--config.train.jit_compile`` /
``--noconfig.train.jit_compile``); ``--config.loss.name=supcon`` switches the
loss and resets its section to that loss's defaults before the other
``--config.loss.*`` overrides apply. Exit status: 0 done, 1 the run failed,
2 bad command line or config.
"""

from __future__ import annotations

import re
import sys

from absl import app, flags, logging

from tfcontrast import config as config_lib

COMMANDS = ("train", "evaluate", "lookup", "finetune", "configs")
USAGE = """usage:
  tfcontrast train --config NAME_OR_FILE --workdir runs/<name> [--config.key=value ...]
  tfcontrast evaluate --workdir runs/<name>
  tfcontrast lookup --workdir runs/<name> --query FILE [--k 5]
  tfcontrast finetune --workdir runs/<name> [--labels-per-class 1,2,5,10] [--seeds 0,1,2] [--distill]
                      [--from-layer 1] [--steps 300] [--lr 1e-3] ... (recipe options: tfcontrast --helpfull)
  tfcontrast configs [show NAME]
  --config NAME|FILE train: a packaged config (`tfcontrast configs` lists them) or a config file;
                     --config.<section>.<key>=VALUE overrides a key
  --workdir DIR      the run's folder (checkpoints, logs, model, index, export, plots, summary.json)
  --query FILE       lookup: an image (png/jpeg/bmp/gif) or a .npy array of model inputs
  --k N              lookup: neighbours to print (default 5)
(tfcontrast --helpfull lists every flag)"""

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config", None, "train: a packaged config name (e.g. directpred_digits; `tfcontrast configs` lists them) or a "
    "config file; override keys with --config.section.key=value.",
)
flags.DEFINE_string("workdir", None, "the run's folder: checkpoints, logs, model, index, export, plots, summary.json.")
flags.DEFINE_string("query", None, "lookup: an image file (png/jpeg/bmp/gif) or a .npy array of model inputs.")
flags.DEFINE_integer("k", 5, "lookup: how many neighbours to print.", lower_bound=1)
# finetune (defaults: tfcontrast.jobs.finetuning.finetune and its Recipe; tests/test_cli.py keeps them equal)
flags.DEFINE_list("labels-per-class", ["1", "2", "5", "10"], "finetune: labelled budgets, in labels per class.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "finetune: seeds of the labelled subsets (each point: mean and spread over them).")
flags.DEFINE_boolean("distill", False, "finetune: also self-distil every fine-tuned network on the unlabelled images.")
flags.DEFINE_integer("from-layer", 1, "finetune: projection-head layers kept under the classifier (0: the encoder's features).")
flags.DEFINE_integer("steps", 300, "finetune: optimizer steps of fine-tuning (also of the probe and the supervised network).")
flags.DEFINE_integer("batch-size", 64, "finetune: labelled images per step (at most the subset).")
flags.DEFINE_float("lr", 1e-3, "finetune: Adam learning rate of the classifier.")
flags.DEFINE_float("encoder-lr-multiplier", 0.1, "finetune: the pretrained layers learn at this times --lr.")
flags.DEFINE_enum("batchnorm", "batch", ["frozen", "batch"], "finetune: pretrained BatchNorm in inference mode (frozen) or on batch statistics.")
flags.DEFINE_integer("max-shift", 2, "finetune: labelled images are shifted up to this many pixels per axis.")
flags.DEFINE_float("max-degrees", 10.0, "finetune: ... and rotated up to this many degrees.")
flags.DEFINE_integer("distill-steps", 500, "finetune: optimizer steps of distillation.")
flags.DEFINE_integer("distill-batch-size", 128, "finetune: images per distillation step (labelled or not).")
flags.DEFINE_float("distill-lr", 1e-3, "finetune: Adam learning rate of the student.")
flags.DEFINE_float("temperature", 1.0, "finetune: temperature of the teacher's soft labels.")
flags.DEFINE_float("alpha", 0.0, "finetune: weight of the supervised loss on the labelled images during distillation.")


class UsageError(Exception):
    """A bad command line or config: printed without a traceback, exit status 2."""


# ``--config.<key>=VALUE`` / ``--config.<key>`` / ``--noconfig.<key>``: taken out before absl parses the rest.
_OVERRIDE = re.compile(r"^--?(no)?config\.([^=]+)(?:=(.*))?$", re.S)


class UsageError(Exception):
    """A bad command line or config: printed without a traceback, exit status 2."""


def main(args) -> int:
    """Dispatches the command (flags already parsed by :func:`_parse_flags`: ``args = (positional, overrides)``)."""
    positional, overrides = args
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress bar
    try:
        command = _command(positional)
        if command == "train":
            config = _train_config(overrides)
            workdir = _required("workdir", "train")
            from tfcontrast import jobs

            jobs.train(config, workdir)
        elif command == "configs":
            _refuse_config("configs", overrides)
            print(_configs(positional[2:]))
        elif command == "evaluate":
            _refuse_config("evaluate", overrides)
            from tfcontrast import jobs

            jobs.evaluate(_required("workdir", "evaluate"))
        elif command == "finetune":
            _refuse_config("finetune", overrides)
            _finetune(_required("workdir", "finetune"))
        else:
            _refuse_config("lookup", overrides)
            workdir, query = _required("workdir", "lookup"), _required("query", "lookup")
            from tfcontrast import jobs

            print(jobs.format_neighbours(jobs.lookup(workdir, query, FLAGS.k), query))
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the progress bar's line
        _fail("interrupted; run the same command again to continue from the last checkpoint (every epoch)", status=130)
    except (UsageError, config_lib.ConfigError) as err:
        _fail(str(err), status=2)
    except ValueError as err:
        _fail(str(err), status=1)
    return 0


def _command(argv) -> str:
    """The command of the positional arguments (``argv[0]`` is the program)."""
    positional = list(argv[1:])
    if positional and positional[0] == "configs" and (len(positional) == 1 or positional[1] == "show" and len(positional) == 3):
        return "configs"
    if len(positional) != 1 or positional[0] not in COMMANDS:
        seen = " ".join(positional) if positional else "nothing"
        raise UsageError(
            f"expected one command of {', '.join(COMMANDS)}, got {seen} "
            f"(config overrides are written --config.KEY=VALUE)\n{USAGE}"
        )
    return positional[0]


def _configs(arguments) -> str:
    from tfcontrast import packaged_configs

    if arguments:  # show NAME
        try:
            return packaged_configs.text(arguments[1]).rstrip("\n")
        except ValueError as err:
            raise UsageError(str(err)) from None
    return (
        "packaged configs (tfcontrast train --config NAME; tfcontrast configs show NAME prints one):\n"
        + packaged_configs.listing()
    )


def _finetune(workdir: str) -> None:
    from tfcontrast.jobs import finetuning

    def ints(name, low):
        try:
            return finetuning.distinct_ints([int(v) for v in FLAGS[name].value], name, low)
        except ValueError:
            raise UsageError(f"--{name} takes distinct ints >= {low}, comma-separated, got {','.join(FLAGS[name].value)!r}") from None

    try:
        recipe = finetuning.Recipe(**{key: FLAGS[key.replace("_", "-")].value for key in finetuning.Recipe.docs()})
    except ValueError as err:
        raise UsageError(re.sub(r"`(\w+)`", lambda m: "--" + m.group(1).replace("_", "-"), f"finetune: {err}")) from None
    finetuning.finetune(workdir, ints("labels-per-class", 1), ints("seeds", 0), distill=FLAGS.distill, recipe=recipe)


def _required(name: str, command: str) -> str:
    value = FLAGS[name].value
    if not value:
        raise UsageError(f"{command} needs --{name}\n{USAGE}")
    return value


def _refuse_config(command: str, overrides) -> None:
    if FLAGS["config"].present or overrides:
        raise UsageError(
            f"{command} takes no --config: it reads the run's own config from <workdir>/config.json"
            if command != "configs" else "configs takes no --config"
        )


def _train_config(overrides: dict):
    if not FLAGS["config"].present:
        raise UsageError(f"train needs --config (e.g. --config directpred_digits)\n{USAGE}")
    return config_lib.validate(config_lib.load(FLAGS.config, overrides, from_text=True))


def _parse_flags(argv):
    """absl flag parsing of everything but the config overrides; errors read as one line, exit status 2.

    Returns ``(positional arguments, {dotted key: text})`` for :func:`main`.
    """
    rest, overrides = [argv[0]], {}
    for arg in argv[1:]:
        match = _OVERRIDE.match(arg)
        if match is None:
            rest.append(arg)
            continue
        negated, key, text = match.groups()
        if negated and text is not None:
            _fail(f"{arg}: --noconfig.KEY takes no value", status=2)
        overrides[key] = "false" if negated else ("true" if text is None else text)
    try:
        return FLAGS(rest), overrides
    except flags.Error as err:
        _fail(f"{err}\n{USAGE}", status=2)


def _fail(message: str, status: int) -> None:
    print(f"tfcontrast: error: {message}", file=sys.stderr)
    sys.exit(status)


def run(argv=None) -> None:
    """The console entry point (``tfcontrast``, declared in setup.py)."""
    main_module = sys.modules.get("__main__")
    if main_module is not None and not getattr(main_module, "__doc__", None):
        main_module.__doc__ = USAGE  # what --help prints (absl reads the __main__ docstring)
    app.run(main, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()

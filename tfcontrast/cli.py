"""The ``tfcontrast`` command: train, evaluate and search similarity models.

Usage::

    tfcontrast train --config configs/<name>.py --workdir runs/<name> [--config.key=value ...]
    tfcontrast evaluate --workdir runs/<name>
    tfcontrast lookup --workdir runs/<name> --query FILE [--k 5]

* ``train`` validates the config (every problem is reported with its key,
  before anything is written), trains with a Keras progress bar, checkpoints
  every epoch, then evaluates and exports. The same command on the same
  workdir continues an interrupted run; on a finished run it does nothing
  more. See :mod:`tfcontrast.jobs.training` and :mod:`tfcontrast.jobs.workdir`.
* ``evaluate`` re-scores a trained run from its saved model and rewrites its
  index, export, plots and ``summary.json`` (:mod:`tfcontrast.jobs.evaluation`).
* ``lookup`` prints the ``k`` nearest training examples of an image file or
  ``.npy`` array, with labels and distances (:mod:`tfcontrast.jobs.queries`).

Configs are ``ml_collections`` files (``configs/*.py``) read with
``ml_collections.config_flags``; any key can be overridden as
``--config.optimizer.lr=0.1``. Exit status: 0 done, 1 the run failed,
2 bad command line or config.
"""

from __future__ import annotations

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from tfcontrast import config as config_lib

COMMANDS = ("train", "evaluate", "lookup")
USAGE = """usage:
  tfcontrast train --config configs/<name>.py --workdir runs/<name> [--config.key=value ...]
  tfcontrast evaluate --workdir runs/<name>
  tfcontrast lookup --workdir runs/<name> --query FILE [--k 5]
  --config FILE      train: an ml_collections config (configs/*.py); --config.<section>.<key>=VALUE overrides a key
  --workdir DIR      the run's folder (checkpoints, logs, model, index, export, plots, summary.json)
  --query FILE       lookup: an image (png/jpeg/bmp/gif) or a .npy array of model inputs
  --k N              lookup: neighbours to print (default 5)
(tfcontrast --helpfull lists every flag)"""

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "train: the run's config file, e.g. configs/directpred_digits.py; override keys with "
    "--config.section.key=value.", lock_config=True,
)
flags.DEFINE_string("workdir", None, "the run's folder: checkpoints, logs, model, index, export, plots, summary.json.")
flags.DEFINE_string("query", None, "lookup: an image file (png/jpeg/bmp/gif) or a .npy array of model inputs.")
flags.DEFINE_integer("k", 5, "lookup: how many neighbours to print.", lower_bound=1)


class UsageError(Exception):
    """A bad command line or config: printed without a traceback, exit status 2."""


def main(argv) -> int:
    """Dispatches ``train`` / ``evaluate`` / ``lookup`` (flags already parsed)."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress bar
    try:
        command = _command(argv)
        if command == "train":
            config = _train_config()
            workdir = _required("workdir", "train")
            from tfcontrast import jobs

            jobs.train(config, workdir)
        elif command == "evaluate":
            _refuse_config("evaluate")
            from tfcontrast import jobs

            jobs.evaluate(_required("workdir", "evaluate"))
        else:
            _refuse_config("lookup")
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
    positional = list(argv[1:])
    if len(positional) != 1 or positional[0] not in COMMANDS:
        seen = " ".join(positional) if positional else "nothing"
        raise UsageError(f"expected one command of {', '.join(COMMANDS)}, got {seen}\n{USAGE}")
    return positional[0]


def _required(name: str, command: str) -> str:
    value = FLAGS[name].value
    if not value:
        raise UsageError(f"{command} needs --{name}\n{USAGE}")
    return value


def _refuse_config(command: str) -> None:
    if FLAGS["config"].present:
        raise UsageError(
            f"{command} takes no --config: it reads the run's own config from <workdir>/config.json"
        )


def _train_config():
    if not FLAGS["config"].present:
        raise UsageError(f"train needs --config (e.g. --config configs/directpred_digits.py)\n{USAGE}")
    path = config_flags.get_config_filename(FLAGS["config"])
    if not os.path.isfile(path):
        raise UsageError(f"--config: no config file at {path!r}")
    try:
        config = _CONFIG.value
        config.get("method")
    except IOError as err:  # config_flags defers a failed load to the first access
        raise UsageError(f"--config {path!r} could not be loaded: {err.__cause__ or err}") from None
    return config_lib.validate(config)


def _parse_flags(argv):
    """absl flag parsing whose errors (config overrides included) read as one line, exit status 2."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _fail(f"{err}\n{USAGE}", status=2)
    except (KeyError, AttributeError, TypeError, ValueError) as err:
        _fail(_override_problem(argv) or f"bad --config override: {err}", status=2)


def _override_problem(argv) -> str | None:
    """Names the ``--config.<key>`` overrides of keys the config file does not have."""
    path = None
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
    if path is None:
        return "--config.<key> overrides need --config FILE before them"
    try:
        config = config_lib.load_file(path)
    except config_lib.ConfigError as err:
        return str(err)
    keys = [m.group(1) for arg in argv if (m := re.match(r"^--?(?:no)?config\.([^=]+)", arg))]
    problems = [p for p in (config_lib.unknown_key(config, key) for key in keys) if p]
    return str(config_lib.ConfigError(problems)) if problems else None


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

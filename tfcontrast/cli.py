"""The ``tfcontrast`` command: train, evaluate and search similarity models.

Usage::

    tfcontrast train --config NAME_OR_FILE --workdir runs/<name> [--config.key=value ...]
    tfcontrast evaluate --workdir runs/<name>
    tfcontrast lookup --workdir runs/<name> --query FILE [--k 5]
    tfcontrast configs [show NAME]

* ``train`` validates the config (every problem is reported with its key,
  before anything is written), trains with a Keras progress bar, checkpoints
  every epoch, then evaluates and exports. The same command on the same
  workdir continues an interrupted run; on a finished run it does nothing
  more. See :mod:`tfcontrast.jobs.training` and :mod:`tfcontrast.jobs.workdir`.
* ``evaluate`` re-scores a trained run from its saved model and rewrites its
  index, export, plots and ``summary.json`` (:mod:`tfcontrast.jobs.evaluation`).
* ``lookup`` prints the ``k`` nearest training examples of an image file or
  ``.npy`` array, with labels and distances (:mod:`tfcontrast.jobs.queries`);
  for a text run (``simcse_docstrings``...) ``--query`` is the text and the
  nearest document names are printed (:mod:`tfcontrast.jobs.text`). Each run
  goes to its data kind's job (:mod:`tfcontrast.jobs.kinds`).
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

COMMANDS = ("train", "evaluate", "lookup", "configs")
USAGE = """usage:
  tfcontrast train --config NAME_OR_FILE --workdir runs/<name> [--config.key=value ...]
  tfcontrast evaluate --workdir runs/<name>
  tfcontrast lookup --workdir runs/<name> --query FILE [--k 5]
  tfcontrast configs [show NAME]
  --config NAME|FILE train: a packaged config (`tfcontrast configs` lists them) or a config file;
                     --config.<section>.<key>=VALUE overrides a key
  --workdir DIR      the run's folder (checkpoints, logs, model, index, export, plots, summary.json)
  --query FILE|TEXT  lookup: an image (png/jpeg/bmp/gif) or a .npy array of model inputs; a text run: the query text
  --k N              lookup: neighbours to print (default 5)
(tfcontrast --helpfull lists every flag)"""

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config", None, "train: a packaged config name (e.g. directpred_digits; `tfcontrast configs` lists them) or a "
    "config file; override keys with --config.section.key=value.",
)
flags.DEFINE_string("workdir", None, "the run's folder: checkpoints, logs, model, index, export, plots, summary.json.")
flags.DEFINE_string(
    "query", None, "lookup: an image file (png/jpeg/bmp/gif) or a .npy array of model inputs; for a text run, the query text."
)
flags.DEFINE_integer("k", 5, "lookup: how many neighbours to print.", lower_bound=1)


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
            from tfcontrast.jobs import kinds

            kinds.train(config, workdir)
        elif command == "configs":
            _refuse_config("configs", overrides)
            print(_configs(positional[2:]))
        elif command == "evaluate":
            _refuse_config("evaluate", overrides)
            from tfcontrast.jobs import kinds

            kinds.evaluate(_required("workdir", "evaluate"))
        else:
            _refuse_config("lookup", overrides)
            workdir, query = _required("workdir", "lookup"), _required("query", "lookup")
            from tfcontrast.jobs import kinds

            print(kinds.lookup(workdir, query, FLAGS.k))
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

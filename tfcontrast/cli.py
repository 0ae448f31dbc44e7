"""The ``tfcontrast`` command: train, evaluate and search similarity models.

Usage::

    tfcontrast train --config NAME_OR_FILE --workdir runs/<name> [--config.key=value ...]
    tfcontrast evaluate --workdir runs/<name>
    tfcontrast lookup --workdir runs/<name> --query FILE [--k 5] [--raw] [--index DIR]
    tfcontrast index --workdir runs/<name> --images DIR_OR_GLOB --to DIR_OR_MILVUS_URI [--shard i/n] [--batch-size N]
    tfcontrast finetune --workdir runs/<name> [--labels-per-class 1,2,5,10] [--seeds 0,1,2] [--distill] [recipe options]
    tfcontrast configs [show NAME]
    tfcontrast [COMMAND] --help | --version

* ``train`` validates the config (every problem is reported with its key,
  before anything is written), trains (a progress bar on a terminal, one line
  per epoch otherwise), checkpoints every epoch, then evaluates and exports.
  The same command on the same workdir continues an interrupted run; on a
  finished run it does nothing more. See :mod:`tfcontrast.jobs.training`.
* ``evaluate`` re-scores a trained run from its saved model and rewrites its
  index, export, plots and ``summary.json`` (:mod:`tfcontrast.jobs.evaluation`).
* ``lookup`` prints the ``k`` nearest training examples of an image file or
  ``.npy`` array, checked against the run's input contract
  (:mod:`tfcontrast.jobs.queries`); for a text run (``simcse_docstrings``...)
  ``--query`` is the text and the nearest document names are printed
  (:mod:`tfcontrast.jobs.text`). ``train``, ``evaluate`` and ``lookup`` go to
  the job of the run's data kind (:mod:`tfcontrast.jobs.kinds`).
* ``index`` embeds a folder (or glob) of images with the run's model into a
  faiss index folder or a Milvus collection, streaming, resumable, sharded
  (:mod:`tfcontrast.jobs.indexes`).
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
``--config.loss.*`` overrides apply. ``tfcontrast train --config NAME --help``
lists every key of that config with its doc.

Nothing here imports TensorFlow before the arguments are parsed: ``--help``,
``--version``, ``configs`` and every usage error answer at once. Exit status:
0 done (``--help`` included), 1 the run failed, 2 bad command line or config,
130 interrupted.
"""

from __future__ import annotations

import re
import sys

from absl import app, flags, logging

from tfcontrast import config as config_lib
from tfcontrast.version import __version__

COMMANDS = ("train", "evaluate", "lookup", "index", "finetune", "configs")
SUMMARIES = {
    "train": "train (or continue) a run, then evaluate and export it",
    "evaluate": "re-score a trained run; rewrite its index, export, plots and summary.json",
    "lookup": "print the nearest training examples of an image or .npy query",
    "index": "embed a folder or glob of images into a faiss folder or a Milvus collection",
    "finetune": "label-efficiency curve of a run: supervised, linear probe, fine-tuned, distilled vs labels per class",
    "configs": "list the packaged configs; `configs show NAME` prints one to copy and edit",
}
USAGES = {
    "train": "tfcontrast train --config NAME_OR_FILE --workdir runs/<name> [--config.KEY=VALUE ...]",
    "evaluate": "tfcontrast evaluate --workdir runs/<name>",
    "lookup": "tfcontrast lookup --workdir runs/<name> --query FILE [--k 5] [--raw] [--index DIR]",
    "index": (
        "tfcontrast index --workdir runs/<name> --images DIR_OR_GLOB --to DIR_OR_MILVUS_URI "
        "[--collection NAME] [--shard i/n] [--batch-size N] [--restart]"
    ),
    "finetune": (
        "tfcontrast finetune --workdir runs/<name> [--labels-per-class 1,2,5,10] [--seeds 0,1,2] [--distill] "
        "[--from-layer 1] [--steps 300] [--lr 0.001] ... (tfcontrast finetune --help)"
    ),
    "configs": "tfcontrast configs [show NAME]",
}
# The recipe options of `finetune`: the fields of tfcontrast.jobs.finetuning.Recipe, flag = field name
# (`batch_size` is shared with `index`; a recipe option not given takes the Recipe's default).
RECIPE_FLAGS = (
    "from_layer", "steps", "batch_size", "lr", "encoder_lr_multiplier", "batchnorm", "max_shift", "max_degrees",
    "distill_steps", "distill_batch_size", "distill_lr", "temperature", "alpha",
)
# The flags each command reads (others given to it are refused).
COMMAND_FLAGS = {
    "train": ("config", "workdir"),
    "evaluate": ("workdir",),
    "lookup": ("workdir", "query", "k", "raw", "index"),
    "index": ("workdir", "images", "to", "collection", "shard", "batch_size", "restart"),
    "finetune": ("workdir", "labels_per_class", "seeds", "distill", *RECIPE_FLAGS),
    "configs": (),
}
OWN_FLAGS = tuple(dict.fromkeys(
    ("config", "workdir", "query", "k", "raw", "index", "images", "to", "collection", "shard", "batch_size", "restart")
    + COMMAND_FLAGS["finetune"]
))

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config", None, "train: a packaged config name (e.g. directpred_digits; `tfcontrast configs` lists them) or a "
    "config file; override keys with --config.section.key=value.",
)
flags.DEFINE_string("workdir", None, "the run's folder: checkpoints, logs, model, index, export, plots, summary.json.")
flags.DEFINE_string(
    "query", None, "lookup: an image file (png/jpeg/bmp/gif) or a .npy array of inputs, in the model's value range "
    "(or raw: see --raw); for a text run, the query text.",
)
flags.DEFINE_integer("k", 5, "lookup: how many neighbours to print (at most the index's size).", lower_bound=1)
flags.DEFINE_boolean(
    "raw", False, "lookup: the .npy query holds raw values (e.g. 0-16 digits, 0-255 pixels): divide them by the "
    "run's input scale, as training did (uint8 arrays are always taken as raw).",
)
flags.DEFINE_string(
    "index", None, "lookup: a saved index folder to search (default: the run's own index of its training split; "
    "or one written by `tfcontrast index`).",
)
flags.DEFINE_string("images", None, "index: a folder of images (searched recursively) or a glob pattern.")
flags.DEFINE_string(
    "to", None, "index: a folder for a faiss index, or a Milvus URI (http(s)://host:19530, or a Milvus Lite "
    "path ending in .db); the token is read from the MILVUS_TOKEN environment variable.",
)
flags.DEFINE_string(
    "collection", None, "index: the Milvus collection (default: derived from the images' folder); "
    "ignored for a faiss folder.",
)
flags.DEFINE_string("shard", None, "index: i/n embeds every n-th image starting at the i-th (n processes, one each).")
flags.DEFINE_integer(
    "batch_size", 256, "index: images embedded and written together; finetune: labelled images per step "
    "(at most the subset; default there 64).", lower_bound=1,
)
flags.DEFINE_boolean("restart", False, "index: start over instead of resuming the build checkpointed at the destination.")
# finetune (defaults: tfcontrast.jobs.finetuning.finetune and its Recipe; tests/test_cli_finetune.py keeps them equal)
flags.DEFINE_list("labels_per_class", ["1", "2", "5", "10"], "finetune: labelled budgets, in labels per class.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "finetune: seeds of the labelled subsets (each point: mean and spread over them).")
flags.DEFINE_boolean("distill", False, "finetune: also self-distil every fine-tuned network on the unlabelled images.")
flags.DEFINE_integer("from_layer", 1, "finetune: projection-head layers kept under the classifier (0: the encoder's features).")
flags.DEFINE_integer("steps", 300, "finetune: optimizer steps of fine-tuning (also of the probe and the supervised network).")
flags.DEFINE_float("lr", 1e-3, "finetune: Adam learning rate of the classifier.")
flags.DEFINE_float("encoder_lr_multiplier", 0.1, "finetune: the pretrained layers learn at this times --lr.")
flags.DEFINE_enum("batchnorm", "batch", ["frozen", "batch"], "finetune: pretrained BatchNorm in inference mode (frozen) or on batch statistics.")
flags.DEFINE_integer("max_shift", 2, "finetune: labelled images are shifted up to this many pixels per axis.")
flags.DEFINE_float("max_degrees", 10.0, "finetune: ... and rotated up to this many degrees.")
flags.DEFINE_integer("distill_steps", 500, "finetune: optimizer steps of distillation.")
flags.DEFINE_integer("distill_batch_size", 128, "finetune: images per distillation step (labelled or not).")
flags.DEFINE_float("distill_lr", 1e-3, "finetune: Adam learning rate of the student.")
flags.DEFINE_float("temperature", 1.0, "finetune: temperature of the teacher's soft labels.")
flags.DEFINE_float("alpha", 0.0, "finetune: weight of the supervised loss on the labelled images during distillation.")
flags.DEFINE_boolean("version", False, "print the version and exit.")

HELP_ARGS = ("-h", "--help", "-help", "-?", "--helpshort", "-helpshort")
FULL_HELP_ARGS = ("--helpfull", "-helpfull")


class UsageError(Exception):
    """A bad command line or config: printed without a traceback, exit status 2."""


# ``--config.<key>=VALUE`` / ``--config.<key>`` / ``--noconfig.<key>``: taken out before absl parses the rest.
_OVERRIDE = re.compile(r"^--?(no)?config\.([^=]+)(?:=(.*))?$", re.S)
# ``--batch-size``: dashes in flag names are read as underscores.
_DASHED_FLAG = re.compile(r"^(--?(?:no)?)([a-z][a-z0-9]*(?:-[a-z0-9]+)+)(=.*)?$", re.S)


def main(args) -> int:
    """Dispatches the command (flags parsed by :func:`_parse_flags`: ``args = (positional, overrides, help)``)."""
    positional, overrides, help_wanted = args
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress
    try:
        if help_wanted:
            print(help_text(positional, overrides))
            return 0
        if FLAGS.version:
            print(f"tfcontrast {__version__}")
            return 0
        command = _command(positional)
        _refuse_flags(command, overrides)
        if command == "configs":
            print(_configs(positional[2:]))
        elif command == "train":
            config = _train_config(overrides)
            workdir = _workdir("train")
            from tfcontrast.jobs import kinds

            kinds.train(config, workdir)
        elif command == "evaluate":
            workdir = _workdir("evaluate")
            from tfcontrast.jobs import kinds

            kinds.evaluate(workdir)
        elif command == "lookup":
            workdir, query = _workdir("lookup"), _required("query", "lookup")
            from tfcontrast.jobs import kinds

            print(kinds.lookup(workdir, query, FLAGS.k, raw=FLAGS.raw, index=FLAGS.index))
        elif command == "finetune":
            _finetune(_workdir("finetune"))
        else:
            workdir, images, to = _workdir("index"), _required("images", "index"), _required("to", "index")
            shard = _shard(FLAGS.shard)
            from tfcontrast import jobs

            jobs.index_images(
                workdir, images, to, collection=FLAGS.collection, shard=shard, batch_size=FLAGS.batch_size,
                restart=FLAGS.restart,
            )
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the progress line
        _fail("interrupted; run the same command again to continue from the last checkpoint", status=130)
    except (UsageError, config_lib.ConfigError) as err:
        _fail(str(err), status=2)
    except ValueError as err:
        _fail(str(err), status=1)
    except OSError as err:
        _fail(_os_error(err), status=1)
    except RuntimeError as err:  # tfcontrast's own (e.g. a Milvus server's refusal) carry messages for users
        if not type(err).__module__.startswith("tfcontrast."):
            raise
        _fail(str(err), status=1)
    return 0


def help_text(positional, overrides=None) -> str:
    """What ``--help`` prints: the commands, or one command's usage and flags (``train --config X``: its keys)."""
    command = next((arg for arg in positional[1:] if arg in COMMANDS), None)
    if command is None:
        width = max(len(c) for c in COMMANDS)
        rows = "\n".join(f"  {c.ljust(width)}  {SUMMARIES[c]}" for c in COMMANDS)
        usages = "\n".join(f"  {USAGES[c]}" for c in COMMANDS)
        return (
            f"tfcontrast {__version__}: train, evaluate and search similarity models.\n\n"
            f"commands:\n{rows}\n\nusage:\n{usages}\n\n"
            "`tfcontrast COMMAND --help` describes a command; `tfcontrast train --config NAME --help` lists the keys "
            "of a config;\n`tfcontrast --version` prints the version; `tfcontrast --helpfull` lists every flag."
        )
    lines = [f"usage: {USAGES[command]}", "", f"{command}: {SUMMARIES[command]}."]
    names = COMMAND_FLAGS[command]
    if names:
        lines += ["", "flags:"]
        for name in names:
            flag = FLAGS[name]
            text = re.sub(rf"^{command}: ", "", flag.help)  # the flag's own help names the commands that read it
            if flag.default not in (None, False):
                text = f"{text.rstrip('.')} (default {flag.default})."
            lines.append(f"  --{name.replace('_', '-')}  {text}")
    if command == "train":
        lines += ["", _train_keys(overrides or {})]
    return "\n".join(lines)


def _train_keys(overrides: dict) -> str:
    if not FLAGS["config"].present:
        return (
            "config keys: `tfcontrast train --config NAME --help` lists every key of that config with its value and "
            "doc\n(packaged configs: `tfcontrast configs`); override any key with --config.SECTION.KEY=VALUE."
        )
    try:
        config = config_lib.load(FLAGS.config, overrides, from_text=True)
        described = config_lib.describe(config)
    except (config_lib.ConfigError, ValueError) as err:
        return f"config keys: cannot read --config {FLAGS.config}: {err}"
    return f"config keys of {FLAGS.config} (override any with --config.SECTION.KEY=VALUE):\n{described}"


def _command(argv) -> str:
    """The command of the positional arguments (``argv[0]`` is the program)."""
    positional = list(argv[1:])
    if positional and positional[0] == "configs" and (len(positional) == 1 or positional[1] == "show" and len(positional) == 3):
        return "configs"
    if len(positional) != 1 or positional[0] not in COMMANDS:
        seen = " ".join(positional) if positional else "nothing"
        raise UsageError(
            f"expected one command of {', '.join(COMMANDS)}, got {seen} "
            f"(config overrides are written --config.KEY=VALUE)\n{_usage()}"
        )
    return positional[0]


def _usage() -> str:
    return "usage:\n" + "\n".join(f"  {USAGES[c]}" for c in COMMANDS) + "\n(tfcontrast --help describes them)"


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
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} takes distinct ints >= {low}, comma-separated, got {','.join(FLAGS[name].value)!r}") from None

    try:  # the options given; the Recipe's defaults for the others
        recipe = finetuning.Recipe(**{key: FLAGS[key].value for key in RECIPE_FLAGS if FLAGS[key].present})
    except ValueError as err:
        raise UsageError(re.sub(r"`(\w+)`", lambda m: "--" + m.group(1).replace("_", "-"), f"finetune: {err}")) from None
    finetuning.finetune(workdir, ints("labels_per_class", 1), ints("seeds", 0), distill=FLAGS.distill, recipe=recipe)


def _required(name: str, command: str) -> str:
    value = FLAGS[name].value
    if not value:
        raise UsageError(f"{command} needs --{name}\nusage: {USAGES[command]}")
    return value


def _workdir(command: str) -> str:
    """``--workdir``, refused (as a usage error, before TensorFlow starts) when it is a file or, but for
    ``train``, holds no run."""
    from tfcontrast import storage
    from tfcontrast.jobs import workdir as workdir_lib

    workdir = _required("workdir", command)
    try:
        storage.check_folder(workdir)
        if command != "train":
            workdir_lib.require_run(workdir_lib.Workdir(workdir))
    except ValueError as err:
        raise UsageError(str(err)) from None
    return workdir


def _refuse_flags(command: str, overrides) -> None:
    """Refuses the flags (and config overrides) that ``command`` does not read."""
    if command != "train" and overrides:
        raise UsageError(
            f"{command} takes no --config.KEY overrides"
            + (": it reads the run's own config from <workdir>/config.json" if command != "configs" else "")
        )
    stray = [name for name in OWN_FLAGS if FLAGS[name].present and name not in COMMAND_FLAGS[command]]
    if stray:
        if stray == ["config"] and command in ("evaluate", "lookup", "index"):
            raise UsageError(f"{command} takes no --config: it reads the run's own config from <workdir>/config.json")
        raise UsageError(
            f"{command} takes no {', '.join('--' + name for name in stray)}\nusage: {USAGES[command]}"
        )


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise UsageError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _train_config(overrides: dict):
    if not FLAGS["config"].present:
        raise UsageError(f"train needs --config (e.g. --config directpred_digits)\nusage: {USAGES['train']}")
    return config_lib.validate(config_lib.load(FLAGS.config, overrides, from_text=True))


def _parse_flags(argv):
    """absl flag parsing of everything but the config overrides and help; errors read as one line, exit status 2.

    Returns ``(positional arguments, {dotted key: text}, help wanted)`` for :func:`main`.
    """
    rest, overrides, help_wanted = [argv[0]], {}, False
    for arg in argv[1:]:
        if arg in HELP_ARGS:
            help_wanted = True
            continue
        if arg in FULL_HELP_ARGS:
            print(FLAGS.get_help())
            sys.exit(0)
        match = _OVERRIDE.match(arg)
        if match is None:
            dashed = _DASHED_FLAG.match(arg)
            if dashed is not None:
                arg = dashed.group(1) + dashed.group(2).replace("-", "_") + (dashed.group(3) or "")
            rest.append(arg)
            continue
        negated, key, text = match.groups()
        if negated and text is not None:
            _fail(f"{arg}: --noconfig.KEY takes no value", status=2)
        overrides[key] = "false" if negated else ("true" if text is None else text)
    FLAGS.unparse_flags()  # a second parse in one process (tests, notebooks) starts from the defaults
    try:
        return FLAGS(rest), overrides, help_wanted
    except flags.Error as err:
        _fail(f"{err}\n{_usage()}", status=2)


def _os_error(err: OSError) -> str:
    if err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err)


def _fail(message: str, status: int) -> None:
    print(f"tfcontrast: error: {message}", file=sys.stderr)
    sys.exit(status)


def run(argv=None) -> None:
    """The console entry point (``tfcontrast``, declared in pyproject.toml)."""
    app.run(main, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()

"""Healthy and deliberately collapsing runs of the non-contrastive methods, side by side (issue 14).

Each method's packaged config is trained with ``tfcontrast train`` (the same
job: :func:`tfcontrast.jobs.training.train`) twice: as packaged, and with the
one setting that removes what keeps it from collapsing:

* Barlow Twins with ``lambda_=0``: no redundancy term, the dimensions are free
  to carry the same feature (dimensional collapse);
* VICReg with ``var_weight=0``: no variance hinge, nothing keeps the
  projections from shrinking to one point (complete collapse);
* SwAV with a huge Sinkhorn ``epsilon``: the codes are uniform, every crop
  predicts the same flat target and the clusters carry no information.

For every run it prints the collapse indicators of the last training epoch
(``proj_std``: std of the L2-normalised projections, ideal ``1/sqrt(d)``;
``erank``: effective rank of the representations; Barlow Twins' and VICReg's
``proj_erank``: effective rank of the projections; SwAV's ``proto_entropy``:
entropy of the prototype usage, ``log K`` at even use) and of the trained
encoder on the test images (:func:`tfcontrast.jobs.evaluation.collapse_indicators`),
beside the kNN accuracy on the clean test images and under the evaluation
nuisance. The indicators must tell the healthy run from the collapsed one.

Run:  python benchmarks/bench_collapse.py                                  (6 runs, a few minutes each)
      python benchmarks/bench_collapse.py --methods vicreg --workdir /tmp/collapse
      python benchmarks/bench_collapse.py --set train.steps=220 --json out.json   (every run)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfcontrast import config as config_lib  # noqa: E402
from tfcontrast.jobs import training  # noqa: E402

# method -> (packaged config, the override that removes its guard against collapse)
RUNS = {
    "barlow_twins": ("barlow_twins_digits", {"model.lambda_": 0.0}),
    "vicreg": ("vicreg_digits", {"model.var_weight": 0.0}),
    "swav": ("swav_digits", {"model.epsilon": 1000.0}),
}
TRAIN_METRICS = ("loss", "proj_std", "erank", "proj_erank", "proto_entropy")


def run(method: str, setting: str, overrides: dict, workdir: str) -> dict:
    """Trains and evaluates one run; returns its row of the table."""
    name, bad = RUNS[method]
    config = config_lib.load(name, overrides, from_text=True)  # --set values are text, as on the command line
    if setting == "collapse":
        config = config_lib.validate(config_lib.apply_overrides(config, bad))
    summary = training.train(config, os.path.join(workdir, f"{method}-{setting}"), out=lambda line: None)
    ev = summary["evaluation"]
    final = summary["train"]["final_metrics"]
    return {
        "method": method,
        "setting": "packaged" if setting == "healthy" else ", ".join(f"{k}={v}" for k, v in bad.items()),
        **{f"train_{key}": final.get(key) for key in TRAIN_METRICS},
        "test_proj_std": ev["collapse"]["projection_std"],
        "test_proj_std_ceiling": ev["collapse"]["projection_std_ceiling"],
        "test_erank": ev["collapse"]["effective_rank"],
        "dim": ev["collapse"]["dim"],
        "knn": ev["knn_accuracy"],
        "knn_nuisance": ev["nuisance"]["trained"]["knn_accuracy"],
        "probe": ev["probe_accuracy"],
        "probe_nuisance": ev["nuisance"]["trained"]["probe_accuracy"],
        "random_encoder_knn": ev["baselines"]["random_encoder"]["knn_accuracy"],
        "random_encoder_knn_nuisance": ev["nuisance"]["random_encoder"]["knn_accuracy"],
        "train_wall_s": summary["train"]["wall_time_s"],
    }


def table(rows: list[dict]) -> str:
    def fmt(v):
        return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    head = ("method", "setting", "train_loss", "train_proj_std", "train_erank", "train_proj_erank",
            "train_proto_entropy", "test_proj_std", "test_erank", "knn", "knn_nuisance", "probe", "probe_nuisance")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(RUNS), help=f"comma-separated, from {tuple(RUNS)}")
    parser.add_argument("--settings", default="healthy,collapse", help="healthy, collapse or both")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run, e.g. train.steps=220")
    parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    values = dict(item.split("=", 1) for item in args.set)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_collapse_")
    rows = []
    for method in args.methods.split(","):
        if method not in RUNS:
            parser.error(f"unknown method {method!r}; choose from {tuple(RUNS)}")
        for setting in args.settings.split(","):
            rows.append(run(method, setting, values, workdir))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()

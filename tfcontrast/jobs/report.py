"""``summary.json`` and the lines the command prints about it.

``summary.json`` holds::

    status       "done" (trained and evaluated), "trained" (not evaluated yet) or
                 "stopped" (train.stop_after_steps: run the command again to continue)
    method       the config's method
    workdir      the run's folder
    config       the resolved config (as config.json)
    data         source, input shape, train/test sizes, class names
    train        steps, steps_done, epochs, examples_per_step, wall_time_s (time in
                 model.fit, summed over resumed sessions), images_per_second
                 (training examples per second; an SSL example is seen as two
                 views), sessions, final_metrics (last epoch's logged metrics)
    evaluation   (status "done" only) knn_accuracy, probe_accuracy, recall@k,
                 precision@k, map@r of the trained embeddings; collapse indicators;
                 baselines.random_encoder / baselines.raw_pixels (same scores);
                 nuisance (the same scores with transformed test queries);
                 settings; wall_time_s
    artefacts    paths relative to the workdir
    warnings     what a person should know about the run, in words: the collapse
                 alarm (tfcontrast.callbacks.CollapseAlarm over the whole training
                 history); printed again at the end of the command
    input_contract  shape, dtype, value range and scale of the training inputs
                 (input_contract.json; tfcontrast.contract.InputContract)
"""

from __future__ import annotations

import os
from typing import Mapping

from tfcontrast.jobs import inputs, workdir as workdir_lib


def collapse_warnings(config, state: Mapping, feature_dim: int | None) -> list[str]:
    """The collapse alarm over the run's whole training history (``[]`` when it never fired or nothing was logged).

    ``feature_dim``: the width of the representations (the effective rank's
    ceiling); the projection std's ceiling comes from ``config.model.projection_dim``.
    """
    from tfcontrast.callbacks import CollapseAlarm

    projection_dim = config.model.get("projection_dim") if "model" in config else None
    alarm = CollapseAlarm.replay(
        state.get("history") or {},
        projection_dim=projection_dim if isinstance(projection_dim, int) else None,
        feature_dim=feature_dim,
    )
    return [alarm.message] if alarm.message else []


def training_summary(
    config, wd: workdir_lib.Workdir, state: Mapping, run, status: str, feature_dim: int | None = None
) -> dict:
    """The summary without evaluation (a run stopped early); ``feature_dim`` as for :func:`collapse_warnings`."""
    train = config.train
    per_step = inputs.batch_kind(config).examples_per_step(train)
    wall = float(state.get("train_wall_time_s", 0.0))
    history = state.get("history") or {}
    return {
        "status": status,
        "method": config.method,
        "workdir": wd.root,
        "config": config.to_dict(),
        "data": {
            "source": config.data.name,
            "input_shape": list(run.input_shape),
            "n_train": int(len(run.x_train)),
            "n_test": int(len(run.x_test)),
            "class_names": list(run.class_names),
        },
        "train": {
            "steps": train.steps,
            "steps_done": int(state["step"]),
            "epochs": int(state["epoch"]),
            "examples_per_step": per_step,
            "wall_time_s": round(wall, 3),
            "images_per_second": round(state["step"] * per_step / wall, 1) if wall > 0 else None,
            "sessions": int(state.get("sessions", 1)),
            "final_metrics": {k: round(v[-1], 6) for k, v in history.items() if v},
        },
        "input_contract": inputs.input_contract(run).to_dict(),
        "warnings": collapse_warnings(config, state, feature_dim),
        "artefacts": _artefacts(wd),
    }


def summary(
    config, wd: workdir_lib.Workdir, state: Mapping, run, evaluation: Mapping, plots: Mapping,
    feature_dim: int | None = None,
) -> dict:
    """The full summary of a trained and evaluated run."""
    out = training_summary(config, wd, state, run, status="done", feature_dim=feature_dim)
    out["evaluation"] = dict(evaluation)
    out["artefacts"] = {**_artefacts(wd), "plots": dict(plots)}
    return out


def _artefacts(wd: workdir_lib.Workdir) -> dict:
    names = {
        "config": wd.config,
        "checkpoint": wd.checkpoint,
        "tensorboard": wd.logs,
        "embedder": wd.embedder,
        "input_contract": wd.contract,
        "index": wd.index,
        "export": wd.export,
        "summary": wd.summary,
    }
    return {k: os.path.relpath(v, wd.root) for k, v in names.items() if os.path.exists(v) or k == "summary"}


def headline(summary: Mapping) -> str:
    """A few lines: what ran, how long, and the main numbers against the baselines."""
    t = summary["train"]
    lines = [
        f"{summary['method']}: {t['steps_done']}/{t['steps']} steps in {t['wall_time_s']:.1f} s "
        f"({t['images_per_second']} images/s)"
    ]
    ev = summary.get("evaluation")
    if ev:
        base = ev["baselines"]
        k = ev["settings"]["knn_k"]
        lines.append(
            f"  kNN@{k} accuracy {ev['knn_accuracy']:.4f} (random encoder {base['random_encoder']['knn_accuracy']:.4f}, "
            f"raw pixels {base['raw_pixels']['knn_accuracy']:.4f}); probe {ev['probe_accuracy']:.4f}"
        )
        recalls = ", ".join(f"{key} {ev[key]:.4f}" for key in ev if key.startswith("recall@"))
        lines.append(f"  {recalls}; mAP@R {ev['map@r']:.4f}")
        c = ev["collapse"]
        lines.append(f"  effective rank {c['effective_rank']:.1f} of {c['dim']}, projection std {c['projection_std']:.4f}")
        if ev.get("nuisance"):
            n = ev["nuisance"]
            lines.append(
                f"  under nuisance (shift <= {n['max_shift']} px, rotation <= {n['max_degrees']} deg): kNN "
                f"{n['trained']['knn_accuracy']:.4f} (random encoder {n['random_encoder']['knn_accuracy']:.4f}, "
                f"raw pixels {n['raw_pixels']['knn_accuracy']:.4f})"
            )
    lines += [f"warning: {message}" for message in summary.get("warnings", ())]
    return "\n".join(lines)

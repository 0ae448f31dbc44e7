"""``tfcontrast finetune`` in-process: the label-efficiency job on a tiny finished run.

One tiny DirectPred run and one job run (1 label per class, 2 subset seeds,
with distillation) are shared by the module; the bigger variants are slow-marked.
"""

import json
import os

import keras
import numpy as np
import pytest

from tfcontrast import data
from tfcontrast.jobs import finetuning, inputs, training
from tfcontrast.jobs.evaluation import load_run
from tfcontrast.jobs.workdir import Workdir

from ..tiny_configs import tiny_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# enough steps (cheap on a tiny network: the fixed cost of each fit is its trace) for the teacher to move
# away from its initial head and for the student to learn it. The tiny run's encoder is an MLP: 4 steps of
# pretraining leave BatchNorm moving statistics that no classifier on a CNN could use at test time.
TINY = finetuning.Recipe(
    steps=20, batch_size=10, lr=1e-2, distill_steps=40, distill_batch_size=64, distill_lr=1e-2, batchnorm="frozen"
)
TINY_RUN = {"encoder.name": "mlp", "encoder.widths": (64, 32)}


def silent(_line):
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny DirectPred run (4 steps), trained but not evaluated: what `finetune` needs."""
    workdir = str(tmp_path_factory.mktemp("finetune") / "run")
    training.train(tiny_config("directpred", steps=4, **TINY_RUN), workdir, out=silent, evaluate_after=False)
    return workdir


@pytest.fixture(scope="module")
def results(trained):
    lines = []
    out = finetuning.finetune(trained, labels_per_class=(1,), seeds=(0, 1), distill=True, recipe=TINY, out=lines.append)
    return out, lines


def test_the_run_folder_holds_the_curve_data_and_the_plot(trained, results):
    out, lines = results
    wd = Workdir(trained)
    assert json.loads(open(wd.path("semi_supervised.json")).read()) == out
    with open(wd.path("plots", "label_efficiency.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert out["artefacts"] == {"plot": os.path.join("plots", "label_efficiency.png")}
    assert not [p for d in (wd.root, wd.plots) for p in os.listdir(d) if "tmp" in p]  # no temporaries left
    text = "\n".join(lines)
    assert "1 per class (10 labels)" in text and "student-teacher agreement" in text and lines[-1].startswith("wrote ")


def test_schema_and_the_spread_over_seeds(trained, results):
    out, _ = results
    assert out["format"] == "tfcontrast.semi_supervised" and out["method"] == "directpred"
    assert out["workdir"] == Workdir(trained).root
    assert out["data"] == {"n_train": 1437, "n_test": 360, "num_classes": 10}
    assert out["labels_per_class"] == [1] and out["seeds"] == [0, 1] and out["distill"] is True
    assert out["recipe"] == TINY.to_dict() and set(out["recipe"]) == set(finetuning.Recipe.docs())
    assert out["classifiers"] == ["supervised", "linear_probe", "fine_tuned", "distilled"]
    assert out["wall_time_s"] > 0
    (entry,) = out["budgets"]
    assert entry["labels_per_class"] == 1 and entry["labels"] == 10 and entry["label_fraction"] == round(10 / 1437, 6)
    assert [r["seed"] for r in entry["runs"]] == [0, 1]
    for r in entry["runs"]:
        assert set(r["accuracy"]) == set(out["classifiers"])
        # each accuracy is a share of the 360 test images
        assert all(0.0 <= a <= 1.0 and abs(a * 360 - round(a * 360)) < 1e-3 for a in r["accuracy"].values())
    for name, values in [(n, [r["accuracy"][n] for r in entry["runs"]]) for n in out["classifiers"]] + [
        ("agreement", [r["agreement"] for r in entry["runs"]])
    ]:
        stats = entry["accuracy"][name] if name != "agreement" else entry["agreement"]
        assert stats["mean"] == pytest.approx((values[0] + values[1]) / 2, abs=1e-6)
        assert stats["std"] == pytest.approx(abs(values[0] - values[1]) / np.sqrt(2), abs=1e-6)  # ddof 1
        assert (stats["min"], stats["max"]) == (min(values), max(values))


def test_labelled_subsets_are_stratified_reproducible_and_nested(results):
    out, _ = results
    split = data.load_digits()
    runs = out["budgets"][0]["runs"]
    for r in runs:
        indices = r["indices"]
        assert indices == sorted(set(indices)) and 0 <= indices[0] and indices[-1] < 1437  # rows of the train split
        assert np.array_equal(np.bincount(split.y_train[indices], minlength=10), np.ones(10))  # 1 per class, exactly
        assert indices == data.labelled_subset(split.x_train, split.y_train, per_class=1, seed=r["seed"])[2].tolist()
    assert runs[0]["indices"] != runs[1]["indices"]  # another seed, another subset
    # the job draws each budget with the same seed: the budgets of one seed are nested
    for seed in (0, 1):
        one, two = (set(data.labelled_subset(split.x_train, split.y_train, per_class=k, seed=seed)[2]) for k in (1, 2))
        assert one < two


def test_the_student_learns_its_teachers_predictions_and_a_cell_reproduces(trained, results):
    """Seed 0 rebuilt alone: the same teacher and student (same accuracies), and the student agrees with
    the teacher far more than chance and than before distillation (it starts from the teacher's initial head)."""
    out, _ = results
    r = out["budgets"][0]["runs"][0]
    wd = Workdir(trained)
    config, _ = load_run(wd)
    run = inputs.load_split(config)
    cell = finetuning.Subset(finetuning.load_pretrained(config, wd, run), config, run, np.array(r["indices"]), 0, TINY)
    keras.utils.set_random_seed(0)
    teacher = finetuning.train_fine_tuned(cell, {})
    keras.utils.set_random_seed(0)
    start = finetuning.predict(finetuning.pretrained_classifier(cell), run.x_test)  # the student before distillation
    keras.utils.set_random_seed(0)
    student = finetuning.train_distilled(cell, {"fine_tuned": teacher})
    t, s = finetuning.predict(teacher, run.x_test), finetuning.predict(student, run.x_test)
    assert np.mean(t == run.y_test) == pytest.approx(r["accuracy"]["fine_tuned"], abs=1e-6)
    assert np.mean(s == run.y_test) == pytest.approx(r["accuracy"]["distilled"], abs=1e-6)
    assert np.mean(t == s) == pytest.approx(r["agreement"], abs=1e-6)
    # the chance agreement of two independent predictors with these class frequencies, by loops
    chance = sum(np.mean(t == c) * np.mean(s == c) for c in range(10))
    assert r["chance_agreement"] == pytest.approx(chance, abs=1e-6)
    assert r["agreement"] > chance + 0.2 and r["agreement"] > np.mean(t == start) + 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels_per_class": (1, 1)}, "labels_per_class"),
        ({"labels_per_class": (0,)}, "labels_per_class"),
        ({"seeds": (-1,)}, "seeds"),
        ({"labels_per_class": (1, 500)}, "has .* examples but the subset asks for 500"),
        ({"recipe": finetuning.Recipe(from_layer=3)}, "from_layer"),
        ({"recipe": {"steps": 3}}, "`recipe` must be a tfcontrast.jobs.finetuning.Recipe"),
    ],
)
def test_bad_arguments_fail_before_anything_is_trained_or_written(trained, results, kwargs, match):
    wd = Workdir(trained)
    before = {p: os.path.getmtime(wd.path(p)) for p in ("semi_supervised.json", "plots/label_efficiency.png")}
    with pytest.raises((ValueError, TypeError), match=match):
        finetuning.finetune(trained, **{"recipe": TINY, **kwargs}, out=silent)
    assert {p: os.path.getmtime(wd.path(p)) for p in before} == before


def test_no_finished_run(tmp_path):
    with pytest.raises(ValueError, match="holds no run"):
        finetuning.finetune(str(tmp_path), out=silent)


@pytest.mark.slow
def test_two_budgets_and_a_cell_alone_reproduces_its_accuracies_without_a_student(trained):
    """Several budgets in one call; one (budget, seed) cell run alone gives the accuracies it had in the full run."""
    full = finetuning.finetune(trained, labels_per_class=(1, 2), seeds=(0, 1), recipe=TINY, out=silent)
    assert [e["labels_per_class"] for e in full["budgets"]] == [1, 2] and full["distill"] is False
    assert all("agreement" not in e and "agreement" not in e["runs"][0] for e in full["budgets"])
    runs = {(e["labels_per_class"], r["seed"]): r for e in full["budgets"] for r in e["runs"]}
    assert set(runs[1, 0]["indices"]) < set(runs[2, 0]["indices"])  # nested per seed
    again = finetuning.finetune(trained, labels_per_class=(2,), seeds=(1,), recipe=TINY, out=silent)
    assert again["classifiers"] == ["supervised", "linear_probe", "fine_tuned"]
    (cell,) = again["budgets"][0]["runs"]
    assert cell["indices"] == runs[2, 1]["indices"] and cell["accuracy"] == runs[2, 1]["accuracy"]
    assert again["budgets"][0]["accuracy"]["fine_tuned"]["std"] == 0.0  # one seed
    assert json.loads(open(Workdir(trained).path("semi_supervised.json")).read()) == again  # replaced whole


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "`steps` must be >= 1, got 0"),
        ({"lr": -1.0}, "`lr` must be > 0"),
        ({"batchnorm": "moving"}, "`batchnorm` must be one of"),
        ({"from_layer": 1.5}, "`from_layer` must be an int"),
        ({"alpha": float("nan")}, "`alpha` must be a finite number"),
    ],
)
def test_recipe_checks_each_setting(kwargs, match):
    with pytest.raises(ValueError, match=match):
        finetuning.Recipe(**kwargs)


def test_recipe_documents_every_setting():
    docs = finetuning.Recipe.docs()
    assert set(docs) == set(finetuning.Recipe().to_dict()) and all(len(d) > 10 for d in docs.values())


def test_spread_and_distinct_ints_by_hand():
    assert finetuning.spread([0.5]) == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}
    s = finetuning.spread([0.2, 0.4, 0.9])
    assert s["mean"] == pytest.approx(0.5) and s["std"] == pytest.approx(np.sqrt((0.09 + 0.01 + 0.16) / 2), abs=1e-6)
    assert finetuning.distinct_ints([3, np.int64(1)], "x", 1) == (3, 1)
    for bad in ([], [1, 1], [True], [0], (1.0,), "1"):
        with pytest.raises(ValueError, match="`x` must be distinct ints >= 1"):
            finetuning.distinct_ints(bad, "x", 1)


@pytest.mark.slow
def test_full_size_default_run_label_efficiency(tmp_path):
    """The measured setting of benchmarks/RESULTS.md ("Few labels"): the default DirectPred run, the default
    recipe, budgets 1 and 10, 3 subset seeds (about 25 min on 2 loaded cores). The bounds sit a few points under what was
    measured; the issue's targets that this misses (0.85 at 1 label per class, 0.97 at 10, distillation
    better than its teacher) are reported there."""
    from tfcontrast import config as config_lib, packaged_configs

    workdir = str(tmp_path / "demo")
    training.train(config_lib.load(str(packaged_configs.path("directpred_digits"))), workdir, out=silent, evaluate_after=False)
    out = finetuning.finetune(workdir, labels_per_class=(1, 10), seeds=(0, 1, 2), distill=True, out=silent)
    one, ten = ({n: a["mean"] for n, a in e["accuracy"].items()} for e in out["budgets"])
    # measured: fine-tuned 0.752 (supervised 0.544) at 1 label per class, 0.958 (0.926) at 10
    assert one["fine_tuned"] >= 0.70 and one["fine_tuned"] >= one["supervised"] + 0.15
    assert ten["fine_tuned"] >= 0.94 and ten["fine_tuned"] >= ten["supervised"]
    for entry in out["budgets"]:
        acc = entry["accuracy"]
        assert acc["distilled"]["mean"] >= acc["fine_tuned"]["mean"] - 0.03  # measured: 1.1 and 0.4 points under
        assert entry["agreement"]["min"] >= 0.85  # measured: 0.897 at the least

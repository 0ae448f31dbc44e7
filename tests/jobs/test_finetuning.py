"""``tfcontrast finetune`` in-process: the label-efficiency job on a tiny finished run."""

import json
import os

import numpy as np
import pytest

from tfcontrast import data
from tfcontrast.jobs import finetuning, training
from tfcontrast.jobs.workdir import Workdir

from ..tiny_configs import tiny_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = finetuning.Recipe(steps=3, batch_size=8, distill_steps=2, distill_batch_size=64)


def silent(_line):
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny DirectPred run (4 steps), trained but not evaluated: what `finetune` needs."""
    workdir = str(tmp_path_factory.mktemp("finetune") / "run")
    training.train(tiny_config("directpred", steps=4), workdir, out=silent, evaluate_after=False)
    return workdir


@pytest.fixture(scope="module")
def results(trained):
    lines = []
    out = finetuning.finetune(trained, labels_per_class=(1, 2), seeds=(0, 1), distill=True, recipe=TINY, out=lines.append)
    return out, lines


def test_writes_the_results_and_the_plot(trained, results):
    out, lines = results
    wd = Workdir(trained)
    assert json.loads(open(wd.path("semi_supervised.json")).read()) == out
    with open(wd.path("plots", "label_efficiency.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert out["artefacts"] == {"plot": os.path.join("plots", "label_efficiency.png")}
    assert not [p for d in (wd.root, wd.plots) for p in os.listdir(d) if "tmp" in p]  # no temporaries left
    assert "1 per class (10 labels)" in "\n".join(lines) and lines[-1].startswith("wrote ")


def test_schema(trained, results):
    out, _ = results
    split = data.load_digits()
    assert out["format"] == "tfcontrast.semi_supervised" and out["method"] == "directpred"
    assert out["workdir"] == Workdir(trained).root
    assert out["data"] == {"n_train": 1437, "n_test": 360, "num_classes": 10}
    assert out["labels_per_class"] == [1, 2] and out["seeds"] == [0, 1] and out["distill"] is True
    assert out["recipe"] == TINY.to_dict() and set(out["recipe"]) == set(finetuning.Recipe.docs())
    assert out["classifiers"] == ["supervised", "linear_probe", "fine_tuned", "distilled"]
    assert out["wall_time_s"] > 0
    assert [e["labels_per_class"] for e in out["budgets"]] == [1, 2]
    for entry in out["budgets"]:
        k = entry["labels_per_class"]
        assert entry["labels"] == 10 * k and entry["label_fraction"] == round(10 * k / 1437, 6)
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        for r in entry["runs"]:
            assert set(r["accuracy"]) == set(out["classifiers"])
            # each accuracy is a share of the 360 test images
            assert all(0.0 <= a <= 1.0 and abs(a * 360 - round(a * 360)) < 1e-3 for a in r["accuracy"].values())
            labels = split.y_train[r["indices"]]
            assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, k))  # k per class, exactly
        for name in out["classifiers"]:
            values = np.array([r["accuracy"][name] for r in entry["runs"]])
            stats = entry["accuracy"][name]
            assert stats["mean"] == pytest.approx(values.sum() / 2, abs=1e-6)
            assert stats["std"] == pytest.approx(abs(values[0] - values[1]) / np.sqrt(2), abs=1e-6)  # ddof 1
            assert (stats["min"], stats["max"]) == (values.min(), values.max())


def test_the_same_seed_gives_the_same_subsets(results):
    out, _ = results
    split = data.load_digits()
    subsets = {(e["labels_per_class"], r["seed"]): r["indices"] for e in out["budgets"] for r in e["runs"]}
    for (k, seed), indices in subsets.items():
        assert indices == data.labelled_subset(split.x_train, split.y_train, per_class=k, seed=seed)[2].tolist()
        assert indices == sorted(set(indices)) and 0 <= indices[0] and indices[-1] < 1437  # rows of the train split
    assert set(subsets[1, 0]) < set(subsets[2, 0]) and set(subsets[1, 1]) < set(subsets[2, 1])  # nested per seed
    assert subsets[1, 0] != subsets[1, 1] and subsets[2, 0] != subsets[2, 1]  # another seed, another subset


def test_a_cell_alone_reproduces_its_accuracies_and_without_distill_has_no_student(trained, results):
    """One (budget, seed) cell run alone gives the accuracies it had inside the full run."""
    out, _ = results
    again = finetuning.finetune(trained, labels_per_class=(2,), seeds=(1,), recipe=TINY, out=silent)
    assert again["classifiers"] == ["supervised", "linear_probe", "fine_tuned"] and again["distill"] is False
    (cell,) = again["budgets"][0]["runs"]
    full = out["budgets"][1]["runs"][1]
    assert cell["indices"] == full["indices"]
    assert cell["accuracy"] == {k: v for k, v in full["accuracy"].items() if k != "distilled"}
    assert again["budgets"][0]["accuracy"]["fine_tuned"]["std"] == 0.0  # one seed
    # the previous results were replaced whole
    assert json.loads(open(Workdir(trained).path("semi_supervised.json")).read()) == again


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels_per_class": (1, 1)}, "labels_per_class"),
        ({"labels_per_class": (0,)}, "labels_per_class"),
        ({"seeds": (-1,)}, "seeds"),
        ({"labels_per_class": (1, 500)}, "has .* examples but the subset asks for 500"),
        ({"recipe": finetuning.Recipe(from_layer=3)}, "from_layer"),
    ],
)
def test_bad_arguments_fail_before_anything_is_trained_or_written(trained, results, kwargs, match):
    wd = Workdir(trained)
    before = {p: os.path.getmtime(wd.path(p)) for p in ("semi_supervised.json", "plots/label_efficiency.png")}
    with pytest.raises(ValueError, match=match):
        finetuning.finetune(trained, **{"recipe": TINY, **kwargs}, out=silent)
    after = {p: os.path.getmtime(wd.path(p)) for p in before}
    assert after == before


def test_no_finished_run(tmp_path):
    with pytest.raises(ValueError, match="holds no run"):
        finetuning.finetune(str(tmp_path), out=silent)


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

import math

import numpy as np
import pytest

from tests.index import reference
from tfcontrast.index import Index, NearestNeighbors, evaluate_retrieval, knn_accuracy

# 1-D references at 0..4 with labels 0 0 1 1 0, euclidean distance |q - x|.
REFS = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]], np.float32)
REF_LABELS = [0, 0, 1, 1, 0]
QUERIES = np.array([[0.1], [3.2], [1.6]], np.float32)
QUERY_LABELS = [0, 1, 0]


def hand_index():
    idx = Index("euclidean")
    idx.add(REFS, labels=REF_LABELS)
    return idx


def test_hand_computed_retrieval_metrics():
    # Rankings (labels of the neighbours, nearest first) and relevance:
    #   q=0.1 (y=0): d = .1 .9 1.9 2.9 3.9 -> labels 0 0 1 1 0 -> rel 1 1 0 0 1, R = 3
    #   q=3.2 (y=1): refs 3 4 2 1 0 (d .2 .8 1.2 2.2 3.2) -> labels 1 0 1 0 0 -> rel 1 0 1 0 0, R = 2
    #   q=1.6 (y=0): refs 2 1 3 0 4 (d .4 .6 1.4 1.6 2.4) -> labels 1 0 1 0 0 -> rel 0 1 0 1 1, R = 3
    # recall@1 = (1 + 1 + 0) / 3; precision@1 the same.
    # recall@3 = (1 + 1 + 1) / 3 = 1;  precision@3 = (2/3 + 2/3 + 1/3) / 3 = 5/9.
    # MAP@R: q1 (1/3)(1 + 1 + 0) = 2/3;  q2 (1/2)(1 + 0) = 1/2;  q3 (1/3)(0 + 1/2 + 0) = 1/6;
    #        mean = (4/6 + 3/6 + 1/6) / 3 = 4/9.
    want = {"recall@1": 2 / 3, "precision@1": 2 / 3, "recall@3": 1.0, "precision@3": 5 / 9, "map@r": 4 / 9}
    for index in (hand_index(), NearestNeighbors(REFS, labels=REF_LABELS, k=1, metric="euclidean")):
        got = evaluate_retrieval(index, QUERIES, QUERY_LABELS, ks=(1, 3))
        assert set(got) == set(want)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key


def test_hand_computed_leave_one_out():
    # Queries are the references themselves, at 0, 1, 2.2, 3.5, 5 (ids 0..4 in
    # order) with labels 0 0 1 1 0. Excluding self (distances in brackets):
    #   x=0   (y=0): 1(1, 0) 2.2(2.2, 1) 3.5(3.5, 1) 5(5, 0) -> rel 1 0 0 1, R = 2 -> MAP = (1/2)(1 + 0) = 1/2
    #   x=1   (y=0): 0(1, 0) 2.2(1.2, 1) 3.5(2.5, 1) 5(4, 0) -> rel 1 0 0 1, R = 2 -> 1/2
    #   x=2.2 (y=1): 1(1.2, 0) 3.5(1.3, 1) 0(2.2, 0) 5(2.8, 0) -> rel 0 1 0 0, R = 1 -> 0
    #   x=3.5 (y=1): 2.2(1.3, 1) 5(1.5, 0) 1(2.5, 0) 0(3.5, 0) -> rel 1 0 0 0, R = 1 -> 1
    #   x=5   (y=0): 3.5(1.5, 1) 2.2(2.8, 1) 1(4, 0) 0(5, 0) -> rel 0 0 1 1, R = 2 -> (1/2)(0 + 0) = 0
    # recall@1 = (1 + 1 + 0 + 1 + 0) / 5 = 3/5;  MAP@R = (1/2 + 1/2 + 0 + 1 + 0) / 5 = 2/5.
    refs = np.array([[0.0], [1.0], [2.2], [3.5], [5.0]], np.float32)
    labels = np.array(REF_LABELS)
    idx = Index("euclidean")
    idx.add(refs, labels=labels)
    got = evaluate_retrieval(idx, refs, labels, ks=(1,), exclude_self=True)
    assert got["recall@1"] == pytest.approx(3 / 5) and got["map@r"] == pytest.approx(2 / 5)
    # Without exclusion every query finds itself first.
    assert evaluate_retrieval(idx, refs, labels, ks=(1,))["recall@1"] == 1.0
    # Explicit query_ids: the same queries in another order.
    order = [4, 2, 0, 3, 1]
    again = evaluate_retrieval(idx, refs[order], labels[order], ks=(1,), exclude_self=True, query_ids=order)
    assert again == pytest.approx(got)


def loop_metrics(refs, ref_labels, queries, query_labels, ks, exclude_self):
    """Recall@k, precision@k, MAP@R from explicit loops over a brute-force ranking."""
    sums = {f"recall@{k}": 0.0 for k in ks} | {f"precision@{k}": 0.0 for k in ks} | {"map@r": 0.0}
    used = 0
    for qi, (q, y) in enumerate(zip(queries, query_labels)):
        ranked = sorted(
            (reference.distance(q, r, "cosine"), i, lab) for i, (r, lab) in enumerate(zip(refs, ref_labels)) if not (exclude_self and i == qi)
        )
        r_count = sum(1 for i, lab in enumerate(ref_labels) if lab == y and not (exclude_self and i == qi))
        if r_count == 0:
            continue
        used += 1
        rel = [1 if lab == y else 0 for _, _, lab in ranked]
        for k in ks:
            sums[f"recall@{k}"] += 1.0 if any(rel[:k]) else 0.0
            sums[f"precision@{k}"] += sum(rel[:k]) / k
        ap, hits = 0.0, 0
        for i in range(r_count):
            if rel[i]:
                hits += 1
                ap += hits / (i + 1)
        sums["map@r"] += ap / r_count
    return {key: value / used for key, value in sums.items()}


@pytest.mark.parametrize("exclude_self", [False, True])
def test_matches_loop_reference_on_random_data(exclude_self, rng):
    refs = rng.normal(size=(60, 4)).astype(np.float32)
    ref_labels = rng.integers(0, 4, 60)
    ref_labels[ref_labels == 3] = 2  # label 3 only among queries: R = 0, skipped
    idx = Index("cosine")
    idx.add(refs, labels=ref_labels)
    if exclude_self:
        queries, labels = refs, ref_labels
    else:
        queries, labels = rng.normal(size=(25, 4)).astype(np.float32), rng.integers(0, 4, 25)
    got = evaluate_retrieval(idx, queries, labels, ks=(1, 2, 5, 70), exclude_self=exclude_self)
    want = loop_metrics(refs, ref_labels, queries, labels, (1, 2, 5, 70), exclude_self)
    assert got == pytest.approx(want, abs=1e-12)


def test_knn_accuracy_hand_computed():
    # k = 3, T = 1: q=0.1 -> labels 0 0 1: class 0 wins -> correct.
    #   q=3.2 -> 3(.2, 1) 4(.8, 0) 2(1.2, 1): class 1: e^-.2 + e^-1.2 = 1.12 > class 0: e^-.8 = .449 -> correct.
    #   q=1.6 (y=0) -> 2(.4, 1) 1(.6, 0) 3(1.4, 1): class 1: e^-.4 + e^-1.4 = .917 > e^-.6 = .549 -> wrong.
    assert knn_accuracy(hand_index(), QUERIES, QUERY_LABELS, k=3, temperature=1.0) == pytest.approx(2 / 3)


def test_knn_weighting_beats_majority_only_at_low_temperature():
    # refs 0 (label 0), 1 and 1.1 (label 1); query 0.05 with label 0, k = 3.
    #   T = 0.1: class 0 weight e^{-0.5} = .61 vs class 1 e^{-9.5} + e^{-10.5} = 1e-4 -> 0, correct.
    #   T = 100: class 0 e^{-.0005} = .9995 vs class 1 e^{-.0095} + e^{-.0105} = 1.98 -> 1, wrong
    #            (nearly uniform weights: a majority vote).
    idx = Index("euclidean")
    idx.add([[0.0], [1.0], [1.1]], labels=[0, 1, 1])
    assert knn_accuracy(idx, [[0.05]], [0], k=3, temperature=0.1) == 1.0
    assert knn_accuracy(idx, [[0.05]], [0], k=3, temperature=100.0) == 0.0
    assert math.exp(-0.5) > math.exp(-9.5) + math.exp(-10.5)


def test_knn_accuracy_matches_loop_reference_with_leave_one_out(rng):
    refs = rng.normal(size=(40, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    idx = Index("cosine")
    idx.add(refs, labels=labels)
    k, t = 5, 0.07
    correct = 0
    for qi, q in enumerate(refs):
        ranked = sorted((reference.distance(q, r, "cosine"), i) for i, r in enumerate(refs) if i != qi)[:k]
        votes = {}
        for d, i in ranked:
            votes[labels[i]] = votes.get(labels[i], 0.0) + math.exp(-d / t)
        best = max(sorted(votes), key=lambda c: votes[c])
        correct += best == labels[qi]
    assert knn_accuracy(idx, refs, labels, k=k, temperature=t, exclude_self=True) == pytest.approx(correct / 40)


def test_unlabelled_references_never_vote_or_match():
    idx = Index("euclidean")
    idx.add([[0.0], [5.0]], labels=[-1, 1])
    assert knn_accuracy(idx, [[0.1]], [1], k=2) == 1.0  # the nearer, unlabelled one does not vote
    assert evaluate_retrieval(idx, [[0.1]], [1], ks=(1, 2)) == pytest.approx(
        {"recall@1": 0.0, "precision@1": 0.0, "recall@2": 1.0, "precision@2": 0.5, "map@r": 0.0}
    )


def test_bad_arguments_are_refused():
    idx = hand_index()
    for kwargs, match in (
        (dict(ks=()), "at least one"),
        (dict(ks=(1, 0)), "`ks` must be an integer >= 1"),
        (dict(query_ids=[0, 1, 2]), "only used with `exclude_self=True`"),
        (dict(exclude_self=True), "pass `query_ids`"),
    ):
        with pytest.raises(ValueError, match=match):
            evaluate_retrieval(idx, QUERIES, QUERY_LABELS, **kwargs)
    with pytest.raises(ValueError, match=">= 0"):
        evaluate_retrieval(idx, QUERIES, [0, -1, 0])
    with pytest.raises(ValueError, match="No query label"):
        evaluate_retrieval(idx, QUERIES, [7, 7, 7])
    unlabelled = Index()
    unlabelled.add(np.ones((2, 2)))
    with pytest.raises(ValueError, match="no labelled references"):
        evaluate_retrieval(unlabelled, np.ones((1, 2)), [0])
    with pytest.raises(ValueError, match="`temperature`"):
        knn_accuracy(idx, QUERIES, QUERY_LABELS, temperature=0.0)
    with pytest.raises(ValueError, match="`k`"):
        knn_accuracy(idx, QUERIES, QUERY_LABELS, k=0)

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from tfcontrast.text import documents_from_texts, evaluate_text_retrieval, format_table, retrieval_tasks, tfidf_embedder
from tfcontrast.text import evaluation


@hypothesis.given(
    num_words=st.integers(64, 400), low=st.integers(1, 32), extra=st.integers(0, 40), seed=st.integers(0, 10**6)
)
@hypothesis.settings(max_examples=300, deadline=None)
def test_disjoint_spans_are_in_bounds_of_the_right_length_and_never_overlap(num_words, low, extra, seed):
    high = low + extra
    hypothesis.assume(num_words >= 2 * low)
    (qs, qe), (ts, te) = evaluation.disjoint_spans(num_words, np.random.default_rng(seed), (low, high))
    for start, end in ((qs, qe), (ts, te)):
        assert 0 <= start < end <= num_words and low <= end - start <= high
    assert qe <= ts or te <= qs  # no shared word


def test_both_orders_and_all_placements_occur():
    rng = np.random.default_rng(0)
    draws = [evaluation.disjoint_spans(200, rng) for _ in range(500)]
    assert any(q[0] < t[0] for q, t in draws) and any(q[0] > t[0] for q, t in draws)
    assert min(min(q[0], t[0]) for q, t in draws) == 0 or max(max(q[1], t[1]) for q, t in draws) == 200


def test_too_short_a_document_is_refused_and_left_out_of_the_task():
    with pytest.raises(ValueError, match="no room"):
        evaluation.disjoint_spans(63, np.random.default_rng(0))
    docs = documents_from_texts(["w " * 63, " ".join(f"w{i}" for i in range(100))])
    task = evaluation.span_task(docs)
    assert task.ids == ("doc-1",)
    query, target = task.queries[0].split(), task.targets[0].split()
    assert not set(query) & set(target)  # unique words: the spans share none
    assert 32 <= len(query) <= 64 and 32 <= len(target) <= 64


def test_summary_task_splits_at_the_first_blank_line():
    docs = documents_from_texts(
        ["Summary line.\n\nBody first.\n\nBody second.", "No blank line at all", "Title\n   \n"]
    )
    task = evaluation.summary_task(docs)
    assert task.ids == ("doc-0",)
    assert task.queries == ("Summary line.",) and task.targets == ("Body first.\n\nBody second.",)


def test_ranks_count_ties_against_the_query():
    s = np.array([[0.9, 0.1, 0.5], [0.3, 0.3, 0.3], [0.2, 0.8, 0.1]])
    assert evaluation.ranks(s).tolist() == [1, 3, 3]
    metrics = evaluation.rank_metrics(s, ks=(1, 3))
    assert metrics == {"recall@1": pytest.approx(1 / 3), "recall@3": 1.0, "mrr": pytest.approx((1 + 1 / 3 + 1 / 3) / 3)}
    with pytest.raises(ValueError, match="not finite"):
        evaluation.ranks(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        evaluation.ranks(np.zeros((2, 3)))


def unique_word_docs(n=12):
    # document i repeats five words only it uses; its first paragraph has words of its own too
    return documents_from_texts(
        [f"topic{i} summary words{i}.\n\n" + " ".join(f"d{i}w{j % 5} common" for j in range(60)) for i in range(n)]
    )


def test_a_perfect_embedding_scores_one_and_a_constant_one_scores_chance():
    docs = unique_word_docs()
    tasks = retrieval_tasks(docs, seed=0)

    def by_document(texts):
        # one-hot of the document number found in the text (d{i}w.. or topic{i})
        out = np.zeros((len(texts), 12))
        for row, t in enumerate(texts):
            token = next(w for w in t.replace(".", " ").split() if w.startswith(("d", "topic")) and w != "common")
            number = int(token[5:] if token.startswith("topic") else token[1 : token.index("w")])
            out[row, number] = 1.0
        return out

    perfect = evaluate_text_retrieval(by_document, tasks)
    assert perfect["span/recall@1"] == 1.0 and perfect["summary/mrr"] == 1.0 and perfect["span/n"] == 12
    constant = evaluate_text_retrieval(lambda texts: np.ones((len(texts), 3)), tasks)
    assert constant["span/recall@1"] == pytest.approx(0.0) and constant["span/mrr"] == pytest.approx(1 / 12)


def test_tfidf_finds_the_unique_words_and_the_table_lists_every_column():
    docs = unique_word_docs()
    train, held_out = docs.split(0.5, seed=0)
    results = {"tfidf": evaluate_text_retrieval(tfidf_embedder(docs.texts), held_out)}
    assert results["tfidf"]["span/recall@1"] == 1.0
    table = format_table(results)
    assert table.splitlines()[0].count("|") == 8 and "| tfidf | 1.000 |" in table


def test_the_same_seed_gives_the_same_spans():
    docs = unique_word_docs()
    assert retrieval_tasks(docs, 3)["span"] == retrieval_tasks(docs, 3)["span"]
    assert retrieval_tasks(docs, 3)["span"] != retrieval_tasks(docs, 4)["span"]

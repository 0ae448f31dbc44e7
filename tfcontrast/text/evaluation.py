"""Text retrieval evaluation on held-out documents, and its TF-IDF baseline.

Two tasks are built from held-out documents; in each, query i's only correct
answer is target i, ranked among all the task's targets by cosine similarity:

* **span -> span** (:func:`span_task`): two non-overlapping spans of
  ``span_words`` (32-64) whitespace words from the same document, one the
  query, the other the target (which one comes first in the document is
  random). Documents shorter than two minimal spans are left out.
* **summary -> body** (:func:`summary_task`): the first paragraph (up to the
  first blank line) is the query, the rest of the document the target.
  Documents without a blank line or with an empty rest are left out.

:func:`evaluate_text_retrieval` embeds queries and targets with any
``embed(texts) -> [n, dim]`` function (dense or scipy sparse) and reports
recall@k and the mean reciprocal rank. Ties are counted against the query (a
target scored equal to the correct one ranks ahead of it), so an embedding
that maps everything to one point scores recall@1 = 1/n, not 1.

:func:`tfidf_embedder` is the lexical baseline: scikit-learn's
``TfidfVectorizer(sublinear_tf=True)`` fitted on the training texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from tfcontrast.text.corpus import Documents

SPAN_WORDS = (32, 64)
TASKS = ("span", "summary")


@dataclass(frozen=True)
class RetrievalTask:
    """``queries[i]``'s answer is ``targets[i]``; ``ids[i]`` names the document both come from."""

    name: str
    queries: tuple[str, ...]
    targets: tuple[str, ...]
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def disjoint_spans(num_words: int, rng: np.random.Generator, span_words: tuple[int, int] = SPAN_WORDS):
    """Two non-overlapping ``[start, end)`` word ranges, lengths uniform in ``span_words`` (inclusive).

    The first range is the query, the second the target; each lies inside
    ``[0, num_words)``, they share no word, and either may come first.

    Raises:
        ValueError: ``num_words < 2 * span_words[0]`` (no room for two spans) or bad ``span_words``.
    """
    low, high = _check_span_words(span_words)
    if num_words < 2 * low:
        raise ValueError(f"`num_words` {num_words} leaves no room for two spans of at least {low} words.")
    first = int(rng.integers(low, min(high, num_words - low) + 1))
    second = int(rng.integers(low, min(high, num_words - first) + 1))
    slack = num_words - first - second
    gap_before, gap_between = sorted(int(g) for g in rng.integers(0, slack + 1, size=2))
    a = (gap_before, gap_before + first)
    b = (a[1] + gap_between - gap_before, a[1] + gap_between - gap_before + second)
    return (a, b) if rng.random() < 0.5 else (b, a)


def span_task(documents: Documents, seed: int = 0, span_words: tuple[int, int] = SPAN_WORDS) -> RetrievalTask:
    """Span -> span pairs, one per document long enough (deterministic in ``seed``)."""
    rng = np.random.default_rng(int(seed))
    low, _ = _check_span_words(span_words)
    queries, targets, ids = [], [], []
    for doc_id, text in zip(documents.ids, documents.texts):
        words = text.split()
        if len(words) < 2 * low:
            continue
        (qs, qe), (ts, te) = disjoint_spans(len(words), rng, span_words)
        queries.append(" ".join(words[qs:qe]))
        targets.append(" ".join(words[ts:te]))
        ids.append(doc_id)
    return _task("span", queries, targets, ids)


def summary_task(documents: Documents) -> RetrievalTask:
    """First paragraph -> rest of the document, for documents that have both."""
    queries, targets, ids = [], [], []
    for doc_id, text in zip(documents.ids, documents.texts):
        parts = re.split(r"\n\s*\n", text.strip(), maxsplit=1)
        if len(parts) < 2 or not parts[0].split() or not parts[1].split():
            continue
        queries.append(parts[0].strip())
        targets.append(parts[1].strip())
        ids.append(doc_id)
    return _task("summary", queries, targets, ids)


def retrieval_tasks(
    documents: Documents, seed: int = 0, span_words: tuple[int, int] = SPAN_WORDS
) -> dict[str, RetrievalTask]:
    """``{"span": span_task(...), "summary": summary_task(...)}``."""
    return {"span": span_task(documents, seed, span_words), "summary": summary_task(documents)}


def ranks(similarities: np.ndarray) -> np.ndarray:
    """Rank (1 = first) of target i for query i in ``similarities[i]``, ties counted against the query."""
    s = np.asarray(similarities, np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"`similarities` must be square [n, n], got shape {s.shape}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("`similarities` holds NaN or inf: the embeddings are not finite.")
    return np.sum(s >= np.diag(s)[:, None], axis=1)


def rank_metrics(similarities: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"recall@k": ..., "mrr": ...}`` where query i's answer is target i."""
    r = ranks(similarities)
    metrics = {f"recall@{k}": float(np.mean(r <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / r))
    return metrics


def cosine_similarities(queries, targets) -> np.ndarray:
    """Dense ``[n_q, n_t]`` cosine similarities of two (dense or scipy sparse) matrices; zero rows give 0."""
    from sklearn.preprocessing import normalize

    q = normalize(_as_matrix(queries, "queries"))
    t = normalize(_as_matrix(targets, "targets"))
    s = q @ t.T
    return np.asarray(s.toarray() if hasattr(s, "toarray") else s, np.float64)


def evaluate_text_retrieval(
    embed: Callable[[Sequence[str]], np.ndarray],
    documents: Documents | Mapping[str, RetrievalTask],
    seed: int = 0,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Recall@k and MRR of ``embed`` on the span and summary tasks of held-out ``documents``.

    Args:
        embed: ``texts -> [n, dim]`` array (NumPy or scipy sparse), e.g.
            :func:`tfcontrast.text.embedder` of a string model or :func:`tfidf_embedder`.
        documents: the held-out documents, or tasks already built with
            :func:`retrieval_tasks` (to evaluate several embedders on the same spans).
        seed: the span draw.
        ks: the cut-offs of recall.

    Returns:
        ``{"span/recall@1": ..., "span/recall@5": ..., "span/mrr": ...,
        "summary/...": ..., "span/n": queries, "summary/n": queries}``.

    Raises:
        ValueError: a task with fewer than 2 queries, or non-finite embeddings.
    """
    tasks = retrieval_tasks(documents, seed) if isinstance(documents, Documents) else dict(documents)
    results: dict[str, float] = {}
    for name, task in tasks.items():
        if len(task) < 2:
            raise ValueError(f"the {name!r} task has {len(task)} queries; retrieval needs at least 2.")
        similarities = cosine_similarities(embed(list(task.queries)), embed(list(task.targets)))
        for metric, value in rank_metrics(similarities, ks).items():
            results[f"{name}/{metric}"] = value
        results[f"{name}/n"] = len(task)
    return results


def tfidf_embedder(train_texts: Sequence[str], **tfidf_options) -> Callable[[Sequence[str]], object]:
    """TF-IDF vectors (scipy sparse) from ``TfidfVectorizer(sublinear_tf=True, **tfidf_options)`` fitted on ``train_texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(**{"sublinear_tf": True, **tfidf_options}).fit(list(train_texts))
    return lambda texts: vectorizer.transform(list(texts))


def format_table(results: Mapping[str, Mapping[str, float]], ks: Sequence[int] = (1, 5)) -> str:
    """A Markdown table, one row per method, the columns of both tasks."""
    columns = [f"{task}/{m}" for task in TASKS for m in [*(f"recall@{k}" for k in ks), "mrr"]]
    header = "| method | " + " | ".join(c.replace("/", " ") for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for method, metrics in results.items():
        cells = [f"{metrics[c]:.3f}" if c in metrics else "-" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _task(name, queries, targets, ids) -> RetrievalTask:
    return RetrievalTask(name, tuple(queries), tuple(targets), tuple(ids))


def _as_matrix(x, name: str):
    if hasattr(x, "toarray"):
        return x
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"`{name}` embeddings must be [n, dim], got shape {x.shape}.")
    return x


def _check_span_words(span_words) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in span_words)
    except (TypeError, ValueError):
        raise ValueError(f"`span_words` must be (min, max) word counts, got {span_words!r}.") from None
    if low < 1 or high < low:
        raise ValueError(f"`span_words` must satisfy 1 <= min <= max, got {span_words!r}.")
    return low, high

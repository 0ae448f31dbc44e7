"""Float64 loop references for the TF Similarity and TF Addons drop-ins.

Written from the papers and from the originals' documented formulas, one
anchor and one pair at a time with Python loops and ``math``; they share no
code with the implementation (no TensorFlow, no vectorised NumPy).

Every batch reference takes queries (the anchors) and keys (the candidates):
on one batch both are the batch and anchor i's own key is key i; a
cross-batch memory appends keys after the batch (``self_index[i] = i`` still).
"""

from __future__ import annotations

import math

import numpy as np


def dot(u, v) -> float:
    return sum(float(a) * float(b) for a, b in zip(u, v))


def unit(v) -> np.ndarray:
    """``v / ||v||`` in float64 (the norm summed in a loop)."""
    norm = math.sqrt(sum(float(x) * float(x) for x in v))
    return np.array([float(x) / norm for x in v], np.float64)


def cosine(u, v) -> float:
    """The cosine of the angle between ``u`` and ``v``: the dot product of their unit vectors."""
    return dot(unit(u), unit(v))


def tfsim_distance(u, v, distance: str) -> float:
    """TF Similarity's distances: cosine = max(1 - <u, v>, 0) (no normalisation), l2, sql2."""
    if distance == "cosine":
        return max(1.0 - dot(u, v), 0.0)
    squared = sum((float(a) - float(b)) ** 2 for a, b in zip(u, v))
    return math.sqrt(squared) if distance == "l2" else squared


def euclidean(u, v) -> float:
    return math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(u, v)))


def neighbours(i, q_labels, k_labels):
    """(positives, negatives) key indices of anchor i: same label but not itself / another label."""
    positives = [j for j in range(len(k_labels)) if j != i and k_labels[j] == q_labels[i]]
    negatives = [j for j in range(len(k_labels)) if k_labels[j] != q_labels[i]]
    return positives, negatives


def extreme(row, indices, largest: bool):
    """TF Similarity's masked max/min: the extreme and its first index; empty: row min - 1e-6 / max + 1e-6, 0."""
    if not indices:
        return (min(row) - 1e-6, 0) if largest else (max(row) + 1e-6, 0)
    best = indices[0]
    for j in indices[1:]:
        if (row[j] > row[best]) if largest else (row[j] < row[best]):
            best = j
    return row[best], best


def log1p_sum_exp(values) -> float:
    """log(1 + sum exp(v)), TF Similarity's "logsumexp", in float64 (shifted by max(0, v) against overflow)."""
    shift = max([0.0] + [float(v) for v in values])
    return shift + math.log(math.exp(-shift) + sum(math.exp(float(v) - shift) for v in values))


def has_pair_kinds(q_labels, k_labels) -> bool:
    """The candidates hold at least one positive pair and one negative pair for some anchor."""
    pos = neg = False
    for i in range(len(q_labels)):
        p, n = neighbours(i, q_labels, k_labels)
        pos, neg = pos or bool(p), neg or bool(n)
    return pos and neg


def multisimilarity(q_labels, q, k_labels=None, k=None, distance="cosine", alpha=2.0, beta=40.0,
                    epsilon=0.1, lmda=0.5, center=1.0) -> float:
    k_labels, k = (q_labels, q) if k is None else (k_labels, k)
    total = 0.0
    for i in range(len(q)):
        d = [tfsim_distance(q[i], k[j], distance) for j in range(len(k))]
        positives, negatives = neighbours(i, q_labels, k_labels)
        if not positives or not negatives:
            continue
        nearest_negative = min(d[j] for j in negatives)
        farthest_positive = max(d[j] for j in positives)
        hard_positives = [j for j in positives if d[j] > nearest_negative - epsilon]
        hard_negatives = [j for j in negatives if d[j] < farthest_positive + epsilon]
        if not hard_positives or not hard_negatives:
            continue
        total += log1p_sum_exp([alpha * (d[j] + lmda - center) for j in hard_positives]) / alpha
        total += log1p_sum_exp([-beta * (d[j] + lmda - center) for j in hard_negatives]) / beta
    return total / len(q)


def multisimilarity_paper(labels, x, alpha=2.0, beta=40.0, epsilon=0.1, lmda=0.5) -> float:
    """Wang et al. 2019, eq. 5 and 11-12, on cosine *similarities* S of L2-normalised rows."""
    n, total = len(x), 0.0
    for i in range(n):
        s = [dot(x[i], x[j]) for j in range(n)]
        positives = [j for j in range(n) if j != i and labels[j] == labels[i]]
        negatives = [j for j in range(n) if labels[j] != labels[i]]
        if not positives or not negatives:
            continue
        kept_p = [p for p in positives if s[p] < max(s[j] for j in negatives) + epsilon]
        kept_n = [m for m in negatives if s[m] > min(s[j] for j in positives) - epsilon]
        if not kept_p or not kept_n:
            continue
        total += math.log(1 + sum(math.exp(-alpha * (s[p] - lmda)) for p in kept_p)) / alpha
        total += math.log(1 + sum(math.exp(beta * (s[m] - lmda)) for m in kept_n)) / beta
    return total / n


def circle(q_labels, q, k_labels=None, k=None, distance="cosine", gamma=80.0, margin=0.4) -> float:
    """TF Similarity's circle loss: log(1 + sum_p exp(l_p)) + log(1 + sum_n exp(l_n)), on distances."""
    k_labels, k = (q_labels, q) if k is None else (k_labels, k)
    total = 0.0
    for i in range(len(q)):
        positives, negatives = neighbours(i, q_labels, k_labels)
        if not positives or not negatives:
            continue
        pos_logits, neg_logits = [], []
        for j in positives:
            d = tfsim_distance(q[i], k[j], distance)
            pos_logits.append(-gamma * max(margin + d, 0.0) * (margin - d))
        for j in negatives:
            d = tfsim_distance(q[i], k[j], distance)
            neg_logits.append(gamma * max(1.0 + margin - d, 0.0) * (1.0 - margin - d))
        total += log1p_sum_exp(pos_logits) + log1p_sum_exp(neg_logits)
    return total / len(q)


def circle_paper_terms(labels, x, gamma=80.0, margin=0.4):
    """Sun et al. 2020, eq. 4-8 on cosine similarities: per anchor (sum_p exp(.), sum_n exp(.))."""
    terms = []
    for i in range(len(x)):
        sp, sn = 0.0, 0.0
        for j in range(len(x)):
            s = dot(x[i], x[j])
            if j != i and labels[j] == labels[i]:
                sp += math.exp(-gamma * max(1 + margin - s, 0.0) * (s - (1 - margin)))
            elif labels[j] != labels[i]:
                sn += math.exp(gamma * max(s + margin, 0.0) * (s - margin))
        terms.append((sp, sn))
    return terms


def pn(labels, x, distance="cosine", positive="hard", negative="semi-hard", margin=None) -> float:
    """TF Similarity's PN loss with its mining and fill rules (mean over every anchor)."""
    if not has_pair_kinds(labels, labels):
        return 0.0
    n, total = len(x), 0.0
    for i in range(n):
        row = [tfsim_distance(x[i], x[j], distance) for j in range(n)]
        positives, negatives = neighbours(i, labels, labels)
        d_ap, p = extreme(row, positives, largest=(positive == "hard"))
        if negative == "hard":
            d_an, m = extreme(row, negatives, largest=False)
        elif negative == "easy":
            d_an, m = extreme(row, negatives, largest=True)
        else:
            farthest_positive, _ = extreme(row, positives, largest=True)
            _, farthest_negative = extreme(row, negatives, largest=True)
            chosen = [j for j in range(n) if (j in negatives if row[j] > farthest_positive else j == farthest_negative)]
            d_an, m = extreme(row, chosen, largest=False)
        d_n = min(tfsim_distance(x[p], x[m], distance), d_an)
        gap = d_ap - d_n
        total += math.log1p(math.exp(gap)) if margin is None else max(gap + margin, 0.0)
    return total / n


def soft_nearest_neighbor(q_labels, q, k_labels=None, k=None, distance="sql2", temperature=1.0) -> float:
    """Frosst et al. 2019 with TF Similarity's eps: -log(1e-9 + sum_P e^{-d/T} / sum_{k != i} e^{-d/T})."""
    k_labels, k = (q_labels, q) if k is None else (k_labels, k)
    total = 0.0
    for i in range(len(q)):
        positives, _ = neighbours(i, q_labels, k_labels)
        if not positives:
            continue
        weights = [math.exp(-tfsim_distance(q[i], k[j], distance) / temperature) for j in range(len(k))]
        ratio = sum(weights[j] for j in positives) / sum(weights[j] for j in range(len(k)) if j != i)
        total += -math.log(1e-9 + ratio)
    return total / len(q)


def lifted_struct(q_labels, q, k_labels=None, k=None, margin=1.0) -> float:
    """Oh Song et al. 2016 as TF Addons writes it: 1/(2|P|) sum_{unordered P} max(J_ij, 0)^2."""
    k_labels, k = (q_labels, q) if k is None else (k_labels, k)
    m = len(k)

    def negatives_sum(a):  # sum_{l in N(a)} exp(margin - D_al), a a key index
        return sum(math.exp(margin - euclidean(k[a], k[l])) for l in range(m) if k_labels[l] != k_labels[a])

    total, pairs = 0.0, 0
    for i in range(len(q)):
        for j in range(m):
            if j == i or k_labels[j] != q_labels[i]:
                continue
            pairs += 1
            both = negatives_sum(i) + negatives_sum(j)
            if both == 0.0:
                continue
            j_ij = math.log(both) + euclidean(q[i], k[j])
            total += max(j_ij, 0.0) ** 2
    if pairs == 0 or not has_pair_kinds(q_labels, k_labels):
        return 0.0
    return 0.5 * total / pairs  # ordered pairs: 0.25 * sum / (pairs / 2)


def npairs(labels, logits) -> float:
    """tfa.losses.npairs_loss: mean_i of softmax cross-entropy of row i against its same-label columns."""
    rows = [[1.0 if labels[i] == labels[j] else 0.0 for j in range(len(logits[0]))] for i in range(len(logits))]
    return _cross_entropy(rows, logits)


def npairs_multilabel(multi_hot, logits) -> float:
    """tfa.losses.npairs_multilabel_loss: targets = label-intersection counts, row-normalised."""
    counts = [[float(sum(a * b for a, b in zip(multi_hot[i], multi_hot[j]))) for j in range(len(multi_hot))]
              for i in range(len(multi_hot))]
    return _cross_entropy(counts, logits)


def _cross_entropy(counts, logits) -> float:
    total, rows = 0.0, 0
    for i, row in enumerate(counts):
        norm = sum(row)
        if norm == 0:
            continue
        log_z = math.log(sum(math.exp(float(v)) for v in logits[i]))
        total += -sum(c / norm * (float(logits[i][j]) - log_z) for j, c in enumerate(row))
        rows += 1
    return total / rows if rows else 0.0


def hard_triplet(q_labels, q, k_labels, k, margin) -> float:
    """Batch-hard triplet (Euclidean) of anchors q against keys k (self = key i); mean over anchors with both."""
    total, count = 0.0, 0
    for i in range(len(q)):
        positives, negatives = neighbours(i, q_labels, k_labels)
        if positives and negatives:
            hardest_p = max(euclidean(q[i], k[j]) for j in positives)
            hardest_n = min(euclidean(q[i], k[j]) for j in negatives)
            total += max(hardest_p - hardest_n + margin, 0.0)
            count += 1
    return total / count if count else 0.0


def supcon(q_labels, q, k_labels, k, temperature) -> float:
    """Khosla et al. 2020 L_out of anchors q against keys k (cosine), mean over anchors with positives."""
    def unit(v):
        norm = max(math.sqrt(dot(v, v)), 1e-6)
        return [float(a) / norm for a in v]

    values = []
    for i in range(len(q)):
        positives, _ = neighbours(i, q_labels, k_labels)
        if not positives:
            continue
        s = [dot(unit(q[i]), unit(k[j])) / temperature for j in range(len(k))]
        log_z = math.log(sum(math.exp(s[j]) for j in range(len(k)) if j != i))
        values.append(-sum(s[p] - log_z for p in positives) / len(positives))
    return sum(values) / len(values) if values else 0.0

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfcontrast.text import views


def seed(i):
    return tf.constant([i, 7], tf.int64)


def test_declutr_spans_stay_inside_documents_and_respect_the_papers_bounds():
    lengths = np.array([40, 90, 300, 1000, 33, 600] * 50, np.int32)
    lo, hi = 32, 512
    a_start, a_len, p_start, p_len = (t.numpy() for t in views.declutr_spans(seed(0), lengths, 2, 3, lo, hi))
    d = lengths[:, None]
    cap = np.minimum(hi, d)
    assert a_start.shape == (300, 2) and p_start.shape == (300, 2, 3)
    # lengths within [min(lo, cap), cap], starts inside the document
    assert np.all((a_len >= np.minimum(lo, cap)) & (a_len <= cap))
    assert np.all((p_len >= np.minimum(lo, cap)[..., None]) & (p_len <= cap[..., None]))
    assert np.all(a_start >= 0) and np.all(a_start + a_len <= d)
    assert np.all(p_start >= 0) and np.all(p_start + p_len <= d[..., None])
    # a positive starts at most l_positive before its anchor and at most at its end: it overlaps,
    # is adjacent to or lies inside the anchor, never farther away
    s_a, e_a = a_start[..., None], (a_start + a_len)[..., None]
    assert np.all(p_start >= s_a - p_len) and np.all(p_start <= e_a)
    # all three cases occur
    inside = (p_start >= s_a) & (p_start + p_len <= e_a)
    adjacent = (p_start == e_a) | (p_start + p_len == s_a)
    assert inside.any() and adjacent.any() and (~inside & ~adjacent).any()


def test_span_lengths_follow_the_beta_distributions():
    """Anchors ~ Beta(4, 2), positives ~ Beta(2, 4) on the length scale (KS test on 4,000 draws)."""
    lengths = np.full(4000, 10_000, np.int32)
    lo, hi = 32, 512
    _, a_len, _, p_len = views.declutr_spans(seed(1), lengths, 1, 1, lo, hi)
    # l = floor(p (hi - lo) + lo): p lies in [(l - lo) / (hi - lo), (l + 1 - lo) / (hi - lo)); use the midpoint
    p_anchor = (a_len.numpy().ravel() - lo + 0.5) / (hi - lo)
    p_positive = (p_len.numpy().ravel() - lo + 0.5) / (hi - lo)
    assert stats.kstest(p_anchor, stats.beta(4, 2).cdf).pvalue > 1e-3
    assert stats.kstest(p_positive, stats.beta(2, 4).cdf).pvalue > 1e-3
    assert p_anchor.mean() > 0.6 > 0.4 > p_positive.mean()  # anchors long, positives short


def test_spans_are_a_function_of_the_seed():
    lengths = np.array([100, 200, 300], np.int32)
    first = [t.numpy() for t in views.declutr_spans(seed(3), lengths, 1, 2, 8, 64)]
    again = [t.numpy() for t in views.declutr_spans(seed(3), lengths, 1, 2, 8, 64)]
    other = [t.numpy() for t in views.declutr_spans(seed(4), lengths, 1, 2, 8, 64)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_documents_shorter_than_the_minimum_give_the_whole_document():
    a_start, a_len, p_start, p_len = views.declutr_spans(seed(2), np.array([5, 1], np.int32), 1, 1, 32, 512)
    assert a_len.numpy().ravel().tolist() == [5, 1] and p_len.numpy().ravel().tolist() == [5, 1]
    assert a_start.numpy().ravel().tolist() == [0, 0] and p_start.numpy().ravel().tolist() == [0, 0]


def test_gather_spans_copies_the_right_tokens_and_pads():
    ids = tf.ragged.constant([[10, 11, 12, 13, 14], [20, 21, 22]], dtype=tf.int32)
    out = views.gather_spans(ids, tf.constant([1, 0, 0]), tf.constant([1, 3, 0]), tf.constant([2, 2, 5]), 4).numpy()
    assert out.tolist() == [[21, 22, 0, 0], [13, 14, 0, 0], [10, 11, 12, 13]]  # the last span is cut to 4


def test_random_windows_fit_in_the_document():
    starts, lengths = views.random_windows(seed(0), tf.constant([3, 50, 10]), 10)
    assert lengths.numpy().tolist() == [3, 10, 10]
    assert starts.numpy()[0] == 0 and starts.numpy()[2] == 0 and 0 <= starts.numpy()[1] <= 40


def test_word_dropout_replaces_only_real_tokens_at_the_rate():
    ids = tf.constant(np.r_[np.arange(2, 8002), np.zeros(2000, int)].reshape(10, 1000), tf.int32)
    out = views.word_dropout(seed(0), ids, rate=0.25).numpy()
    real = ids.numpy() != 0
    assert np.all(out[~real] == 0)
    replaced = out[real] == 1
    assert np.all(out[real][~replaced] == ids.numpy()[real][~replaced])
    assert abs(replaced.mean() - 0.25) < 0.02


def test_word_deletion_keeps_order_and_moves_padding_to_the_end():
    ids = tf.constant([[5, 6, 7, 8, 9, 0, 0], [2, 3, 4, 0, 0, 0, 0]], tf.int32)
    out = views.word_deletion(seed(5), ids, rate=0.5).numpy()
    for row, original in zip(out, ids.numpy()):
        kept = row[row != 0].tolist()
        assert kept == [t for t in original if t in kept]  # an order-preserving subsequence
        n = len(kept)
        assert np.all(row[n:] == 0)
    assert np.array_equal(views.word_deletion(seed(5), ids, rate=0.0).numpy(), ids.numpy())


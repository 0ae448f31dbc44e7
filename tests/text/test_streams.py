import numpy as np
import pytest
import tensorflow as tf

from tfcontrast.text import declutr_batches, pair_batches, simcse_batches


def corpus(n=12, seed=0):
    """Documents whose tokens encode (document, position): id = 1000 * (doc + 1) + position."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 200, size=n)
    return tf.ragged.constant([[1000 * (d + 1) + i for i in range(L)] for d, L in enumerate(lengths)], dtype=tf.int32)


def decode(row):
    row = row[row != 0]
    return (row // 1000) - 1, row % 1000


def test_declutr_batches_hold_contiguous_spans_of_one_document_per_anchor():
    ids = corpus()
    lengths = ids.row_lengths().numpy()
    stream = declutr_batches(ids, batch_size=6, sequence_length=64, num_anchors=2, num_positives=3, min_length=8, steps=3)
    for anchors, positives in stream:
        assert anchors.shape == (12, 64) and positives.shape == (12, 3, 64)
        docs_of_anchors = []
        for j in range(12):
            doc, pos = decode(anchors[j].numpy())
            assert len(set(doc)) == 1 and np.all(np.diff(pos) == 1)  # one document, contiguous
            assert 8 <= len(pos) <= min(64, lengths[doc[0]])
            docs_of_anchors.append(doc[0])
            for k in range(3):
                p_doc, p_pos = decode(positives[j, k].numpy())
                assert set(p_doc) == {doc[0]} and np.all(np.diff(p_pos) == 1)
                assert p_pos[0] >= pos[0] - len(p_pos) and p_pos[0] <= pos[-1] + 1
        # anchors 2b and 2b+1 share a document; the 6 documents are distinct
        assert docs_of_anchors[0::2] == docs_of_anchors[1::2]
        assert len(set(docs_of_anchors)) == 6


def test_streams_are_pure_functions_of_seed_and_step():
    ids = corpus()
    first = [b.numpy() for b in simcse_batches(ids, 4, 16, seed=1, steps=4)]
    again = [b.numpy() for b in simcse_batches(ids, 4, 16, seed=1, steps=4)]
    resumed = [b.numpy() for b in simcse_batches(ids, 4, 16, seed=1, steps=4).skip(2)]
    other = [b.numpy() for b in simcse_batches(ids, 4, 16, seed=2, steps=4)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(np.array_equal(a, b) for a, b in zip(first[2:], resumed))
    assert not np.array_equal(first[0], other[0])


def test_simcse_batches_are_windows_of_distinct_documents():
    ids = corpus()
    for batch in simcse_batches(ids, 12, 32, steps=2):
        assert batch.shape == (12, 32)
        docs = []
        for row in batch.numpy():
            doc, pos = decode(row)
            assert len(set(doc)) == 1 and np.all(np.diff(pos) == 1)
            assert len(pos) == min(32, ids.row_lengths().numpy()[doc[0]])
            docs.append(doc[0])
        assert sorted(docs) == list(range(12))  # the whole corpus, no document twice


def test_simcse_word_dropout_replaces_tokens_with_oov():
    batch = next(iter(simcse_batches(corpus(), 12, 32, word_dropout=0.5, steps=1))).numpy()
    assert 0.3 < np.mean(batch[batch != 0] == 1) < 0.7


def test_bad_arguments_are_named():
    ids = corpus(4)
    with pytest.raises(ValueError, match="`batch_size` 5 exceeds the 4 documents"):
        simcse_batches(ids, 5, 16)
    with pytest.raises(ValueError, match="`token_ids`"):
        simcse_batches(np.zeros((4, 3), np.int32), 2, 16)
    with pytest.raises(ValueError, match="empty document"):
        simcse_batches(tf.ragged.constant([[2, 3], []], dtype=tf.int32), 1, 16)
    with pytest.raises(ValueError, match="`max_length`"):
        declutr_batches(ids, 2, 16, min_length=10, max_length=5)
    with pytest.raises(ValueError, match="`word_dropout`"):
        simcse_batches(ids, 2, 16, word_dropout=1.0)


def test_pair_batches_keep_pairs_aligned_and_cut_to_the_first_tokens():
    queries = corpus(10, seed=1)
    passages = corpus(10, seed=2)
    for q, p in pair_batches(queries, passages, batch_size=10, sequence_length=8, steps=2):
        assert q.shape == (10, 8) and p.shape == (10, 8)
        for q_row, p_row in zip(q.numpy(), p.numpy()):
            q_doc, q_pos = decode(q_row)
            p_doc, p_pos = decode(p_row)
            assert set(q_doc) == set(p_doc) and q_pos.tolist() == list(range(8)) == p_pos.tolist()
    with pytest.raises(ValueError, match="`query_ids` has 10 rows but `passage_ids` has 9"):
        pair_batches(queries, corpus(9), 2, 8)

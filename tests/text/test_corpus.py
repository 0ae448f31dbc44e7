import json

import numpy as np
import pytest

from tfcontrast.text import Documents, documents_from_texts, load_documents, load_jsonl, load_text_folder


def docs(n=10):
    return documents_from_texts([f"text number {i} " * (i + 1) for i in range(n)])


def test_split_is_deterministic_disjoint_and_floors_the_held_out_share():
    corpus = docs(1404 // 100 * 10)  # 140 documents
    train, held_out = corpus.split(0.2, seed=0)
    again_train, again_held_out = corpus.split(0.2, seed=0)
    assert (train.ids, held_out.ids) == (again_train.ids, again_held_out.ids)
    assert len(held_out) == 28 and len(train) == 112
    assert not set(train.ids) & set(held_out.ids) and set(train.ids) | set(held_out.ids) == set(corpus.ids)
    # each side keeps the corpus order, and another seed gives another split
    order = {doc_id: i for i, doc_id in enumerate(corpus.ids)}
    assert [order[i] for i in held_out.ids] == sorted(order[i] for i in held_out.ids)
    assert corpus.split(0.2, seed=1)[1].ids != held_out.ids
    assert held_out.metadata["split"] == {"test_fraction": 0.2, "seed": 0, "part": "held_out"}
    # texts and labels travel with their ids
    for doc_id, text in zip(held_out.ids, held_out.texts):
        assert corpus.texts[order[doc_id]] == text


def test_1404_documents_hold_out_280_as_in_the_issue():
    assert len(docs(1404).split(0.2, seed=0)[1]) == 280


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.01])
def test_split_refuses_fractions_that_leave_a_side_empty(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        docs(10).split(fraction)


def test_documents_check_alignment_and_unique_ids():
    with pytest.raises(ValueError, match="one entry per document"):
        Documents(("a", "b"), ("x",), ("", ""))
    with pytest.raises(ValueError, match="'a' appears more than once"):
        Documents(("a", "a"), ("x", "y"), ("", ""))


def test_documents_from_texts_filters_by_words_and_names_bad_arguments():
    corpus = documents_from_texts(["one two three", "one", "a b c d"], labels=["x", "y", "z"], min_words=3)
    assert corpus.ids == ("doc-0", "doc-2") and corpus.labels == ("x", "z")
    with pytest.raises(ValueError, match="single string"):
        documents_from_texts("not a list")
    with pytest.raises(ValueError, match="entry 1 is int"):
        documents_from_texts(["ok", 3])
    with pytest.raises(ValueError, match="`ids` has 1 entries"):
        documents_from_texts(["a", "b"], ids=["x"])
    with pytest.raises(ValueError, match="min_words"):
        documents_from_texts(["a"], min_words=5)
    with pytest.raises(ValueError, match="min_words"):
        documents_from_texts(["a"], min_words=-1)


def test_text_folder_reads_sorted_files_with_relative_ids_and_folder_labels(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("first file", encoding="utf-8")
    (tmp_path / "b" / "c.txt").write_text("second file with é", encoding="utf-8")
    (tmp_path / "b" / "skip.md").write_text("not text", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("hidden", encoding="utf-8")
    corpus = load_text_folder(tmp_path)
    assert corpus.ids == ("a.txt", "b/c.txt") and corpus.labels == ("", "b")
    assert corpus.texts[1] == "second file with é" and corpus.metadata["source"] == "text_folder"


def test_text_folder_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="`path`.*not a folder"):
        load_text_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no file ending in '.txt'"):
        load_text_folder(tmp_path)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="bad.txt.*utf-8"):
        load_text_folder(tmp_path)


def test_jsonl_reads_fields_and_reports_the_line_of_a_bad_record(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"body": "alpha beta", "name": "x", "topic": 1}, {"body": "gamma", "name": "y", "topic": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    corpus = load_jsonl(path, text_field="body", id_field="name", label_field="topic")
    assert corpus.ids == ("x", "y") and corpus.texts == ("alpha beta", "gamma") and corpus.labels == ("1", "2")
    assert load_jsonl(path, text_field="body").ids == ("line-1", "line-2")
    with pytest.raises(ValueError, match=r"`text_field` 'text' is missing on line 1.*\['body', 'name', 'topic'\]"):
        load_jsonl(path)
    path.write_text('{"text": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        load_jsonl(path)
    path.write_text('{"text": 5}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="not a string"):
        load_jsonl(path)


def test_load_documents_dispatches_on_its_argument(tmp_path):
    (tmp_path / "a.txt").write_text("folder text", encoding="utf-8")
    (tmp_path / "d.jsonl").write_text('{"text": "json text"}\n', encoding="utf-8")
    assert load_documents(tmp_path).texts == ("folder text",)
    assert load_documents(tmp_path / "d.jsonl").texts == ("json text",)
    assert load_documents(["list text"]).texts == ("list text",)
    corpus = docs(3)
    assert load_documents(corpus) is corpus
    with pytest.raises(ValueError, match="`source`"):
        load_documents(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="`source`"):
        load_documents(42)


def test_subset_keeps_order_and_adds_metadata():
    corpus = docs(5)
    part = corpus.subset(np.array([3, 1]), note="x")
    assert part.ids == ("doc-3", "doc-1") and part.metadata["note"] == "x"

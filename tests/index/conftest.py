"""Fixtures shared by the index tests: one Milvus Lite database per test module, fresh collections."""

import itertools

import pytest

from tfcontrast.index import MilvusIndex

_names = itertools.count()


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory):
    """A Milvus Lite database file (in-process server) shared by one test module."""
    return str(tmp_path_factory.mktemp("milvus") / "lite.db")


@pytest.fixture
def new_milvus(milvus_db):
    """``new_milvus(**kwargs)``: a MilvusIndex on a collection of its own in the module's database."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("collection", f"c{next(_names)}")
        index = MilvusIndex(milvus_db, **kwargs)
        made.append(index)
        return index

    yield make
    for index in made:
        index.drop()

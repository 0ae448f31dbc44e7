import threading
import time

import numpy as np
import pytest

from tfcontrast.index import Index
from tfcontrast.index.locking import ReadWriteLock


def run_threads(targets, timeout=30.0):
    """Runs the callables in threads; re-raises the first exception any of them raised."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    if errors:
        raise errors[0]


def test_readers_share_the_lock():
    lock = ReadWriteLock()
    both_inside = threading.Barrier(2, timeout=5)

    def reader():
        with lock.read():
            both_inside.wait()  # raises BrokenBarrierError if readers excluded each other

    run_threads([reader, reader])


def test_writer_excludes_readers_and_writers():
    lock = ReadWriteLock()
    events = []
    writer_in = threading.Event()

    def writer():
        with lock.write():
            writer_in.set()
            events.append("write-start")
            time.sleep(0.2)
            events.append("write-end")

    def reader():
        writer_in.wait(5)
        with lock.read():
            events.append("read")

    def second_writer():
        writer_in.wait(5)
        with lock.write():
            events.append("write2")

    run_threads([writer, reader, second_writer])
    assert events[:2] == ["write-start", "write-end"]
    assert sorted(events[2:]) == ["read", "write2"]


def test_waiting_writer_is_not_starved_by_new_readers():
    lock = ReadWriteLock()
    order = []
    first_reader_in = threading.Event()
    writer_waiting = threading.Event()

    def first_reader():
        with lock.read():
            first_reader_in.set()
            writer_waiting.wait(5)
            time.sleep(0.1)  # let the late reader arrive while the writer waits
            order.append("reader1")

    def writer():
        first_reader_in.wait(5)
        writer_waiting.set()
        with lock.write():
            order.append("writer")

    def late_reader():
        writer_waiting.wait(5)
        time.sleep(0.05)
        with lock.read():
            order.append("reader2")

    run_threads([first_reader, writer, late_reader])
    assert order == ["reader1", "writer", "reader2"]


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_concurrent_searches_while_adding_see_whole_batches(backend):
    """4 threads search while 1 adds 30 batches: every result must equal the exact
    top-k over some prefix of whole batches (never a half-added batch), and the
    prefix a thread sees never goes back in time."""
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(40, 8)).astype(np.float32) for _ in range(30)]
    queries = rng.normal(size=(16, 8)).astype(np.float32)
    k = 5
    params = {"M": 16, "ef_construction": 200, "ef_search": 1200} if backend == "hnsw" else {}
    idx = Index("euclidean", backend, **params)  # ef_search >= n: exact results
    idx.add(batches[0])
    # Exact top-k ids after each prefix of batches (brute force in NumPy).
    prefix_answers = []
    for m in range(1, len(batches) + 1):
        refs = np.concatenate(batches[:m])
        d = ((queries[:, None, :] - refs[None]) ** 2).sum(-1)
        prefix_answers.append(np.argsort(d, axis=1, kind="stable")[:, :k])
    done = threading.Event()
    seen = []

    def searcher():
        last = 0
        count = 0
        while not done.is_set() or count < 3:
            ids = idx.search(queries, k).ids
            matches = [m for m, ans in enumerate(prefix_answers) if np.array_equal(ids, ans)]
            assert matches, "a search returned a result that matches no whole-batch prefix"
            assert max(matches) >= last, "a later search saw an older index"
            last = max(matches)
            count += 1
        seen.append(count)

    def adder():
        try:
            for batch in batches[1:]:
                idx.add(batch)
                time.sleep(0.002)
        finally:
            done.set()

    run_threads([searcher] * 4 + [adder])
    assert len(idx) == 40 * 30
    assert len(seen) == 4 and min(seen) >= 3
    np.testing.assert_array_equal(idx.search(queries, k).ids, prefix_answers[-1])

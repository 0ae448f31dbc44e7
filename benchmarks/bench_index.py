"""Similarity search throughput: tfcontrast's Index and NearestNeighbors vs faiss called directly.

On N x 128 L2-normalised float32 references with latent structure (points
around 1,000 random cluster centres, so neighbourhoods are meaningful) and
queries from the same distribution, k = 10, queries in batches of 1,000, it
measures side by side in one run (methods interleaved, median over repeats):

1. ``Index(backend="exact", metric="cosine")`` vs ``faiss.IndexFlatIP``
   (target: >= 0.9x the queries/second);
2. ``NearestNeighbors`` (TF matmul + top_k in a ``tf.function``, plus an XLA
   variant) vs ``faiss.IndexFlatIP`` (target: >= 0.7x);
3. ``Index(backend="hnsw")`` vs ``faiss.IndexHNSWFlat`` built directly with
   the same M, efConstruction and efSearch: recall@10 against the exact top
   10 (target >= 0.95) and queries/second (target >= 0.9x). Two graphs built
   in parallel differ (faiss's threaded insertion is not deterministic), and
   so does their search cost; the Index is therefore also timed against
   faiss searching the Index's own graph (``Index.faiss_index``), which
   isolates the wrapper's overhead. ``backend="ivf"`` for reference;
4. build time and bytes per vector of each backend (the saved directory's
   size / N, which includes ids, labels and the faiss bytes);
5. in a fresh subprocess (so its peak memory is its own), exact batched
   search over 1,000,000 references: build time, seconds per batch of 1,000
   queries, resident memory;
6. ``MilvusIndex`` on Milvus Lite (in-process, a fresh ``.db`` in a temporary
   folder) on the same references and queries: insert throughput (upserts in
   batches, then ``flush`` which seals and indexes the segments, timed apart),
   query throughput and recall@10 against the exact top 10, for
   ``index_type="AUTOINDEX"`` (HNSW in Lite) and ``"FLAT"`` (exact), next to the
   faiss Index's build and query numbers. Milvus Lite is a pure-Python engine
   (NumPy / faiss per segment, a gRPC round trip per call); it is expected to
   be slower: the point is the number. Skipped without pymilvus/milvus-lite.

faiss and TensorFlow use every core (2 on the reference machine). Timings on a
shared machine are noisy; the ratios are taken within one run.

Run:  python benchmarks/bench_index.py            (N = 100,000; 1,000,000 for part 5; ~6 min on 2 cores)
      python benchmarks/bench_index.py --quick    (N = 20,000; 200,000 for part 5)
      python benchmarks/bench_index.py --n 2000 --queries 200 --large 0 --repeats 1   (a smoke run)
      python benchmarks/bench_index.py --no-milvus                                   (faiss only)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# faiss-cpu's OpenMP threads (and its OpenMP OpenBLAS) spin at every barrier;
# on a machine shared with other jobs a preempted thread then stalls the rest,
# and one batch of exact search took 2.6-4.6 s instead of 0.6 s in our runs.
# Passive waiting costs a few microseconds per parallel region on an idle
# machine. Both sides of every faiss comparison run under the same setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

DIM = 128
K = 10
BATCH = 1000
CLUSTERS = 1000
# The Index's defaults; the raw faiss HNSW gets the same.
HNSW = {"M": 32, "ef_construction": 100, "ef_search": 64}
IVF = {"nlist": 1000, "nprobe": 16}


def make_data(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """References and queries around shared cluster centres, L2-normalised float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)

    def sample(m):
        x = centres[rng.integers(0, CLUSTERS, m)] + 0.7 * rng.normal(size=(m, DIM)).astype(np.float32)
        return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)

    return sample(n), sample(n_queries)


def batches(queries: np.ndarray):
    return [queries[i : i + BATCH] for i in range(0, len(queries), BATCH)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_qps(methods: dict, queries: np.ndarray, repeats: int) -> dict:
    """Median over repeats of each method's queries/second.

    Interleaved per batch: every batch of 1,000 queries is run by each method
    in turn (the order rotating), so all methods see the same machine load.
    """
    parts = batches(queries)
    for fn in methods.values():  # warm-up (tracing, first-touch)
        fn(parts[0])
    names = list(methods)
    seconds = {name: [] for name in names}
    for rep in range(repeats):
        total = dict.fromkeys(names, 0.0)
        for i, part in enumerate(parts):
            shift = (rep + i) % len(names)
            for name in names[shift:] + names[:shift]:
                total[name] += timed(lambda: methods[name](part))
        for name in names:
            seconds[name].append(total[name])
    return {name: len(queries) / statistics.median(s) for name, s in seconds.items()}


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ true top-k| / k (ANN recall against exact search)."""
    return float(np.mean([len(np.intersect1d(f, t)) / truth.shape[1] for f, t in zip(found, truth)]))


def bench_main(n: int, n_queries: int, repeats: int) -> dict:
    import tensorflow as tf

    from tfcontrast.index import Index, NearestNeighbors

    refs, queries = make_data(n, n_queries)
    out = {"n": n, "queries": n_queries, "dim": DIM, "k": K, "batch": BATCH, "threads": faiss.omp_get_max_threads()}
    tmp = tempfile.mkdtemp(prefix="bench_index_")
    try:
        # --- exact ---------------------------------------------------------
        raw_flat = faiss.IndexFlatIP(DIM)
        build = {"faiss_flat": timed(lambda: raw_flat.add(refs))}
        exact = Index("cosine", "exact")
        build["index_exact"] = timed(lambda: exact.add(refs))
        nn = NearestNeighbors(refs, k=K, metric="cosine")
        nn_graph = tf.function(nn)
        nn_xla = tf.function(nn, jit_compile=True)
        _, truth = raw_flat.search(queries, K)
        agree = float(np.mean(exact.search(queries, K).ids == truth))
        nn_agree = float(np.mean(np.concatenate([nn_graph(b)["ids"].numpy() for b in batches(queries)]) == truth))
        qps = interleaved_qps(
            {
                "faiss_flat": lambda b: raw_flat.search(b, K),
                "index_exact": lambda b: exact.search(b, K),
                "nearest_neighbors": lambda b: nn_graph(b)["ids"].numpy(),
                "nearest_neighbors_xla": lambda b: nn_xla(b)["ids"].numpy(),
            },
            queries,
            repeats,
        )
        out["exact"] = {
            "qps": qps,
            "index_vs_faiss": qps["index_exact"] / qps["faiss_flat"],
            "nn_vs_faiss": qps["nearest_neighbors"] / qps["faiss_flat"],
            "nn_xla_vs_faiss": qps["nearest_neighbors_xla"] / qps["faiss_flat"],
            "ids_agree_with_faiss": agree,
            "nn_ids_agree_with_faiss": nn_agree,
        }
        print(json.dumps({"exact": out["exact"]}, indent=1), flush=True)
        del nn, nn_graph, nn_xla

        # --- hnsw ----------------------------------------------------------
        raw_hnsw = faiss.IndexHNSWFlat(DIM, HNSW["M"], faiss.METRIC_INNER_PRODUCT)
        raw_hnsw.hnsw.efConstruction = HNSW["ef_construction"]
        raw_hnsw.hnsw.efSearch = HNSW["ef_search"]
        build["faiss_hnsw"] = timed(lambda: raw_hnsw.add(refs))
        hnsw = Index("cosine", "hnsw", **HNSW)
        build["index_hnsw"] = timed(lambda: hnsw.add(refs))
        ivf = Index("cosine", "ivf", **IVF)
        build["index_ivf"] = timed(lambda: ivf.add(refs))
        same_graph = hnsw.faiss_index
        qps = interleaved_qps(
            {
                "faiss_hnsw": lambda b: raw_hnsw.search(b, K),
                "faiss_hnsw_same_graph": lambda b: same_graph.search(b, K),
                "index_hnsw": lambda b: hnsw.search(b, K),
                "index_ivf": lambda b: ivf.search(b, K),
            },
            queries,
            repeats,
        )
        out["approximate"] = {
            "params_hnsw": HNSW,
            "params_ivf": ivf.params,
            "qps": qps,
            "index_hnsw_vs_faiss_hnsw": qps["index_hnsw"] / qps["faiss_hnsw"],
            "index_hnsw_vs_faiss_same_graph": qps["index_hnsw"] / qps["faiss_hnsw_same_graph"],
            "recall@10": {
                "faiss_hnsw": recall_at_k(raw_hnsw.search(queries, K)[1], truth),
                "index_hnsw": recall_at_k(hnsw.search(queries, K).ids, truth),
                "index_ivf": recall_at_k(ivf.search(queries, K).ids, truth),
            },
        }
        print(json.dumps({"approximate": out["approximate"]}, indent=1), flush=True)

        # --- build time and size -------------------------------------------
        size = {}
        for name, idx in (("exact", exact), ("hnsw", hnsw), ("ivf", ivf)):
            size[name] = dir_bytes(idx.save(os.path.join(tmp, name))) / n
        out["build_seconds"] = build
        out["bytes_per_vector_saved"] = size
        out["raw_vector_bytes"] = DIM * 4
        print(json.dumps({"build_seconds": build, "bytes_per_vector_saved": size}, indent=1), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _trim() -> None:
    """Returns freed heap pages to the OS (glibc), so RSS measures live memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def bench_large(n: int, n_batches: int) -> dict:
    """Runs in a fresh process: exact batched search over n references."""
    from tfcontrast.index import Index

    refs, queries = make_data(n, n_batches * BATCH, seed=1)
    _trim()
    before = rss_mib()
    idx = Index("cosine", "exact")
    build = timed(lambda: idx.add(refs))
    _trim()
    held = rss_mib() - before  # the input array is alive before and after
    raw = faiss.IndexFlatIP(DIM)
    stored, _, _ = idx.to_arrays()
    raw.add(stored)
    del stored
    idx.search(queries[:BATCH], K)  # warm-up
    raw.search(queries[:BATCH], K)
    per_batch, raw_per_batch = [], []
    for b in batches(queries):  # alternating, so both see the same machine load
        per_batch.append(timed(lambda: idx.search(b, K)))
        raw_per_batch.append(timed(lambda: raw.search(b, K)))
    return {
        "n": n,
        "build_seconds": build,
        "seconds_per_batch_of_1000": statistics.median(per_batch),
        "faiss_flat_seconds_per_batch_of_1000": statistics.median(raw_per_batch),
        "qps": BATCH / statistics.median(per_batch),
        "index_rss_mib": held,
        "index_vectors_mib": n * DIM * 4 / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench_milvus(refs: np.ndarray, queries: np.ndarray, truth: np.ndarray, tmp: str) -> dict:
    """Milvus Lite insert / flush / query throughput and recall@10 (part 6)."""
    from tfcontrast.index import MilvusIndex

    out = {}
    ids = np.arange(len(refs))
    for index_type in ("AUTOINDEX", "FLAT"):
        idx = MilvusIndex(os.path.join(tmp, f"milvus_{index_type}.db"), "bench", "cosine", index_type)
        insert = timed(lambda: idx.add(refs, ids=ids))
        flush = timed(idx.flush)
        idx.search(queries[:BATCH], K)  # warm-up
        found, seconds = [], 0.0
        for b in batches(queries):
            started = time.perf_counter()
            found.append(idx.search(b, K).ids)
            seconds += time.perf_counter() - started
        out[index_type] = {
            "insert_rows_per_second": len(refs) / insert,
            "insert_seconds": insert,
            "flush_and_index_seconds": flush,
            "qps": len(queries) / seconds,
            "recall@10": recall_at_k(np.concatenate(found), truth),
        }
        idx.drop()
        idx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 20,000 and 200,000 for the large case")
    parser.add_argument("--n", type=int, help="references (default 100,000; 20,000 with --quick)")
    parser.add_argument("--queries", type=int, help="queries (default 10,000; 2,000 with --quick)")
    parser.add_argument("--large", type=int, help="references of part 5 (0 skips it)")
    parser.add_argument("--repeats", type=int, help="timing repeats (default 5; 3 with --quick)")
    parser.add_argument("--no-milvus", action="store_true", help="skip part 6 (Milvus Lite)")
    parser.add_argument("--large-only", type=int, default=0, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.large_only:
        print(json.dumps(bench_large(args.large_only, n_batches=5)))
        return
    n, n_large, n_queries, repeats = (20_000, 200_000, 2_000, 3) if args.quick else (100_000, 1_000_000, 10_000, 5)
    n = args.n or n
    n_large = n_large if args.large is None else args.large
    n_queries = args.queries or n_queries
    repeats = args.repeats or repeats
    started = time.perf_counter()
    result = bench_main(n, n_queries, repeats)
    if n_large:
        proc = subprocess.run(
            [sys.executable, __file__, "--large-only", str(n_large)], capture_output=True, text=True, check=True
        )
        result["large_exact"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps({"large_exact": result["large_exact"]}, indent=1), flush=True)
    if not args.no_milvus:
        try:
            import milvus_lite  # noqa: F401
            import pymilvus  # noqa: F401
        except ImportError:
            print("milvus: skipped (pip install 'tfcontrast[milvus]')")
        else:
            refs, queries = make_data(n, n_queries)
            _, truth = _exact_truth(refs, queries)
            tmp = tempfile.mkdtemp(prefix="bench_milvus_")
            try:
                result["milvus_lite"] = bench_milvus(refs, queries, truth, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(json.dumps({"milvus_lite": result["milvus_lite"]}, indent=1), flush=True)
    result["wall_seconds"] = time.perf_counter() - started
    e, a = result["exact"], result["approximate"]
    lines = [
        f"\nSUMMARY n={n} k={K} batch={BATCH} threads={result['threads']}",
        f"  Index exact / faiss IndexFlatIP qps:     {e['index_vs_faiss']:.3f}  (target >= 0.90)",
        f"  NearestNeighbors / faiss exact qps:      {e['nn_vs_faiss']:.3f}  (XLA {e['nn_xla_vs_faiss']:.3f}; target >= 0.70)",
        f"  Index hnsw / faiss HNSW qps:             {a['index_hnsw_vs_faiss_hnsw']:.3f}  (target >= 0.90; own graph)",
        f"  Index hnsw / faiss on the same graph:    {a['index_hnsw_vs_faiss_same_graph']:.3f}  (wrapper overhead only)",
        f"  hnsw recall@10 vs exact:                 {a['recall@10']['index_hnsw']:.4f}  (target >= 0.95)",
    ]
    if "large_exact" in result:
        large = result["large_exact"]
        lines.append(
            f"  {large['n']:,} exact: {large['seconds_per_batch_of_1000']:.3f} s per 1000 queries, build "
            f"{large['build_seconds']:.2f} s, index RSS {large['index_rss_mib']:.0f} MiB (vectors alone "
            f"{large['index_vectors_mib']:.0f} MiB)"
        )
    if "milvus_lite" in result:
        qps, build = e["qps"]["index_exact"], result["build_seconds"]
        for index_type, m in result["milvus_lite"].items():
            faiss_name = "index_hnsw" if index_type == "AUTOINDEX" else "index_exact"
            faiss_qps = a["qps"]["index_hnsw"] if index_type == "AUTOINDEX" else qps
            lines.append(
                f"  Milvus Lite {index_type:9s}: insert {m['insert_rows_per_second']:,.0f} rows/s "
                f"(faiss {faiss_name} {n / build[faiss_name]:,.0f}), flush+index {m['flush_and_index_seconds']:.1f} s, "
                f"{m['qps']:,.0f} queries/s (faiss {faiss_qps:,.0f}; ratio {m['qps'] / faiss_qps:.3f}), "
                f"recall@10 {m['recall@10']:.4f}"
            )
    print("\n".join(lines))


def _exact_truth(refs: np.ndarray, queries: np.ndarray):
    flat = faiss.IndexFlatIP(DIM)
    flat.add(refs)
    return flat.search(queries, K)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()

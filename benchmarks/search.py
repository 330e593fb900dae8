"""Benchmark the catalog's vector index (store/vector_index.py).

For each size, builds the index through ``VectorIndex.build`` on synthetic
clustered embeddings and reports build time, single-query latency, recall@10
against brute force, and latency relative to exact search.

    python benchmarks/search.py --sizes 10000,100000,1000000 --threads 1

It then pushes real small modules through the whole push path (read, check
against the base model, blob, row, indexes) and prints modules per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.vector_index import DEFAULT_EXACT_THRESHOLD, VectorIndex, set_num_threads  # noqa: E402

K = 10
# Generating in blocks bounds the float32 noise temporaries at 1M x 384.
GEN_BLOCK = 65_536


@dataclass(frozen=True)
class Row:
    size: int
    index_type: str
    params: str
    build_s: float
    p50_ms: float
    p99_ms: float
    recall: float
    exact_p50_ms: float


class Mixture:
    """Seeded Gaussian mixture on the unit sphere: point = center + noise, normalized.

    Cluster weights are log-normal so cluster sizes are uneven, as in real
    catalogs; each cluster has its own spread.
    """

    def __init__(self, dim: int, clusters: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        centers = rng.standard_normal((clusters, dim), dtype=np.float32)
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.weights = weights / weights.sum()
        # Noise of norm ~spread relative to a unit center: 0.8..1.2 puts points
        # at cosine ~0.4-0.6 to each other within a cluster, ~0 across clusters.
        self.spread = rng.uniform(0.8, 1.2, clusters).astype(np.float32)
        self.dim = dim

    def sample(self, n: int, seed: list[int]) -> npt.NDArray[np.float32]:
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, GEN_BLOCK):
            stop = min(n, start + GEN_BLOCK)
            c = rng.choice(len(self.centers), stop - start, p=self.weights)
            block = rng.standard_normal((stop - start, self.dim), dtype=np.float32)
            block *= (self.spread[c] / np.sqrt(self.dim))[:, None]
            block += self.centers[c]
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[start:stop] = block
        return out


def measure_build(ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], exact_threshold: int) -> tuple[VectorIndex, float]:
    """Build through ``VectorIndex.build``; return the index and wall seconds."""
    t0 = time.perf_counter()
    index = VectorIndex.build(ids, vectors, vectors.shape[1], exact_threshold=exact_threshold)
    return index, time.perf_counter() - t0


def measure_latency(index: VectorIndex, queries: npt.NDArray[np.float32], k: int = K) -> npt.NDArray[np.float64]:
    """Search one query at a time; return per-query latencies in ms."""
    ms = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        index.search(queries[i : i + 1], k)
        ms[i] = (time.perf_counter() - t0) * 1e3
    return ms


def search_ids(index: VectorIndex, queries: npt.NDArray[np.float32], k: int = K) -> npt.NDArray[np.int64]:
    """Ids found for every query (batched; used for recall, not timed)."""
    return index.search(queries, k)[1]


def ground_truth(ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int = K) -> npt.NDArray[np.int64]:
    """Exact top-k ids by brute-force inner product (faiss IndexFlatIP search, no copy)."""
    _, rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return ids[rows]


def recall_at_k(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    """Mean fraction of the true top-k present in the returned top-k."""
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def bench_size(
    mixture: Mixture,
    size: int,
    queries: npt.NDArray[np.float32],
    exact_queries: int,
    exact_threshold: int,
    seed: int,
) -> Row:
    """All search measurements for one catalog size."""
    vectors = mixture.sample(size, seed=[seed, size])
    ids = np.arange(1, size + 1, dtype=np.int64)  # database primary keys start at 1
    truth = ground_truth(ids, vectors, queries)

    index, build_s = measure_build(ids, vectors, exact_threshold)
    latency = measure_latency(index, queries)
    recall = recall_at_k(search_ids(index, queries), truth)
    params = " ".join(f"{k}={v}" for k, v in index.params.items()) or "flat"
    index_type = index.index_type
    del index

    # Exact search is the baseline; at 1M it takes ~100 ms a query, so it is
    # timed on a subset of the queries.
    exact, _ = measure_build(ids, vectors, exact_threshold=size + 1)
    exact_latency = measure_latency(exact, queries[:exact_queries])
    return Row(
        size=size,
        index_type=index_type,
        params=params,
        build_s=build_s,
        p50_ms=float(np.percentile(latency, 50)),
        p99_ms=float(np.percentile(latency, 99)),
        recall=recall,
        exact_p50_ms=float(np.percentile(exact_latency, 50)),
    )


def print_table(rows: list[Row]) -> None:
    header = f"{'size':>9}  {'index':<5}  {'params':<22}  {'build s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'recall@10':>9}  {'exact p50':>9}  {'p50/exact':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.size:>9}  {r.index_type:<5}  {r.params:<22}  {r.build_s:>8.1f}  {r.p50_ms:>7.3f}  "
            f"{r.p99_ms:>7.3f}  {r.recall:>9.4f}  {r.exact_p50_ms:>9.3f}  {r.p50_ms / r.exact_p50_ms:>9.3f}"
        )


def measure_push_throughput(modules: int, seed: int) -> tuple[float, float]:
    """Push real LoRA folders (MiniLM, distinct weights) through `Hub.push`; return (modules/s, s/module).

    The first push loads the base model and the sentence encoder; it is excluded.
    """
    import tempfile

    import torch

    from hub import Hub

    suite = Path(__file__).resolve().parents[1] / "suites" / "wordnet"
    with tempfile.TemporaryDirectory() as scratch, Hub(Path(scratch) / "registry") as hub:
        module = hub.new_module("minilm", "lora")
        generator = torch.Generator().manual_seed(seed)
        folders = []
        for i in range(modules + 1):
            tensors = {name: torch.randn(t.shape, generator=generator) * 0.02 for name, t in module.tensors().items()}
            module.method.set_tensors(module.model, tensors)
            folders.append(module.save(Path(scratch) / f"m{i}"))
        dataset = suite / "wn-isa-animal"
        hub.push(folders[0], dataset)
        started = time.perf_counter()
        for folder in folders[1:]:
            hub.push(folder, dataset)
        elapsed = time.perf_counter() - started
    return modules / elapsed, elapsed / modules


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated index sizes")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="queries for latency and recall")
    parser.add_argument("--exact-queries", type=int, default=100, help="queries for the exact-search baseline")
    parser.add_argument("--clusters", type=int, default=4000, help="mixture components")
    parser.add_argument("--threads", type=int, default=1, help="faiss OpenMP threads (build and search)")
    parser.add_argument("--exact-threshold", type=int, default=DEFAULT_EXACT_THRESHOLD)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--push-modules", type=int, default=50, help="real modules pushed for the throughput figure (0 skips it)")
    args = parser.parse_args(argv)

    set_num_threads(args.threads)
    mixture = Mixture(args.dim, args.clusters, args.seed)
    queries = mixture.sample(args.queries, seed=[args.seed, 0])
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"faiss {faiss.__version__}, dim={args.dim}, threads={args.threads}, clusters={args.clusters}, "
        f"queries={args.queries} (exact baseline on {min(args.queries, args.exact_queries)}), "
        f"exact_threshold={args.exact_threshold}",
        flush=True,
    )
    rows = []
    for size in sizes:
        rows.append(bench_size(mixture, size, queries, args.exact_queries, args.exact_threshold, args.seed))
        print(f"  done size={size}", file=sys.stderr, flush=True)
    print_table(rows)
    if args.push_modules:
        per_second, per_module = measure_push_throughput(args.push_modules, args.seed)
        print(f"\npush throughput (Hub.push of real MiniLM LoRA folders, SQLite): {per_second:.2f} modules/s ({per_module * 1000:.0f} ms/module)")


if __name__ == "__main__":
    main()

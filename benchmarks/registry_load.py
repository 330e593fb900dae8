"""Load on a shared registry: N processes push and search at once, on SQLite and PostgreSQL.

    python benchmarks/registry_load.py                      # N = 1 2 4 8, both backends
    python benchmarks/registry_load.py --processes 1 8 --pushes 100 --searches 200
    python benchmarks/registry_load.py --postgres postgresql+psycopg://USER:PW@HOST/DB   # an existing server (superuser: makes databases)

Each process opens the registry, pushes `--pushes` synthetic LoRA modules
(real safetensors blobs, rows, index updates; tests/synthetic.py) and then runs
`--searches` searches (alternating dataset-embedding and parameter-embedding
queries) while the other processes may still be pushing. Reported per backend
and N: pushes/s and searches/s summed over the processes (each process's count
over its own phase time), and p50/p99 latency of one push and one search.
Without --postgres a throwaway server is started from Debian's binaries
(tests/pg.py); the PostgreSQL rows are skipped, saying why, when none can start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def worker(args: dict) -> None:
    import numpy as np
    import synthetic

    from store.registry import Registry

    registry = Registry.open(args["url"], args.get("blobs"))
    push_latencies, search_latencies = [], []
    start = time.perf_counter()
    for i in range(args["pushes"]):
        seed = args["worker"] * 1_000_000 + i
        t0 = time.perf_counter()
        synthetic.push(registry, seed)
        push_latencies.append(time.perf_counter() - t0)
    push_time = time.perf_counter() - start
    rng = np.random.default_rng(args["worker"])
    _d, new, _t, _ds = synthetic.module(0)
    start = time.perf_counter()
    for i in range(args["searches"]):
        t0 = time.perf_counter()
        if i % 2:
            registry.indexes.search_parameters(new.schema_hash, synthetic.unit(int(rng.integers(1 << 30)), synthetic.SKETCH_DIM), 10)
        else:
            registry.indexes.search_datasets(synthetic.unit(int(rng.integers(1 << 30)), synthetic.DATASET_DIM), 10)
        search_latencies.append(time.perf_counter() - t0)
    search_time = time.perf_counter() - start
    registry.close()
    print(json.dumps({"push": push_latencies, "search": search_latencies, "push_time": push_time, "search_time": search_time, "stats": registry.indexes.stats}))


def run(url: str, blobs: str | None, processes: int, pushes: int, searches: int) -> dict:
    from store.registry import Registry

    Registry.open(url, blobs).close()  # schema once, as `adapters db upgrade` would
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps({"url": url, "blobs": blobs, "worker": w, "pushes": pushes, "searches": searches})],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for w in range(processes)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    import numpy as np

    pushes_all = np.concatenate([r["push"] for r in results]) * 1000
    searches_all = np.concatenate([r["search"] for r in results]) * 1000
    registry = Registry.open(url, blobs)
    count = len(registry.catalog.list_modules())
    registry.close()
    assert count == processes * pushes, f"{count} modules, expected {processes * pushes}"
    return {
        "pushes_per_s": sum(len(r["push"]) / r["push_time"] for r in results),
        "searches_per_s": sum(len(r["search"]) / r["search_time"] for r in results),
        "push_p50": float(np.percentile(pushes_all, 50)),
        "push_p99": float(np.percentile(pushes_all, 99)),
        "search_p50": float(np.percentile(searches_all, 50)),
        "search_p99": float(np.percentile(searches_all, 99)),
        "rebuilds": sum(r["stats"]["rebuilt"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--pushes", type=int, default=50, help="pushes per process")
    parser.add_argument("--searches", type=int, default=200, help="searches per process")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--postgres", help="superuser URL of an existing server (default: start a throwaway one)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    server = None
    rows = []
    work = Path(tempfile.mkdtemp(prefix="deltahub-load-"))
    try:
        for backend in args.backends:
            if backend == "postgresql":
                import pg

                try:
                    if args.postgres:
                        os.environ[pg.ENV_URL] = args.postgres
                    server = pg.start_server()
                except RuntimeError as error:
                    print(f"postgresql: skipped ({error})")
                    continue
            for n in args.processes:
                if backend == "sqlite":
                    url, blobs = str(work / f"sqlite-{n}"), None
                else:
                    url = server.create_database()
                    blobs = str(work / f"pg-blobs-{n}")
                    Path(blobs).mkdir()
                result = run(url, blobs, n, args.pushes, args.searches)
                rows.append((backend, n, result))
                print(
                    f"{backend:10s} N={n}: {result['pushes_per_s']:7.1f} pushes/s (p99 {result['push_p99']:6.1f} ms), "
                    f"{result['searches_per_s']:8.1f} searches/s (p99 {result['search_p99']:6.1f} ms)",
                    flush=True,
                )
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{args.pushes} pushes then {args.searches} searches per process; {os.cpu_count()} CPUs")
    print("| backend | N | pushes/s | push p50 ms | push p99 ms | searches/s | search p50 ms | search p99 ms | index rebuilds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend, n, r in rows:
        print(
            f"| {backend} | {n} | {r['pushes_per_s']:.1f} | {r['push_p50']:.1f} | {r['push_p99']:.1f} | "
            f"{r['searches_per_s']:.0f} | {r['search_p50']:.2f} | {r['search_p99']:.2f} | {r['rebuilds']} |"
        )


if __name__ == "__main__":
    main()

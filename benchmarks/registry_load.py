"""Load on a shared registry: N processes push and search at once, on SQLite and PostgreSQL.

    python benchmarks/registry_load.py                      # N = 1 2 4 8, both backends
    python benchmarks/registry_load.py --processes 1 8 --pushes 100 --searches 200
    python benchmarks/registry_load.py --postgres postgresql+psycopg://USER:PW@HOST/DB   # an existing server (superuser: makes databases)
    python benchmarks/registry_load.py --via http --processes 1 8     # through `adapters serve` (SQLite, PostgreSQL behind it)
    python benchmarks/registry_load.py --via direct http              # both, one table

Each process opens the registry, pushes `--pushes` synthetic LoRA modules
(real safetensors blobs, rows, index updates; tests/synthetic.py) and then runs
`--searches` searches (alternating dataset-embedding and parameter-embedding
queries) while the other processes may still be pushing. Reported per backend
and N: pushes/s and searches/s summed over the processes (each process's count
over its own phase time), and p50/p99 latency of one push and one search.
Without --postgres a throwaway server is started from Debian's binaries
(tests/pg.py); the PostgreSQL rows are skipped, saying why, when none can start.

`--via http` puts the lab registry server (`adapters serve --workers W` over the
same SQLite or PostgreSQL registry) between the processes and the registry: each
process is a client (store.remote, a write token) pushing and searching over HTTP.
After every run the registry is opened directly (not through the server) and each
pushed module is counted by blob digest: `lost` (pushed, acknowledged, absent),
`dup` (more than one row) and missing blob files must all be 0.
The server's faults (killed client, killed server, bad tokens, oversized and
corrupt uploads) are measured by benchmarks/server_faults.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def worker(args: dict) -> None:
    import numpy as np
    import synthetic

    from store.registry import Registry

    if args.get("token"):
        from store.remote import RemoteRegistry

        registry = RemoteRegistry(args["url"], args["token"])
    else:
        registry = Registry.open(args["url"], args.get("blobs"))
    push_latencies, search_latencies, digests = [], [], []
    start = time.perf_counter()
    for i in range(args["pushes"]):
        seed = args["worker"] * 1_000_000 + i
        t0 = time.perf_counter()
        record, _created = synthetic.push(registry, seed)
        push_latencies.append(time.perf_counter() - t0)
        digests.append(record.blob_digest)
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
    stats = getattr(registry.indexes, "stats", None)  # a client of the server has no index of its own
    print(
        json.dumps({"push": push_latencies, "search": search_latencies, "push_time": push_time, "search_time": search_time, "stats": stats, "digests": digests})
    )


# --- the lab registry server (`adapters serve`), shared with benchmarks/server_faults.py


def adapters_command() -> list[str]:
    """The `adapters` CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "adapters"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from cli.main import app; app()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LabServer:
    """`adapters serve` in its own process group (so SIGKILL reaches every worker), on a free local port."""

    def __init__(self, registry: str, blobs: str | None, log: Path, workers: int = 1, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.registry, self.blobs, self.log, self.workers, self.extra = registry, blobs, log, workers, extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90.0) -> LabServer:
        import httpx

        argv = [*adapters_command(), "serve", "--registry", self.registry, "--port", str(self.port), "--workers", str(self.workers), *self.extra]
        if self.blobs:
            argv += ["--blobs", self.blobs]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"adapters serve exited ({self.proc.returncode}):\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/info", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise SystemExit(f"adapters serve did not answer within {timeout_s:.0f} s:\n{self.log.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (uvicorn's supervisor and its workers) and reap the leader."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if sig == signal.SIGKILL:
            time.sleep(0.2)  # the workers of the group die with it; let the kernel reap them
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def make_token(url: str, blobs: str | None, name: str, scope: str) -> str:
    """A token's secret, made on the registry directly (as `adapters token create` does)."""
    from store.registry import Registry

    registry = Registry.open(url, blobs)
    try:
        return registry.tokens.create(name, scope)[1]
    finally:
        registry.close()


def count_pushed(url: str, blobs: str | None, expected: list[str]) -> dict:
    """Open the registry directly and count each expected module by blob digest: lost, duplicated, unexpected, blob files missing."""
    from store.registry import Registry

    registry = Registry.open(url, blobs)
    try:
        records = registry.catalog.list_modules()
        rows = Counter(record.blob_digest for record in records)
        missing_blobs = sum(1 for digest in rows if not registry.blobs.exists(digest))
    finally:
        registry.close()
    wanted = Counter(expected)
    return {
        "rows": len(records),
        "lost": sum(1 for digest in wanted if rows[digest] == 0),
        "duplicated": sum(rows[digest] - 1 for digest in wanted if rows[digest] > 1),
        "unexpected": sum(count for digest, count in rows.items() if digest not in wanted),
        "missing_blobs": missing_blobs,
        "pushed_twice": sum(count - 1 for count in wanted.values() if count > 1),  # a client bug, not the server's
    }


def run(
    url: str, blobs: str | None, processes: int, pushes: int, searches: int, via: str = "direct", work: Path | None = None, server_workers: int = 2
) -> dict:
    from store.registry import Registry

    Registry.open(url, blobs).close()  # schema once, as `adapters db upgrade` would
    server, token, target = None, None, url
    if via == "http":
        token = make_token(url, blobs, "load", "write")
        assert work is not None
        server = LabServer(url, blobs, work / f"serve-{free_port()}.log", workers=server_workers).start()
        target = server.url
    try:
        return _run_workers(target, url, blobs, token, processes, pushes, searches)
    finally:
        if server is not None:
            server.stop()


def _run_workers(target: str, url: str, blobs: str | None, token: str | None, processes: int, pushes: int, searches: int) -> dict:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                json.dumps({"url": target, "blobs": blobs, "token": token, "worker": w, "pushes": pushes, "searches": searches}),
            ],
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
    # Checked on the registry itself, not through the server: every acknowledged push is there exactly once.
    check = count_pushed(url, blobs, [digest for r in results for digest in r["digests"]])
    assert check["rows"] == processes * pushes, f"{check['rows']} modules, expected {processes * pushes}: {check}"
    return {
        **check,
        "pushes_per_s": sum(len(r["push"]) / r["push_time"] for r in results),
        "searches_per_s": sum(len(r["search"]) / r["search_time"] for r in results),
        "push_p50": float(np.percentile(pushes_all, 50)),
        "push_p99": float(np.percentile(pushes_all, 99)),
        "search_p50": float(np.percentile(searches_all, 50)),
        "search_p99": float(np.percentile(searches_all, 99)),
        "rebuilds": sum(r["stats"]["rebuilt"] for r in results) if all(r["stats"] for r in results) else None,
    }


def start_postgres(url: str | None):
    """A throwaway PostgreSQL server (tests/pg.py; `url` an existing one), or None after a line saying why it was skipped."""
    import pg

    try:
        if url:
            os.environ[pg.ENV_URL] = url
        return pg.start_server()
    except RuntimeError as error:
        print(f"postgresql: skipped ({error})")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--pushes", type=int, default=50, help="pushes per process")
    parser.add_argument("--searches", type=int, default=200, help="searches per process")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--postgres", help="superuser URL of an existing server (default: start a throwaway one)")
    parser.add_argument(
        "--via", nargs="+", choices=["direct", "http"], default=["direct"], help="processes open the registry (direct) or go through `adapters serve` (http)"
    )
    parser.add_argument("--server-workers", type=int, default=2, help="`adapters serve --workers` for --via http")
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
                server = start_postgres(args.postgres)
                if server is None:
                    continue
            for via in args.via:
                for n in args.processes:
                    if backend == "sqlite":
                        url, blobs = str(work / f"sqlite-{via}-{n}"), None
                    else:
                        url = server.create_database()
                        blobs = str(work / f"pg-blobs-{via}-{n}")
                        Path(blobs).mkdir()
                    result = run(url, blobs, n, args.pushes, args.searches, via, work, args.server_workers)
                    rows.append((backend, via, n, result))
                    print(
                        f"{backend:10s} {via:6s} N={n}: {result['pushes_per_s']:7.1f} pushes/s (p99 {result['push_p99']:6.1f} ms), "
                        f"{result['searches_per_s']:8.1f} searches/s (p99 {result['search_p99']:6.1f} ms), "
                        f"{result['lost']} lost, {result['duplicated']} duplicated",
                        flush=True,
                    )
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    print()
    server_note = f"; http: `adapters serve --workers {args.server_workers}` on the same machine" if "http" in args.via else ""
    print(f"{args.pushes} pushes then {args.searches} searches per process; {os.cpu_count()} CPUs{server_note}")
    print("| backend | via | N | pushes/s | push p50 ms | push p99 ms | searches/s | search p50 ms | search p99 ms | index rebuilds | lost | dup |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend, via, n, r in rows:
        rebuilds = "-" if r["rebuilds"] is None else r["rebuilds"]
        print(
            f"| {backend} | {via} | {n} | {r['pushes_per_s']:.1f} | {r['push_p50']:.1f} | {r['push_p99']:.1f} | "
            f"{r['searches_per_s']:.0f} | {r['search_p50']:.2f} | {r['search_p99']:.2f} | {rebuilds} | {r['lost']} | {r['duplicated']} |"
        )


if __name__ == "__main__":
    main()

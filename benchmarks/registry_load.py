"""Load on a shared registry: N processes push and search at once, on SQLite and PostgreSQL.

    python benchmarks/registry_load.py                      # N = 1 2 4 8, both backends
    python benchmarks/registry_load.py --processes 1 8 --pushes 100 --searches 200
    python benchmarks/registry_load.py --postgres postgresql+psycopg://USER:PW@HOST/DB   # an existing server (superuser: makes databases)
    python benchmarks/registry_load.py --via http --processes 1 8     # through `adapters serve` (SQLite, PostgreSQL behind it)
    python benchmarks/registry_load.py --via direct http              # both, one table
    python benchmarks/registry_load.py --backends postgresql --via http --blobs-at local s3 --servers 1 2 --kill-one

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

`--blobs-at s3` keeps the blobs in a bucket of an S3-protocol server (moto's standalone
server, started as tests/s3.py starts it, on a loopback port) instead of a directory.
`--servers 2` runs two `adapters serve` processes on the one registry (and bucket), each
client talking to one of them (client i to server i mod 2). `--kill-one` SIGKILLs the first
server once a third of the pushes are in: its clients retry the push that failed on the
other server (a retried push must make no duplicate), and the counts must still be 0 lost.
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

    from store.errors import StoreError
    from store.registry import Registry

    urls = args["urls"]
    server = args["worker"] % len(urls)  # a client talks to one server; when it dies, to the next

    def connect():
        if args.get("token"):
            from store.remote import RemoteRegistry

            return RemoteRegistry(urls[server], args["token"])
        return Registry.open(urls[server], args.get("blobs"))

    registry = connect()
    push_latencies, search_latencies, digests, failovers = [], [], [], 0
    start = time.perf_counter()
    for i in range(args["pushes"]):
        seed = args["worker"] * 1_000_000 + i
        t0 = time.perf_counter()
        while True:
            try:
                record, _created = synthetic.push(registry, seed)
                break
            except StoreError:
                if len(urls) == 1 or failovers >= 3:
                    raise
                # The server died under the push: the same push again, through the other server.
                failovers += 1
                registry.close()
                server = (server + 1) % len(urls)
                registry = connect()
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
        json.dumps(
            {
                "push": push_latencies,
                "search": search_latencies,
                "push_time": push_time,
                "search_time": search_time,
                "stats": stats,
                "digests": digests,
                "failovers": failovers,
            }
        )
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
    url: str,
    blobs: str | None,
    processes: int,
    pushes: int,
    searches: int,
    via: str = "direct",
    work: Path | None = None,
    server_workers: int = 2,
    servers: int = 1,
    kill_one: bool = False,
) -> dict:
    from store.registry import Registry

    Registry.open(url, blobs).close()  # schema once, as `adapters db upgrade` would
    lab: list[LabServer] = []
    token, targets = None, [url]
    try:
        if via == "http":
            token = make_token(url, blobs, "load", "write")
            assert work is not None
            lab = [LabServer(url, blobs, work / f"serve-{free_port()}.log", workers=server_workers).start() for _ in range(servers)]
            targets = [server.url for server in lab]
        return _run_workers(targets, url, blobs, token, processes, pushes, searches, lab[0] if kill_one and len(lab) > 1 else None)
    finally:
        for server in lab:
            server.stop()


def _kill_when(server: LabServer, url: str, blobs: str | None, rows: int) -> None:
    """SIGKILL `server` once the registry holds `rows` modules (a push through it is then most likely in flight)."""
    from store.registry import Registry

    registry = Registry.open(url, blobs)
    try:
        while server.proc is not None and len(registry.catalog.blob_digests()) < rows:
            time.sleep(0.05)
    finally:
        registry.close()
    server.kill()


def _run_workers(
    targets: list[str], url: str, blobs: str | None, token: str | None, processes: int, pushes: int, searches: int, victim: LabServer | None = None
) -> dict:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                json.dumps({"urls": targets, "blobs": blobs, "token": token, "worker": w, "pushes": pushes, "searches": searches}),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for w in range(processes)
    ]
    killer = None
    if victim is not None:
        import threading

        killer = threading.Thread(target=_kill_when, args=(victim, url, blobs, max(1, processes * pushes // 3)), daemon=True)
        killer.start()
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
        "failovers": sum(r["failovers"] for r in results),
        "killed": victim is not None and killer is not None and not killer.is_alive() and victim.proc is None,
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
    parser.add_argument("--blobs-at", nargs="+", choices=["local", "s3"], default=["local"], help="blobs in a directory, or in a bucket (moto's S3 server)")
    parser.add_argument("--servers", type=int, nargs="+", default=[1], help="`adapters serve` processes on the one registry (--via http)")
    parser.add_argument("--kill-one", action="store_true", help="with 2+ servers: SIGKILL the first a third of the way through the pushes")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    server = None
    bucket_server = None
    rows = []
    work = Path(tempfile.mkdtemp(prefix="deltahub-load-"))
    try:
        if "s3" in args.blobs_at:
            import s3

            bucket_server = s3.start_server()
            os.environ.update(bucket_server.env())  # the servers and clients started from here read them as the AWS SDK does
        for backend in args.backends:
            if backend == "postgresql":
                server = start_postgres(args.postgres)
                if server is None:
                    continue
            layouts = [(via, at, servers) for via in args.via for at in args.blobs_at for servers in (args.servers if via == "http" else [1])]
            for via, at, servers in layouts:
                for n in args.processes:
                    name = f"{backend}-{via}-{at}-{servers}-{n}"
                    url = str(work / name) if backend == "sqlite" else server.create_database()
                    if at == "s3":
                        blobs = f"s3://{bucket_server.create_bucket()}/load"
                    elif backend == "sqlite":
                        blobs = None
                    else:
                        blobs = str(work / f"blobs-{name}")
                        Path(blobs).mkdir()
                    kill = args.kill_one and servers > 1
                    result = run(url, blobs, n, args.pushes, args.searches, via, work, args.server_workers, servers, kill)
                    rows.append((backend, via, at, servers, n, result))
                    print(
                        f"{backend:10s} {via:6s} {at:5s} servers={servers} N={n}: {result['pushes_per_s']:7.1f} pushes/s (p99 {result['push_p99']:6.1f} ms), "
                        f"{result['searches_per_s']:8.1f} searches/s (p99 {result['search_p99']:6.1f} ms), "
                        f"{result['lost']} lost, {result['duplicated']} duplicated"
                        + (f", one server killed, {result['failovers']} pushes retried" if kill else ""),
                        flush=True,
                    )
    finally:
        if server is not None:
            server.stop()
        if bucket_server is not None:
            bucket_server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    print()
    server_note = f"; http: `adapters serve --workers {args.server_workers}` on the same machine" if "http" in args.via else ""
    print(f"{args.pushes} pushes then {args.searches} searches per process; {os.cpu_count()} CPUs{server_note}")
    print(
        "| backend | via | blobs | servers | N | pushes/s | push p50 ms | push p99 ms | searches/s | search p50 ms | search p99 ms | index rebuilds | lost | dup | killed, retried |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend, via, at, servers, n, r in rows:
        rebuilds = "-" if r["rebuilds"] is None else r["rebuilds"]
        killed = f"yes, {r['failovers']}" if r["killed"] else "-"
        print(
            f"| {backend} | {via} | {at} | {servers} | {n} | {r['pushes_per_s']:.1f} | {r['push_p50']:.1f} | {r['push_p99']:.1f} | "
            f"{r['searches_per_s']:.0f} | {r['search_p50']:.2f} | {r['search_p99']:.2f} | {rebuilds} | {r['lost']} | {r['duplicated']} | {killed} |"
        )


if __name__ == "__main__":
    main()

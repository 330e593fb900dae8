"""Faults of the lab registry server (`adapters serve`), each with a PASS/FAIL line and its figures.

    python benchmarks/server_faults.py                         # SQLite behind the server
    python benchmarks/server_faults.py --backends sqlite postgresql
    python benchmarks/server_faults.py --faults bad-tokens --bad-requests 200

1. client-killed: a client sends a large PUT body slowly over a raw socket and is SIGKILLed
   halfway. The server keeps answering (latency of /info during and after), no module row,
   no blob file at the digest; a temp file left behind is removed by `adapters gc --grace 0`;
   `adapters verify` exits 0.
2. server-killed: client processes push in a loop; the server's process group is SIGKILLed
   mid-push and restarted. `adapters verify` exits 0, every row has its blob, every
   acknowledged push is there, nothing half-visible (each row readable and found by its own
   parameter search), and pushing the interrupted modules again makes no duplicate.
3. bad-tokens: N requests with wrong, revoked, malformed tokens and a too-small scope against a
   server that is not public-read: all refused (401/403); the slowest bad-token latency against
   the median good-token latency of the same endpoint (goal: under 10x).
4. upload-limits: an upload over `--max-upload 1M` refused with 413 before its body is sent
   (timed), the same without Content-Length (chunked) refused once past the limit, and an
   upload whose bytes do not match its digest refused (422) with nothing written.

The registry is always inspected directly (opened as a directory or database URL), never
through the server. A benchmark: it prints figures, it is not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry_load import ROOT, LabServer, adapters_command, make_token, start_postgres  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))

RESULTS: list[tuple[str, str, bool, str]] = []


def report(backend: str, fault: str, ok: bool, figures: str) -> None:
    RESULTS.append((backend, fault, ok, figures))
    print(f"{'PASS' if ok else 'FAIL'} {backend} {fault}: {figures}", flush=True)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*adapters_command(), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def gc_now(url: str, blobs: str | None) -> tuple[int, str]:
    """`adapters gc --grace 0`: (exit code, what it removed)."""
    done = cli("gc", "--grace", "0", "--json", *registry_args(url, blobs))
    try:
        data = json.loads(done.stdout)
        return done.returncode, f"removed {len(data['removed'])} blobs and {data['temp_files']} temp files"
    except (ValueError, KeyError):
        return done.returncode, (done.stdout + done.stderr).strip()[-200:]


def registry_args(url: str, blobs: str | None) -> list[str]:
    return ["--registry", url, *(["--blobs", blobs] if blobs else [])]


def blob_root(url: str, blobs: str | None) -> Path:
    from store.registry import Registry

    registry = Registry.open(url, blobs)
    try:
        return Path(registry.blobs.root)
    finally:
        registry.close()


def temp_files(root: Path) -> list[Path]:
    return list((root / "sha256").glob("*/.tmp-*"))


def module_count(url: str, blobs: str | None) -> int:
    from store.registry import Registry

    registry = Registry.open(url, blobs)
    try:
        return len(registry.catalog.list_modules())
    finally:
        registry.close()


def timed_get(url: str, path: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, float]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    t0 = time.perf_counter()
    try:
        status = httpx.get(url + path, headers=headers, timeout=timeout).status_code
    except httpx.HTTPError:
        status = 0
    return status, (time.perf_counter() - t0) * 1000


def raw_request(port: int, head: str, body_chunks=(), read_timeout: float = 10.0) -> tuple[str, float]:
    """Send a request head (and optional body chunks) over a raw socket; (status line, ms until it came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        t0 = time.perf_counter()
        sock.sendall(head.encode("latin-1"))
        for chunk in body_chunks:
            sock.sendall(chunk)
        data = b""
        try:
            while b"\r\n" not in data:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except TimeoutError:
            return "timeout", (time.perf_counter() - t0) * 1000
        return data.split(b"\r\n", 1)[0].decode("latin-1"), (time.perf_counter() - t0) * 1000


def chunked_upload(port: int, digest: str, token: str, mib: int) -> tuple[str, float, int]:
    """PUT up to `mib` MiB chunked (no Content-Length), 1 MiB a chunk, looking for an answer after each; (status line, ms, MiB sent)."""
    import select

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        t0 = time.perf_counter()
        sock.sendall(f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"100000\r\n" + b"\0" * (1 << 20) + b"\r\n"
        sent = 0
        try:
            while sent < mib and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += 1
            if sent == mib:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection on us: its answer is in the socket
        data = b""
        try:
            while b"\r\n" not in data:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except OSError as error:
            return type(error).__name__, (time.perf_counter() - t0) * 1000, sent
        return data.split(b"\r\n", 1)[0].decode("latin-1"), (time.perf_counter() - t0) * 1000, sent


# --- 1. a client killed mid-upload

SLOW_CLIENT = r"""
import socket, sys, time
port, digest, token, total, half = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sock = socket.create_connection(("127.0.0.1", int(port)))
sock.sendall((f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n").encode())
chunk = b"\x5a" * 65536
sent = 0
while sent < half:
    sock.sendall(chunk)
    sent += len(chunk)
    time.sleep(0.004)
print("half", sent, flush=True)
time.sleep(3600)
"""


def _slow_upload(server: LabServer, token: str, total: int, digest: str, read: str) -> tuple[subprocess.Popen, list[tuple[int, float]]]:
    """Start a client sending `total` bytes slowly; return it once half is sent, with the server's answers to reads meanwhile."""
    import selectors

    client = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLIENT, str(server.port), digest, token, str(total), str(total // 2)], stdout=subprocess.PIPE, text=True
    )
    selector = selectors.DefaultSelector()
    selector.register(client.stdout, selectors.EVENT_READ)
    during = []
    deadline = time.monotonic() + 120
    while client.poll() is None and time.monotonic() < deadline:
        if selector.select(timeout=0.1) and client.stdout.readline().startswith("half"):
            break
        during.append(timed_get(server.url, "/api/v1/modules", read))
    return client, during


def fault_client_killed(backend: str, url: str, blobs: str | None, work: Path, size_mb: int) -> None:
    token = make_token(url, blobs, "faults-client", "write")
    read = make_token(url, blobs, "faults-client-read", "read")
    server = LabServer(url, blobs, work / "serve-client-killed.log").start()
    root = blob_root(url, blobs)
    total = size_mb << 20
    # The digest of the whole body the client means to send (one byte repeated), which never arrives whole.
    digest = hashlib.sha256(b"\x5a" * total).hexdigest()
    blob_file = root / "sha256" / digest[:2] / f"{digest}.safetensors"
    try:
        before_rows = module_count(url, blobs)
        client, during = _slow_upload(server, token, total, digest, read)
        temps_mid = len(temp_files(root))
        client.kill()
        client.wait()
        # Give the server a moment to see the disconnect, then look again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and temp_files(root):
            time.sleep(0.1)
        after = [timed_get(server.url, "/api/v1/modules", read) for _ in range(5)]
        temps_after = len(temp_files(root))
        rows = module_count(url, blobs)
        blob_there = blob_file.exists()
        # The same with the server SIGKILLed mid-upload instead: it cannot clean up, so its temp file stays for gc.
        client, _ = _slow_upload(server, token, total, digest, read)
        server.kill(signal.SIGKILL)
        client.kill()
        client.wait()
        temps_server_killed = len(temp_files(root))
        gc_code, gc_said = gc_now(url, blobs)
        temps_gc = len(temp_files(root))
        server.start()
        alive = timed_get(server.url, "/api/v1/modules", read)[0]
        rows_end = module_count(url, blobs)
    finally:
        server.stop()
    verify = cli("verify", *registry_args(url, blobs))
    answering = all(status == 200 for status, _ in during + after)
    ok = (
        answering and rows == before_rows == rows_end and not blob_there and not blob_file.exists() and temps_after == 0
        and temps_gc == 0 and gc_code == 0 and alive == 200 and verify.returncode == 0
    )  # fmt: skip
    worst_during = max(ms for _, ms in during) if during else float("nan")
    report(
        backend,
        "client killed mid-upload",
        ok,
        f"{size_mb // 2} of {size_mb} MiB sent then client SIGKILLed; server answered {sum(s == 200 for s, _ in during + after)}/{len(during) + len(after)} reads "
        f"(slowest during the upload {worst_during:.0f} ms, after {max(ms for _, ms in after):.0f} ms); rows {before_rows}->{rows}; "
        f"blob at digest: {'yes' if blob_there else 'no'}; temp files mid-upload {temps_mid}, after the kill {temps_after}. "
        f"Same upload with the server SIGKILLed instead: temp files {temps_server_killed}, `gc --grace 0` (exit {gc_code}) {gc_said}, "
        f"then {temps_gc}; restarted server answers {alive}; rows {rows_end}; verify exit {verify.returncode}",
    )


# --- 2. the server killed mid-push

LOOP_CLIENT = r"""
import json, sys
sys.path.insert(0, sys.argv[3])
import synthetic
from store.remote import RemoteRegistry
registry = RemoteRegistry(sys.argv[1], sys.argv[2])
seed = int(sys.argv[4])
while True:
    print("try", seed, synthetic.module(seed)[1].blob_digest, flush=True)
    try:
        record, created = synthetic.push(registry, seed)
    except Exception as error:
        print("error", seed, type(error).__name__, flush=True)
        break
    print("ack", seed, record.blob_digest, flush=True)
    seed += 1
"""


def fault_server_killed(backend: str, url: str, blobs: str | None, work: Path, clients: int, kill_after: int) -> None:
    import synthetic

    from store.registry import Registry
    from store.remote import RemoteRegistry

    token = make_token(url, blobs, "faults-push", "write")
    server = LabServer(url, blobs, work / "serve-server-killed.log", workers=2).start()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP_CLIENT, server.url, token, str(ROOT / "tests"), str(7_000_000 + c * 100_000)], stdout=subprocess.PIPE, text=True
        )
        for c in range(clients)
    ]
    acked: list[str] = []
    tried: dict[str, int] = {}
    import threading

    def read_lines(proc: subprocess.Popen) -> None:
        # One reader thread a client, so no line is lost between a selector and a buffered pipe.
        for line in proc.stdout:
            parts = line.split()
            if parts and parts[0] == "ack":
                acked.append(parts[2])
            elif parts and parts[0] == "try":
                tried[parts[2]] = int(parts[1])

    readers = [threading.Thread(target=read_lines, args=(proc,), daemon=True) for proc in procs]
    for reader in readers:
        reader.start()
    # Let `kill_after` pushes be acknowledged, then kill the server mid-push.
    deadline = time.monotonic() + 120
    while len(acked) < kill_after and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill(signal.SIGKILL)
    for proc, reader in zip(procs, readers):
        proc.wait(timeout=120)
        reader.join(timeout=30)
    root = blob_root(url, blobs)
    temps = len(temp_files(root))
    verify_killed = cli("verify", *registry_args(url, blobs))  # before the restart: the registry as the kill left it
    t_restart = time.perf_counter()
    server.start()
    restart_ms = (time.perf_counter() - t_restart) * 1000
    # Nothing half-visible: every row readable whole, its blob there and hashing right, found by its own search.
    registry = Registry.open(url, blobs)
    records = registry.catalog.list_modules()
    digests = [record.blob_digest for record in records]
    no_blob = sum(1 for digest in digests if not registry.blobs.exists(digest))
    half = 0
    for record in records:
        seed = tried.get(record.blob_digest)
        if seed is None:
            half += 1
            continue
        _data, new, _task, _dataset = synthetic.module(seed)
        hits = registry.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)
        if not hits or hits[0][0] != record.id or registry.catalog.get_module(record.id).blob_digest != record.blob_digest:
            half += 1
            print(f"  half-visible? module {record.id} (seed {seed}): its own parameter search gave {hits}", flush=True)
    registry.close()
    lost = sum(1 for digest in set(acked) if digest not in set(digests))
    unacked_in = len(set(digests) - set(acked))  # pushes the kill interrupted after their commit: there whole, just not acknowledged
    # The clients retry what the kill interrupted (unacknowledged): no duplicates.
    retry = [digest for digest in tried if digest not in set(acked)]
    remote = RemoteRegistry(server.url, token)
    created_again = sum(1 for digest in retry if synthetic.push(remote, tried[digest])[1])
    remote.close()
    server.stop()
    gc_code, gc_said = gc_now(url, blobs)
    temps_gc = len(temp_files(root))
    verify = cli("verify", *registry_args(url, blobs))
    from collections import Counter

    registry = Registry.open(url, blobs)
    rows = Counter(record.blob_digest for record in registry.catalog.list_modules())
    registry.close()
    dup = sum(count - 1 for count in rows.values() if count > 1)
    ok = (
        verify_killed.returncode == 0
        and verify.returncode == 0
        and no_blob == 0
        and half == 0
        and lost == 0
        and dup == 0
        and len(rows) == len(tried)
        and gc_code == 0
        and temps_gc == 0
    )
    report(
        backend,
        "server SIGKILLed mid-push",
        ok,
        f"{clients} clients, kill after {len(acked)} acked pushes ({len(tried)} tried); rows {len(digests)} "
        f"(acked lost {lost}, committed-not-acked {unacked_in}), rows without blob {no_blob}, half-visible {half}, temp files {temps}; "
        f"verify after kill exit {verify_killed.returncode}; restart to first answer {restart_ms:.0f} ms; "
        f"retried {len(retry)} interrupted pushes ({created_again} new), then {sum(rows.values())} rows, {dup} duplicated; `gc --grace 0` (exit {gc_code}) {gc_said}, temp files then {temps_gc}; verify exit {verify.returncode}",
    )


# --- 3. bad tokens


def fault_bad_tokens(backend: str, url: str, blobs: str | None, work: Path, n_bad: int) -> None:
    import httpx
    import numpy as np

    from store.registry import Registry

    good = make_token(url, blobs, "faults-good", "read")
    revoked = make_token(url, blobs, "faults-revoked", "write")
    registry = Registry.open(url, blobs)
    registry.tokens.revoke("faults-revoked")
    registry.close()
    server = LabServer(url, blobs, work / "serve-bad-tokens.log").start()
    path = "/api/v1/modules?ids=1"
    rng = np.random.default_rng(0)
    kinds = {
        "wrong": lambda: {"Authorization": "Bearer dhub_" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_"), 43))},
        "revoked": lambda: {"Authorization": f"Bearer {revoked}"},
        "good-but-mangled": lambda: {"Authorization": f"Bearer {good[:-1]}{'A' if good[-1] != 'A' else 'B'}"},
        "no-bearer": lambda: {"Authorization": good},
        "basic": lambda: {"Authorization": "Basic dXNlcjpwYXNz"},
        "bare-bearer": lambda: {"Authorization": "Bearer"},
        "none": lambda: {},
        "long": lambda: {"Authorization": "Bearer " + "x" * 4096},
        "non-ascii": lambda: {"Authorization": "Bearer dhub_\xe9\xff\xfe".encode("latin-1")},
        "cookie-wrong": lambda: {"Cookie": "deltahub_token=dhub_nope"},
    }
    names = list(kinds)
    bad: list[tuple[str, int, float]] = []
    good_ms: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(20):  # warm up the connection and the server's caches
                http.get(path, headers={"Authorization": f"Bearer {good}"})
            for i in range(n_bad):
                # Interleave: one bad, one good, so both see the same load.
                kind = names[i % len(names)]
                t0 = time.perf_counter()
                status = http.get(path, headers=kinds[kind]()).status_code
                bad.append((kind, status, (time.perf_counter() - t0) * 1000))
                t0 = time.perf_counter()
                status_good = http.get(path, headers={"Authorization": f"Bearer {good}"}).status_code
                good_ms.append((time.perf_counter() - t0) * 1000)
                if status_good != 200:
                    good_ms[-1] = float("nan")
            # The read token on a write endpoint: refused with 403 (scope), same timing rule.
            forbidden = []
            for _ in range(20):
                t0 = time.perf_counter()
                forbidden.append(
                    (http.post("/api/v1/modules", json={}, headers={"Authorization": f"Bearer {good}"}).status_code, (time.perf_counter() - t0) * 1000)
                )
    finally:
        server.stop()
    refused = sum(1 for _, status, _ in bad if status in (401, 403))
    statuses = sorted({status for _, status, _ in bad})
    slowest_kind, _, slowest = max(bad, key=lambda item: item[2])
    median_good = float(np.nanmedian(good_ms))
    bad_ms = np.array([ms for _, _, ms in bad])
    ratio = slowest / median_good
    scope_ok = all(status == 403 for status, _ in forbidden)
    ok = refused == len(bad) and scope_ok and ratio <= 10 and not any(np.isnan(good_ms))
    report(
        backend,
        "bad tokens",
        ok,
        f"{refused}/{len(bad)} refused (statuses {statuses}; {len(kinds)} kinds); read token on POST /modules: {sum(s == 403 for s, _ in forbidden)}/{len(forbidden)} 403; "
        f"GET {path}: bad p50 {np.median(bad_ms):.2f} ms, p99 {np.percentile(bad_ms, 99):.2f} ms, slowest {slowest:.2f} ms ({slowest_kind}); "
        f"good p50 {median_good:.2f} ms, p99 {np.nanpercentile(good_ms, 99):.2f} ms; slowest bad / median good = {ratio:.1f}x (goal <= 10x)",
    )


# --- 4. upload limits and corrupt uploads


def fault_upload_limits(backend: str, url: str, blobs: str | None, work: Path) -> None:
    import httpx

    token = make_token(url, blobs, "faults-upload", "write")
    read = make_token(url, blobs, "faults-upload-read", "read")
    server = LabServer(url, blobs, work / "serve-upload-limits.log", extra=("--max-upload", "1M")).start()
    root = blob_root(url, blobs)
    try:
        big = 256 << 20
        digest = hashlib.sha256(b"big-upload").hexdigest()
        head = (
            f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {big}\r\n\r\n"
        )
        # Only the head is sent: an answer means the server refused without waiting for the 256 MiB.
        status_declared, ms_declared = raw_request(server.port, head, read_timeout=10)
        # No Content-Length (chunked): the server must answer once past the limit, not after the whole body.
        status_chunked, ms_chunked, sent_mib = chunked_upload(server.port, digest, token, 64)
        # Bytes that do not hash to the declared digest.
        data = os.urandom(512 << 10)
        claimed = hashlib.sha256(b"other bytes").hexdigest()
        t0 = time.perf_counter()
        status_corrupt = httpx.put(
            f"{server.url}/api/v1/blobs/{claimed}", content=data, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
        ).status_code
        ms_corrupt = (time.perf_counter() - t0) * 1000
        actual = hashlib.sha256(data).hexdigest()
        # A good upload under the limit still works afterwards.
        status_ok = httpx.put(f"{server.url}/api/v1/blobs/{actual}", content=data, headers={"Authorization": f"Bearer {token}"}).status_code
        alive = timed_get(server.url, "/api/v1/modules", read)[0]
    finally:
        server.stop()
    written = [p.name for p in (root / "sha256").glob("*/*") if p.name.startswith((digest, claimed))]
    actual_written = (root / "sha256" / actual[:2] / f"{actual}.safetensors").exists()
    temps = len(temp_files(root))
    verify = cli("verify", *registry_args(url, blobs))
    ok_limit = status_declared.split(" ")[1:2] == ["413"] and ms_declared < 1000 and status_chunked.split(" ")[1:2] == ["413"] and sent_mib < 64 and not written
    report(
        backend,
        "upload over --max-upload 1M",
        ok_limit,
        f"declared 256 MiB, head only: {status_declared!r} in {ms_declared:.1f} ms (body never sent); "
        f"chunked, no length: {status_chunked!r} in {ms_chunked:.0f} ms, after {sent_mib} of 64 MiB were sent; files at digest {len(written)}",
    )
    ok_corrupt = status_corrupt == 422 and not written and temps == 0 and status_ok == 201 and actual_written and alive == 200 and verify.returncode == 0
    report(
        backend,
        "upload not matching its sha256",
        ok_corrupt,
        f"512 KiB under a wrong digest: {status_corrupt} in {ms_corrupt:.0f} ms; files at the claimed digest {len(written)}, temp files {temps}; "
        f"the same bytes under their own digest: {status_ok}; server answers {alive}; verify exit {verify.returncode}",
    )


FAULTS = ["client-killed", "server-killed", "bad-tokens", "upload-limits"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"])
    parser.add_argument("--faults", nargs="+", default=FAULTS, choices=FAULTS)
    parser.add_argument("--postgres", help="superuser URL of an existing PostgreSQL server (default: start a throwaway one)")
    parser.add_argument("--upload-mb", type=int, default=64, help="size of the upload the killed client half sends")
    parser.add_argument("--clients", type=int, default=4, help="pushing clients when the server is killed")
    parser.add_argument("--kill-after", type=int, default=20, help="acknowledged pushes before the server is killed")
    parser.add_argument("--bad-requests", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="deltahub-faults-"))
    pg_server = None
    try:
        for backend in args.backends:
            if backend == "postgresql":
                pg_server = start_postgres(args.postgres)
                if pg_server is None:
                    continue
            for fault in args.faults:
                if backend == "sqlite":
                    url, blobs = str(work / f"sqlite-{fault}"), None
                else:
                    url, blobs = pg_server.create_database(), str(work / f"pg-blobs-{fault}")
                    Path(blobs).mkdir()
                upgrade = cli("db", "upgrade", *registry_args(url, blobs))
                if upgrade.returncode != 0:
                    raise SystemExit(f"adapters db upgrade failed: {upgrade.stdout}{upgrade.stderr}")
                if fault == "client-killed":
                    fault_client_killed(backend, url, blobs, work, args.upload_mb)
                elif fault == "server-killed":
                    fault_server_killed(backend, url, blobs, work, args.clients, args.kill_after)
                elif fault == "bad-tokens":
                    fault_bad_tokens(backend, url, blobs, work, args.bad_requests)
                else:
                    fault_upload_limits(backend, url, blobs, work)
    finally:
        if pg_server is not None:
            pg_server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{os.cpu_count()} CPUs; `adapters serve` on the same machine")
    print("| backend | fault | result | figures |")
    print("| --- | --- | --- | --- |")
    for backend, fault, ok, figures in RESULTS:
        print(f"| {backend} | {fault} | {'PASS' if ok else 'FAIL'} | {figures} |")
    if not all(ok for *_, ok, _ in RESULTS):
        print(json.dumps({"failed": [f"{b} {f}" for b, f, ok, _ in RESULTS if not ok]}))


if __name__ == "__main__":
    main()

"""Many writers at once: 8 processes push 50 modules each into one registry (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synthetic
from conftest import make_registry_spec

from store.maintenance import verify

WORKERS = 8
PER_WORKER = 50
SHARED = [900_000 + i for i in range(5)]  # pushed by every worker: exactly one row each must result
WORKER = Path(__file__).with_name("registry_worker.py")


def start_workers(spec, seeds_of, extras_of=lambda w: [], shared=(), start_at: float = 0.0) -> list[dict]:
    procs = []
    for worker in range(WORKERS):
        payload = {"url": spec.url, "blobs": str(spec.blobs) if spec.blobs else None, "worker": worker,
                   "seeds": seeds_of(worker), "shared": list(shared), "extras": extras_of(worker), "start_at": start_at}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, str(WORKER), "push", json.dumps(payload)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_eight_processes_create_a_brand_new_sqlite_registry_at_once(tmp_path: Path) -> None:
    """No process is told "database is locked": they take turns making the schema, and all then push."""
    spec = make_registry_spec("sqlite", tmp_path, None)
    # Every worker opens the registry at the same instant, a few seconds out (their imports take about one).
    start_workers(spec, seeds_of=lambda w: [w], start_at=time.time() + 8)  # each worker exits 0 or the test fails
    registry = spec.open()
    try:
        assert len(registry.catalog.list_modules()) == WORKERS
    finally:
        registry.close()


def test_eight_processes_push_fifty_modules_each(registry_url) -> None:
    spec = registry_url
    spec.open().close()  # create the schema once, as `adapters db upgrade` would
    results = start_workers(
        spec,
        seeds_of=lambda w: [w * 1000 + i for i in range(PER_WORKER)],
        extras_of=lambda w: [500_000 + w * 10 + i for i in range(3)],
        shared=SHARED,
    )
    assert sum(r["misses"] for r in results) == 0, "a process's search missed a module just pushed"

    registry = spec.open()
    try:
        modules = registry.catalog.list_modules()
        expected = {}
        for worker in range(WORKERS):
            for i in range(PER_WORKER):
                data, new, _task, _ds = synthetic.module(worker * 1000 + i)
                expected[new.blob_digest] = f"worker-{worker}"
        shared_digests = {synthetic.module(seed)[1].blob_digest for seed in SHARED}
        # Nothing lost, nothing duplicated, extras removed.
        assert len(modules) == WORKERS * PER_WORKER + len(SHARED)
        assert sorted(m.blob_digest for m in modules) == sorted(set(expected) | shared_digests)
        for module in modules:
            if module.blob_digest in expected:
                assert module.tags == tuple(sorted(("load", "synthetic", expected[module.blob_digest])))
            assert module.created_host
        pushed = {tuple(p) for r in results for p in r["pushed"]}
        assert {(m.id, m.blob_digest) for m in modules if m.blob_digest in expected} == pushed
        # Every blob is there and whole; every module is found by search, in a fresh process's view too.
        for module in modules:
            assert registry.blobs.get(module.blob_digest, owner=f"module {module.id}")
        by_digest = {m.blob_digest: m for m in modules}
        for seed in [w * 1000 + i for w in range(WORKERS) for i in range(PER_WORKER)] + SHARED:
            _data, new, _task, dataset = synthetic.module(seed)
            record = by_digest[new.blob_digest]
            assert registry.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)[0][0] == record.id
            assert registry.indexes.search_datasets(dataset.embedding, 1)[0][0] == record.dataset_id
        report = verify(registry)
        assert report.healthy, report
        assert report.modules == len(modules) and report.unreferenced_blobs == 3 * WORKERS  # the removed extras' blobs wait for gc
    finally:
        registry.close()
    # Staleness was detected and caught up cheaply, not by rebuilding on every query.
    stats = [r["stats"] for r in results]
    assert sum(s["rebuilt"] for s in stats) < sum(s["current"] + s["key"] + s["appended"] + s["disk"] for s in stats)


def test_search_follows_another_writer_without_rebuilding_every_query(registry_url) -> None:
    spec = registry_url
    reader, writer = spec.open(), spec.open()
    try:
        for seed in range(3):
            synthetic.push(writer, seed)
        _d, new, _t, dataset = synthetic.module(0)
        assert reader.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)[0][0] == 1
        before = dict(reader.indexes.stats)
        for _ in range(5):
            reader.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)
        assert reader.indexes.stats["current"] - before["current"] == 5, "an unchanged registry costs no rebuild"
        record, _ = synthetic.push(writer, 3)
        _d, new3, _t, _ds = synthetic.module(3)
        assert reader.indexes.search_parameters(new.schema_hash, new3.param_embedding, 1)[0][0] == record.id
        assert reader.indexes.stats["rebuilt"] == before["rebuilt"], "an addition is appended (or read from disk), not rebuilt"
        writer.remove_module(record.id)
        assert reader.indexes.search_parameters(new.schema_hash, new3.param_embedding, 1)[0][0] != record.id
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path, backend: str) -> None:
    from sqlalchemy import text

    from store.registry import Registry

    registry = Registry.open(tmp_path / "registry")
    try:
        with registry.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000
    finally:
        registry.close()

"""`adapters verify` and `adapters gc` on both backends."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import synthetic
from typer.testing import CliRunner

from cli.main import app
from store.blobs import GC_GRACE_S

runner = CliRunner()


def cli(spec, *args: str):
    return runner.invoke(app, [*args, *spec.args()])


def test_verify_reports_a_healthy_registry(registry_url) -> None:
    registry = registry_url.open()
    for seed in range(4):
        synthetic.push(registry, seed)
    registry.close()
    result = cli(registry_url, "verify")
    assert result.exit_code == 0, result.output
    assert "4 modules, 4 blobs" in result.output and "registry is healthy" in result.output


def test_verify_finds_missing_and_corrupt_blobs_and_bad_indexes_and_repair_never_deletes(registry_url) -> None:
    registry = registry_url.open()
    records = [synthetic.push(registry, seed)[0] for seed in range(4)]
    _d, new, _t, _ds = synthetic.module(0)
    registry.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)  # a current index on disk
    registry.indexes.rebuild()
    registry.blobs.path(records[0].blob_digest).unlink()  # missing
    corrupt = registry.blobs.path(records[1].blob_digest)
    corrupt.write_bytes(corrupt.read_bytes()[:-7] + b"garbage")  # corrupt
    # An index marked current whose entry points at no row.
    from store.indexes import _param_name

    index, generation, key = registry.indexes.load_saved(_param_name(new.schema_hash))
    import numpy as np

    index.add(np.array([999]), synthetic.unit(1, synthetic.SKETCH_DIM)[None, :])
    index.save(registry.indexes.root / f"{_param_name(new.schema_hash)}.faiss", {"generation": generation, "key": list(key), "registry": registry.registry_id})
    registry.close()

    result = cli(registry_url, "verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert {b["id"] for b in report["broken_modules"]} == {records[0].id, records[1].id}
    assert [c["digest"] for c in report["corrupt_blobs"]] == [records[1].blob_digest]
    assert any("point at no row" in problem for problem in report["index_problems"])

    repaired = cli(registry_url, "verify", "--repair")
    assert repaired.exit_code == 1, "broken modules remain broken: repair only rebuilds indexes"
    assert f"broken module {records[0].id}" in repaired.output and "not deleted" in repaired.output
    assert "rebuilt indexes" in repaired.output
    registry = registry_url.open()
    try:
        assert len(registry.catalog.list_modules()) == 4, "verify --repair never deletes modules"
    finally:
        registry.close()
    after = json.loads(cli(registry_url, "verify", "--json").output)
    assert after["index_problems"] == [] and len(after["broken_modules"]) == 2


def test_gc_removes_only_unreferenced_blobs_past_the_grace_period(registry_url) -> None:
    registry = registry_url.open()
    keep, _ = synthetic.push(registry, 1)
    gone, _ = synthetic.push(registry, 2)
    registry.remove_module(gone.id)
    # A push in flight: its blob is written, its row not yet committed.
    data, new, _task, _dataset = synthetic.module(3)
    in_flight = registry.blobs.put(data)
    # A killed push's temp file.
    temp = registry.blobs.path(in_flight).parent / ".tmp-dead.safetensors"
    temp.write_bytes(b"partial")
    old = time.time() - 2 * GC_GRACE_S
    for digest in (keep.blob_digest, gone.blob_digest):
        os.utime(registry.blobs.path(digest), (old, old))
    os.utime(temp, (old, old))
    registry.close()

    dry = cli(registry_url, "gc", "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.output)["removed"] == [gone.blob_digest]
    result = cli(registry_url, "gc", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["removed"] == [gone.blob_digest] and report["temp_files"] == 1
    registry = registry_url.open()
    try:
        assert registry.blobs.exists(keep.blob_digest) and registry.blobs.exists(in_flight)
        assert not registry.blobs.exists(gone.blob_digest) and not temp.exists()
        # An old orphan that a new push reuses gets a fresh mtime, so gc spares it.
        os.utime(registry.blobs.path(in_flight), (old, old))
        registry.blobs.put(data)
        assert registry.blobs.collect_garbage(registry.catalog.blob_digests).removed == []
        assert registry.blobs.exists(in_flight)
    finally:
        registry.close()
    assert cli(registry_url, "verify").exit_code == 0


def test_verify_names_a_blob_that_is_not_safetensors_without_reading_a_bogus_header_size(registry_url) -> None:
    registry = registry_url.open()
    _data, new, task, dataset = synthetic.module(0)
    # Its first 8 bytes, read as a safetensors header size, say about 7 * 10^18 bytes.
    garbage = b"not safetensors at all"
    record, _ = registry.add_module(garbage, dataclasses.replace(new, blob_digest=hashlib.sha256(garbage).hexdigest()), task, dataset, synthetic.BASE)
    registry.close()
    result = cli(registry_url, "verify", "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["broken_modules"] == [
        {"id": record.id, "task": record.task, "digest": record.blob_digest, "problem": "unreadable", "reason": "its blob is not a readable safetensors file"}
    ]

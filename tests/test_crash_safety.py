"""A push killed (SIGKILL) at any point leaves the whole module or nothing; gc removes the orphans."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from store.blobs import QUARANTINE_PREFIX, TEMP_PREFIX
from store.maintenance import collect_garbage, verify

WORKER = Path(__file__).with_name("registry_worker.py")
# Each named point is where the worker kills itself during its first push.
POINTS = ["blob_temp_written", "blob_renamed", "rows_flushed", "before_commit", "after_commit", "index_save"]
RANDOM_KILLS = 6


def start(spec, start_seed: int, crash_at: str | None = None) -> subprocess.Popen:
    payload = {"url": spec.url, "blobs": str(spec.blobs) if spec.blobs else None, "start": start_seed, "crash_at": crash_at}
    return subprocess.Popen([sys.executable, str(WORKER), "crash", json.dumps(payload)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(output: str) -> set[int]:
    return {int(line.split()[1]) for line in output.splitlines() if line.startswith("committed")}


def check_whole_or_nothing(spec) -> int:
    """Every visible module is whole: blob readable, all tags, all provenance rows; indexes agree."""
    registry = spec.open()
    try:
        modules = registry.catalog.list_modules()
        for summary in modules:
            module = registry.catalog.get_module(summary.id)
            registry.blobs.get(module.blob_digest, owner=f"module {module.id}")
            seed = int(module.task.removeprefix("synthetic-"))
            assert set(module.tags) == {"crash", f"seed-{seed}", "complete"}, module.tags
            assert module.provenance is not None and module.provenance.strategy == "average"
            assert abs(sum(s.weight for s in module.provenance.sources) - (1.0 if module.provenance.sources else 0.0)) < 1e-6
        report = verify(registry)
        assert not report.broken_modules and not report.corrupt_blobs and not report.index_problems, report
        if modules:
            import synthetic

            _d, new, _t, _ds = synthetic.module(int(modules[-1].task.removeprefix("synthetic-")))
            assert registry.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)[0][0] == modules[-1].id
        return len(modules)
    finally:
        registry.close()


def test_pushes_killed_at_every_step_and_at_random_leave_whole_modules_or_nothing(registry_url) -> None:
    spec = registry_url
    spec.open().close()
    seed = 0
    seen_committed: set[int] = set()
    for point in POINTS:
        proc = start(spec, seed, crash_at=point)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == -9, f"{point}: the worker was to kill itself; stderr: {err[-2000:]}"
        seed += 1000
        check_whole_or_nothing(spec)
    # The kill after the commit leaves its module; kills before the commit leave nothing.
    registry = spec.open()
    try:
        tasks = {m.task for m in registry.catalog.list_modules()}
    finally:
        registry.close()
    assert tasks == {f"synthetic-{POINTS.index('after_commit') * 1000}", f"synthetic-{POINTS.index('index_save') * 1000}"}

    rng = random.Random(5)
    for _ in range(RANDOM_KILLS):
        proc = start(spec, seed)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        out, _err = proc.communicate(timeout=60)
        seen_committed |= {seed_ for seed_ in committed(out)}
        seed += 1000
        count = check_whole_or_nothing(spec)
        assert count >= len(seen_committed)

    # Orphans (blobs of pushes killed before their commit, temp files) are what gc removes.
    registry = spec.open()
    try:
        sha = registry.blobs.root / "sha256"
        report = collect_garbage(registry, grace_s=0)
        assert not list(sha.glob(f"*/{TEMP_PREFIX}*")) and not list(sha.glob(f"*/{QUARANTINE_PREFIX}*"))
        assert set(registry.blobs.digests()) == registry.catalog.blob_digests()
        assert report.removed, "the pushes killed between blob and commit left orphan blobs"
        final = verify(registry)
        assert final.healthy and final.unreferenced_blobs == 0 and final.temp_files == 0, final
    finally:
        registry.close()

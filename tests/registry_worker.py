"""A separate process that writes to a registry: the many-writer, crash and load tests run it.

    python tests/registry_worker.py push   '{"url": ..., "blobs": ..., "seeds": [...], ...}'
    python tests/registry_worker.py crash  '{"url": ..., "blobs": ..., "start": 0, "crash_at": "after_commit"}'

`push` pushes the given synthetic modules, tagged with the worker (plus shared ones
every worker pushes, plus extras it removes again), checks after every push that its own
search sees the new module, and prints one JSON summary line. `crash` pushes
modules with tags and provenance in a loop, printing each committed id, until it
is killed; with `crash_at` it SIGKILLs itself at that point of its first push.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402

from store.registry import Registry  # noqa: E402


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def run_push(args: dict) -> None:
    # `start_at`: every worker opens the registry at that instant (a brand-new registry created by all at once).
    time.sleep(max(0.0, args.get("start_at", 0.0) - time.time()))
    registry = Registry.open(args["url"], args.get("blobs"))
    pushed, misses, latencies = [], 0, []
    shared = list(args.get("shared", []))
    extras = list(args.get("extras", []))
    plan = [("own", s) for s in args["seeds"]]
    # Interleave the shared pushes (every worker pushes them: only one row each must result) and extras.
    for i, seed in enumerate(shared):
        plan.insert((i * 7) % (len(plan) + 1), ("shared", seed))
    for i, seed in enumerate(extras):
        plan.insert((i * 11 + 3) % (len(plan) + 1), ("extra", seed))
    for what, seed in plan:
        tags = (*synthetic.TAGS, f"worker-{args['worker']}") if what == "own" else synthetic.TAGS
        started = time.perf_counter()
        record, _created = synthetic.push(registry, seed, tags=tags)
        latencies.append(time.perf_counter() - started)
        if what == "own":
            pushed.append((record.id, record.blob_digest))
        elif what == "extra":
            registry.remove_module(record.id)
        # This process's index must follow the database, whoever wrote last.
        _data, new, _task, dataset = synthetic.module(seed)
        if what != "extra":
            hits = registry.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)
            if not hits or hits[0][0] != record.id:
                misses += 1
            if registry.indexes.search_datasets(dataset.embedding, 1)[0][0] != record.dataset_id:
                misses += 1
    print(json.dumps({"worker": args["worker"], "pushed": pushed, "misses": misses, "stats": registry.indexes.stats, "latencies": latencies}))
    registry.close()


def arm(point: str | None) -> None:
    """Make this process SIGKILL itself when its next push reaches `point`."""
    import store.blobs
    import store.indexes

    if point == "blob_temp_written":
        original_replace = store.blobs.os.replace

        def replace(src, dst):
            if str(dst).endswith(store.blobs.SUFFIX):
                _die()  # the temp file is written and fsynced, not yet renamed
            return original_replace(src, dst)

        store.blobs.os.replace = replace
    elif point == "blob_renamed":
        import store.files

        original_fsync_dir = store.files.fsync_dir

        def fsync_dir(directory):
            original_fsync_dir(directory)
            _die()  # the blob is renamed into place and durable; its row is not written

        store.files.fsync_dir = fsync_dir
    elif point in ("rows_flushed", "before_commit"):
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        if point == "rows_flushed":
            event.listen(Session, "after_flush", lambda *a: _die())
        else:
            # The rows (and the generation bump) are sent; the COMMIT is not.
            event.listen(Session, "after_flush", lambda session, _ctx: session.info.__setitem__("wrote", True))
            event.listen(Session, "before_commit", lambda session: _die() if session.info.get("wrote") else None)
    elif point == "after_commit":
        store.indexes.IndexSet.module_added = lambda *a, **k: _die()
    elif point == "index_save":
        original_save = store.indexes.VectorIndex.save

        def save(self, path, meta):
            # Die between writing the index file and its sidecar.
            import faiss

            faiss.write_index(self._index, str(path))
            _die()

        store.indexes.VectorIndex.save = save
        _ = original_save


def run_crash(args: dict) -> None:
    """Push modules forever (until killed); with `crash_at`, SIGKILL ourselves at that step of the first push."""
    registry = Registry.open(args["url"], args.get("blobs"))
    # Make sure the indexes are current, so a push applies itself to them (exercises index saves).
    _d, new, _t, dataset = synthetic.module(0)
    registry.indexes.search_parameters(new.schema_hash, new.param_embedding, 1)
    registry.indexes.search_datasets(dataset.embedding, 1)
    registry.indexes._saved_at.clear()  # the next push saves its indexes (the index_save point)
    arm(args.get("crash_at"))
    print("ready", flush=True)
    seed = int(args["start"])
    sources: list[tuple[int, str]] = []
    while True:
        record, _created = synthetic.push(registry, seed, tags=("crash", f"seed-{seed}", "complete"), provenance=synthetic.provenance(sources[-3:]))
        print(f"committed {record.id} {seed}", flush=True)
        sources.append((record.id, record.blob_digest))
        seed += 1


if __name__ == "__main__":
    mode, payload = sys.argv[1], json.loads(sys.argv[2])
    {"push": run_push, "crash": run_crash}[mode](payload)

"""Integrity checks (`adapters verify`) and garbage collection (`adapters gc`) of a registry.

verify re-hashes every blob, checks that every module row points at a readable
blob holding the tensors its schema declares, and that every index entry points
at a row. It never deletes anything; with `repair` it rebuilds the indexes (the
only thing it can rebuild: they are caches) and reports broken modules for a
person to decide on (`adapters rm ID` then push again, or restore the blob).
Both return reports of plain facts; the CLI words them (cli/render.py).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from store import queries
from store.blobs import QUARANTINE_PREFIX, SUFFIX, TEMP_PREFIX, GcReport
from store.indexes import DATASETS
from store.registry import Registry

# safetensors dtype codes -> the names the catalog's tensor schemas use.
DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}  # fmt: skip


@dataclass(frozen=True)
class SchemaMismatch:
    """The first tensor where a blob and its row's schema disagree; found/declared are (shape, dtype), None when absent."""

    tensor: str
    found: tuple[list[int], str] | None
    declared: tuple[list[int], str] | None


@dataclass(frozen=True)
class BrokenModule:
    """A module row whose blob is missing, fails its sha256, is not safetensors, or holds other tensors."""

    id: int
    task: str
    digest: str
    problem: Literal["missing", "digest-mismatch", "unreadable", "schema-mismatch"]
    mismatch: SchemaMismatch | None = None


@dataclass(frozen=True)
class IndexFinding:
    """Something wrong with one index cache file.

    Problems (the registry is not healthy): "dangling" (`count` entries, e.g. `example`, point at no
    row) and "missing-rows" (`count` rows, e.g. `example`, absent) in an index marked current;
    "ahead" (it claims a generation past the database's). Notes (it heals on next use): "stale"
    (`count` entries of removed rows are dropped then), "unreadable".
    """

    index: str
    problem: Literal["dangling", "missing-rows", "ahead", "stale", "unreadable"]
    count: int = 0
    example: int = 0
    index_generation: int = 0
    generation: int = 0


@dataclass
class VerifyReport:
    """What `verify` counted and found; `healthy` is its verdict."""

    blob_root: Path
    blobs: int = 0
    blob_bytes: int = 0
    modules: int = 0
    corrupt_blobs: list[tuple[str, str]] = field(default_factory=list)  # (address, actual sha256)
    broken_modules: list[BrokenModule] = field(default_factory=list)
    unreferenced_blobs: int = 0
    temp_files: int = 0
    index_problems: list[IndexFinding] = field(default_factory=list)
    index_notes: list[IndexFinding] = field(default_factory=list)
    indexes_checked: int = 0
    repaired_indexes: dict[str, int] | None = None

    @property
    def healthy(self) -> bool:
        indexes_ok = not self.index_problems or self.repaired_indexes is not None
        return not self.corrupt_blobs and not self.broken_modules and indexes_ok


def verify(registry: Registry, repair: bool = False) -> VerifyReport:
    blobs = registry.blobs
    report = VerifyReport(blobs.root)
    hashes: dict[str, str] = {}
    for path in blobs.files():
        address = path.name.removesuffix(SUFFIX)
        try:
            actual = blobs.hash_file(path)
            report.blob_bytes += path.stat().st_size
        except FileNotFoundError:
            continue  # removed by a concurrent gc
        report.blobs += 1
        hashes[address] = actual
        if actual != address:
            report.corrupt_blobs.append((address, actual))
    sha = blobs.root / "sha256"
    report.temp_files = sum(1 for _ in sha.glob(f"*/{TEMP_PREFIX}*")) + sum(1 for _ in sha.glob(f"*/{QUARANTINE_PREFIX}*"))

    referenced: set[str] = set()
    for module_id, task, digest, schema in registry.catalog.module_blobs():
        report.modules += 1
        referenced.add(digest)
        if digest not in hashes:
            report.broken_modules.append(BrokenModule(module_id, task, digest, "missing"))
        elif hashes[digest] != digest:
            report.broken_modules.append(BrokenModule(module_id, task, digest, "digest-mismatch"))
        else:
            broken = _schema_problem(blobs.path(digest), schema)
            if broken is not None:
                report.broken_modules.append(BrokenModule(module_id, task, digest, *broken))
    report.unreferenced_blobs = len(set(hashes) - referenced)

    _check_indexes(registry, report)
    if repair:
        report.repaired_indexes = registry.indexes.rebuild()
    return report


def collect_garbage(registry: Registry, grace_s: float, dry_run: bool = False) -> GcReport:
    """Remove blobs no module references that are older than `grace_s` seconds, and dead temp files."""
    return registry.blobs.collect_garbage(registry.catalog.blob_digests, grace_s=grace_s, dry_run=dry_run)


def _schema_problem(path: Path, schema: list) -> tuple[Literal["unreadable", "schema-mismatch"], SchemaMismatch | None] | None:
    """None when the blob is a safetensors file with exactly the tensors the row declares."""
    try:
        with path.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            # Other bytes read as a header size can be anything: never read past the file.
            if size > path.stat().st_size - 8:
                return "unreadable", None
            header = json.loads(handle.read(size))
    except (OSError, ValueError, struct.error):
        return "unreadable", None
    header.pop("__metadata__", None)
    found = {name: (list(info["shape"]), DTYPES.get(info["dtype"], info["dtype"])) for name, info in header.items()}
    declared = {entry[0]: (list(entry[1]), str(entry[2])) for entry in schema}
    if found == declared:
        return None
    # The first difference names the module's problem: a missing tensor, else an extra one, else a changed one.
    missing = sorted(set(declared) - set(found))
    extra = sorted(set(found) - set(declared))
    differ = sorted(name for name in set(found) & set(declared) if found[name] != declared[name])
    name = (missing or extra or differ)[0]
    return "schema-mismatch", SchemaMismatch(name, found.get(name), declared.get(name))


def _check_indexes(registry: Registry, report: VerifyReport) -> None:
    with registry.catalog.snapshot() as session:
        generation = queries.generation(session)
        module_ids = queries.module_ids(session)
        dataset_ids = queries.indexed_dataset_ids(session)
        names = registry.indexes.names()
        expected_rows: dict[str, set[int]] = {}
        for name, index_queries in names.items():
            if index_queries is None:
                expected_rows[name] = set()
            elif name == DATASETS:
                expected_rows[name] = dataset_ids
            else:
                _key, rows = index_queries
                expected_rows[name] = set(rows(session, 0)[0].tolist())
    for name in names:
        path = registry.indexes.root / f"{name}.faiss"
        if not path.exists():
            continue
        report.indexes_checked += 1
        saved = registry.indexes.load_saved(name)
        if saved is None:
            report.index_notes.append(IndexFinding(name, "unreadable"))
            continue
        index, index_generation, _key = saved
        ids = set(index.ids().tolist())
        universe = dataset_ids if name == DATASETS else module_ids
        dangling = sorted(ids - universe)
        if index_generation == generation:
            missing = sorted(expected_rows[name] - ids)
            if dangling:
                report.index_problems.append(IndexFinding(name, "dangling", len(dangling), dangling[0], index_generation, generation))
            if missing:
                report.index_problems.append(IndexFinding(name, "missing-rows", len(missing), missing[0], index_generation, generation))
        elif index_generation > generation:
            report.index_problems.append(IndexFinding(name, "ahead", index_generation=index_generation, generation=generation))
        else:
            report.index_notes.append(IndexFinding(name, "stale", len(dangling), dangling[0] if dangling else 0, index_generation, generation))

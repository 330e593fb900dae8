"""Integrity checks (`adapters verify`) and garbage collection (`adapters gc`) of a registry.

verify re-hashes every blob, checks that every module row points at a readable
blob holding the tensors its schema declares, and that every index entry points
at a row. It never deletes anything; with `repair` it rebuilds the indexes (the
only thing it can rebuild: they are caches) and reports broken modules for a
person to decide on (`adapters rm ID` then push again, or restore the blob).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from store.blobs import QUARANTINE_PREFIX, SUFFIX, TEMP_PREFIX, GcReport
from store.indexes import DATASETS
from store.registry import Registry

# safetensors dtype codes -> the names the catalog's tensor schemas use.
DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}  # fmt: skip


@dataclass
class BrokenModule:
    id: int
    task: str
    digest: str
    reason: str


@dataclass
class VerifyReport:
    blobs: int = 0
    blob_bytes: int = 0
    modules: int = 0
    corrupt_blobs: list[tuple[str, str]] = field(default_factory=list)  # (address, actual sha256)
    broken_modules: list[BrokenModule] = field(default_factory=list)
    unreferenced_blobs: int = 0
    temp_files: int = 0
    index_problems: list[str] = field(default_factory=list)
    index_notes: list[str] = field(default_factory=list)
    indexes_checked: int = 0
    repaired_indexes: dict[str, int] | None = None

    @property
    def healthy(self) -> bool:
        indexes_ok = not self.index_problems or self.repaired_indexes is not None
        return not self.corrupt_blobs and not self.broken_modules and indexes_ok

    def lines(self) -> list[str]:
        out = [
            f"{self.modules} modules, {self.blobs} blobs ({self.blob_bytes:,} bytes) re-hashed, {self.indexes_checked} indexes checked",
        ]
        for address, actual in self.corrupt_blobs:
            out.append(f"corrupt blob {address}: its bytes hash to {actual} (digest mismatch; corrupt, or a blob from another registry)")
        for broken in self.broken_modules:
            out.append(f"broken module {broken.id} ({broken.task}): {broken.reason}")
        out.extend(f"index problem: {problem}" for problem in self.index_problems)
        out.extend(f"note: {note}" for note in self.index_notes)
        if self.unreferenced_blobs or self.temp_files:
            out.append(f"{self.unreferenced_blobs} unreferenced blobs and {self.temp_files} temp files: `adapters gc` removes them after the grace period")
        if self.repaired_indexes is not None:
            out.append("rebuilt indexes: " + ", ".join(f"{name} ({size} vectors)" for name, size in self.repaired_indexes.items()))
        if self.broken_modules:
            out.append("broken modules are not deleted: restore their blobs, or `adapters rm ID` and push them again")
        out.append("registry is healthy" if self.healthy else "registry is NOT healthy")
        return out

    def to_json(self) -> dict:
        return {
            "healthy": self.healthy,
            "modules": self.modules,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "corrupt_blobs": [{"digest": a, "actual": b} for a, b in self.corrupt_blobs],
            "broken_modules": [broken.__dict__ for broken in self.broken_modules],
            "unreferenced_blobs": self.unreferenced_blobs,
            "temp_files": self.temp_files,
            "index_problems": self.index_problems,
            "index_notes": self.index_notes,
            "repaired_indexes": self.repaired_indexes,
        }


def verify(registry: Registry, repair: bool = False) -> VerifyReport:
    report = VerifyReport()
    blobs = registry.blobs
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
            report.broken_modules.append(BrokenModule(module_id, task, digest, f"blob {digest[:12]} is missing from {blobs.root}"))
        elif hashes[digest] != digest:
            report.broken_modules.append(BrokenModule(module_id, task, digest, f"blob {digest[:12]} fails its sha256 check (digest mismatch)"))
        else:
            problem = _schema_problem(blobs.path(digest), schema)
            if problem:
                report.broken_modules.append(BrokenModule(module_id, task, digest, problem))
    report.unreferenced_blobs = len(set(hashes) - referenced)

    _check_indexes(registry, report)
    if repair:
        report.repaired_indexes = registry.indexes.rebuild()
    return report


def collect_garbage(registry: Registry, grace_s: float, dry_run: bool = False) -> GcReport:
    """Remove blobs no module references that are older than `grace_s` seconds, and dead temp files."""
    return registry.blobs.collect_garbage(registry.catalog.blob_digests, grace_s=grace_s, dry_run=dry_run)


def _schema_problem(path: Path, schema: list) -> str | None:
    """Whether the blob is a safetensors file with exactly the tensors the row declares."""
    try:
        with path.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
    except (OSError, ValueError, struct.error):
        return "its blob is not a readable safetensors file"
    header.pop("__metadata__", None)
    found = {name: (list(info["shape"]), DTYPES.get(info["dtype"], info["dtype"])) for name, info in header.items()}
    declared = {entry[0]: (list(entry[1]), str(entry[2])) for entry in schema}
    if found != declared:
        missing = sorted(set(declared) - set(found))
        extra = sorted(set(found) - set(declared))
        differ = sorted(name for name in set(found) & set(declared) if found[name] != declared[name])
        what = f"lacks {missing[0]}" if missing else f"has unexpected {extra[0]}" if extra else f"tensor {differ[0]} is {found[differ[0]]}, row says {declared[differ[0]]}"
        return f"its blob does not match the row's tensor schema ({what})"
    return None


def _check_indexes(registry: Registry, report: VerifyReport) -> None:
    catalog = registry.catalog
    with catalog.snapshot() as session:
        generation = catalog.generation_in(session)
        module_ids = catalog.module_ids(session)
        dataset_ids = catalog.indexed_dataset_ids(session)
        names = registry.indexes.names()
        expected_rows: dict[str, set[int]] = {}
        for name, queries in names.items():
            if queries is None:
                expected_rows[name] = set()
            elif name == DATASETS:
                expected_rows[name] = dataset_ids
            else:
                key, rows = queries
                expected_rows[name] = set(rows(session, 0)[0].tolist())
    for name in names:
        path = registry.indexes.root / f"{name}.faiss"
        if not path.exists():
            continue
        report.indexes_checked += 1
        saved = registry.indexes.load_saved(name)
        if saved is None:
            report.index_notes.append(f"{name}: unreadable cache file (a save was interrupted?); it is rebuilt on next use")
            continue
        index, index_generation, _key = saved
        ids = set(index.ids().tolist())
        universe = dataset_ids if name == DATASETS else module_ids
        dangling = sorted(ids - universe)
        if index_generation == generation:
            missing = sorted(expected_rows[name] - ids)
            if dangling:
                report.index_problems.append(f"{name}: {len(dangling)} entries point at no row (e.g. {dangling[0]}) in an index marked current")
            if missing:
                report.index_problems.append(f"{name}: {len(missing)} rows are missing (e.g. {missing[0]}) from an index marked current")
        elif index_generation > generation:
            report.index_problems.append(f"{name}: claims generation {index_generation}, ahead of the database's {generation} (from another registry?)")
        else:
            note = f"{name}: stale (generation {index_generation} < {generation}); it catches up on next use"
            if dangling:
                note += f"; {len(dangling)} entries of removed rows are dropped then"
            report.index_notes.append(note)

"""Integrity checks (`adapters verify`) and garbage collection (`adapters gc`) of a registry.

verify re-hashes every blob, checks that every module row points at a readable
blob holding the tensors its schema declares, and that every index entry points
at a row. It never deletes anything; with `repair` it rebuilds the indexes (the
only thing it can rebuild: they are caches) and reports broken modules for a
person to decide on (`adapters rm ID` then push again, or restore the blob).
Both return reports of plain facts; the CLI words them (cli/render.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from store import queries
from store.blobs import GcReport
from store.db import display_url
from store.errors import StoreError
from store.indexes import DATASETS
from store.registry import Registry, reach_blobs

# A push that lands while the blobs are copied adds a blob the copy has not seen: copy again, this often.
COPY_ROUNDS = 5

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

    blob_root: str  # a directory or s3://BUCKET/PREFIX
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
    report = VerifyReport(blobs.where)
    hashes: dict[str, str] = {}
    headers: dict[str, dict | None] = {}
    for facts in blobs.scan():
        report.blobs += 1
        report.blob_bytes += facts.size
        hashes[facts.digest] = facts.actual
        headers[facts.digest] = facts.header
        if facts.actual != facts.digest:
            report.corrupt_blobs.append((facts.digest, facts.actual))
    report.temp_files = blobs.leftovers()

    referenced: set[str] = set()
    for module_id, task, digest, schema in registry.catalog.module_blobs():
        report.modules += 1
        referenced.add(digest)
        if digest not in hashes:
            report.broken_modules.append(BrokenModule(module_id, task, digest, "missing"))
        elif hashes[digest] != digest:
            report.broken_modules.append(BrokenModule(module_id, task, digest, "digest-mismatch"))
        else:
            broken = _schema_problem(headers[digest], schema)
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


@dataclass
class CopyReport:
    """What `copy_blobs` copied (and verified) to `target`, the registry's blob location from then on."""

    target: str
    copied: int = 0
    copied_bytes: int = 0


def copy_blobs(registry: Registry, to: str) -> CopyReport:
    """Copy every blob a module references to `to` (a directory or s3://BUCKET/PREFIX), read each back and re-hash it
    there, then record `to` as the registry's blob location; nothing switches unless every referenced blob is there.

    Orphan blobs (gc's to remove) stay behind. The old location is left as it was.
    """
    target = reach_blobs(to, create=True)
    if target.where == registry.blobs.where:
        raise StoreError(f"the registry's blobs are already at {target.where}")
    target.claim(registry.registry_id, display_url(registry.engine))
    report = CopyReport(target.where)
    present: set[str] = set()
    for _round in range(COPY_ROUNDS):
        for digest in sorted(registry.catalog.blob_digests() - present):
            data = registry.blobs.get(digest, owner="the registry")  # a blob that went bad here is not copied as good bytes
            target.put(data)
            target.get(digest, owner=f"the copy at {target.where}")
            present.add(digest)
            report.copied += 1
            report.copied_bytes += len(data)
        if not registry.catalog.switch_blob_location(target.where, present):
            return report
    raise StoreError(f"modules kept arriving while their blobs were copied to {target.where}; the registry was not switched, run the copy again")


def _schema_problem(header: dict | None, schema: list) -> tuple[Literal["unreadable", "schema-mismatch"], SchemaMismatch | None] | None:
    """None when the blob's safetensors header (None: not safetensors) declares exactly the tensors the row declares."""
    if header is None:
        return "unreadable", None
    try:
        found = {name: (list(info["shape"]), DTYPES.get(info["dtype"], info["dtype"])) for name, info in header.items() if name != "__metadata__"}
    except (KeyError, TypeError):
        return "unreadable", None
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

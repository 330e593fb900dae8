"""The faiss indexes of the catalog: dataset embeddings, and parameter embeddings per tensor schema.

They are caches of the database, per process and on disk (shared by the
processes of one machine). An index is trusted only when it is known to match
the rows: it records the registry generation it was built at (the counter every
write bumps) and a content key (count and id sum of its rows), both read in the
same snapshot as its vectors. A search costs one generation query when nothing
changed. When another writer moved the generation: a newer copy on disk is
taken if it is current; else, in one snapshot, an unchanged key just moves the
generation, rows added since (ids only grow) are appended, and anything else
(a removal) rebuilds the index from the database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from sqlalchemy.orm import Session

from store import queries
from store.catalog import Catalog
from store.errors import StoreError
from store.vector_index import VectorIndex, VectorIndexError

DATASETS = "datasets"
# An index that only caught up (appended rows) is saved at most this often per process:
# the copy on disk may lag (it catches up the same way), and saving costs fsyncs.
SAVE_INTERVAL_S = 5.0

Key = tuple[int, int]
KeyQuery = Callable[[Session], Key]
RowsQuery = Callable[[Session, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class _Cached:
    index: VectorIndex
    generation: int
    key: Key
    max_id: int


class IndexSet:
    """Keeps the dataset index and the per-schema parameter indexes in step with the catalog."""

    def __init__(self, root: Path, catalog: Catalog, registry_id: str = "") -> None:
        self.root = root
        self.catalog = catalog
        # Saved indexes of another registry (a database recreated at the same URL) are never trusted.
        self.registry_id = registry_id
        self._saved_at: dict[str, float] = {}
        self._cache: dict[str, _Cached] = {}
        # How often each way of catching up happened (for tests and benchmarks).
        self.stats = {"current": 0, "disk": 0, "key": 0, "appended": 0, "rebuilt": 0}
        # The registry server searches and pushes from many threads; the cache and files are shared state.
        self._lock = threading.RLock()

    def search_datasets(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._lock:
            return _hits(self._fresh(DATASETS, *self._dataset_queries()), vector, k)

    def search_parameters(self, schema_hash: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._lock:
            return _hits(self._fresh(_param_name(schema_hash), *self._parameter_queries(schema_hash)), vector, k)

    def check_dimensions(self, schema_hash: str, parameter: np.ndarray, dataset: np.ndarray | None) -> None:
        """Refuse embeddings whose length differs from the vectors of the index they would join: such a row would break every search of it."""
        wanted = [(_param_name(schema_hash), self._parameter_queries(schema_hash), parameter, "parameter")]
        if dataset is not None:
            wanted.append((DATASETS, self._dataset_queries(), dataset, "dataset"))
        with self._lock:
            for name, (key, rows), vector, what in wanted:
                index = self._fresh(name, key, rows)
                if len(index) and vector.shape != (index.dim,):
                    raise StoreError(
                        f"the module's {what} embedding has shape {vector.shape}, but the registry's {what} vectors have {index.dim} values; "
                        "nothing was registered"
                    )

    def rebuild(self) -> dict[str, int]:
        """Rebuild every index from the database; return the rows in each."""
        with self._lock:
            return self._rebuild()

    def _rebuild(self) -> dict[str, int]:
        self._cache.clear()
        for stale in self.root.glob("*.faiss*"):
            stale.unlink(missing_ok=True)
        sizes = {DATASETS: len(self._fresh(DATASETS, *self._dataset_queries()))}
        for schema in self.catalog.schema_hashes():
            name = _param_name(schema)
            sizes[name] = len(self._fresh(name, *self._parameter_queries(schema)))
        return sizes

    def names(self) -> dict[str, tuple[KeyQuery, RowsQuery] | None]:
        """Every index this registry should have (name -> its queries), plus stray files on disk (None)."""
        wanted: dict[str, tuple[KeyQuery, RowsQuery] | None] = {DATASETS: self._dataset_queries()}
        for schema in self.catalog.schema_hashes():
            wanted[_param_name(schema)] = self._parameter_queries(schema)
        for path in self.root.glob("*.faiss"):
            wanted.setdefault(path.name.removesuffix(".faiss"), None)
        return wanted

    def load_saved(self, name: str) -> tuple[VectorIndex, int, Key] | None:
        """The copy on disk (index, generation, key), or None when missing or unreadable."""
        cached = self._load(name)
        return None if cached is None else (cached.index, cached.generation, cached.key)

    def module_added(self, generation: int, module_id: int, schema_hash: str, embedding: np.ndarray, dataset: tuple[int, np.ndarray] | None) -> None:
        """Apply one push to the indexes that were current just before it; others catch up on next use.

        `dataset` is the module's (dataset id, dataset embedding), None for a module without a dataset,
        which leaves the dataset index as it was (only its generation moves).
        """
        self._apply(_param_name(schema_hash), generation, lambda c: _added(c, module_id, embedding))
        if dataset is None:
            self._apply(DATASETS, generation, lambda c: c.key)
            return
        dataset_id, dataset_embedding = dataset
        self._apply(DATASETS, generation, lambda c: _added(c, dataset_id, dataset_embedding) if dataset_id not in set(c.index.ids().tolist()) else c.key)

    def module_removed(self, generation: int, module_id: int, schema_hash: str) -> None:
        self._apply(_param_name(schema_hash), generation, lambda c: _removed(c, module_id))
        # Whether the dataset lost its last module needs the database; let the key check decide.

    def _dataset_queries(self) -> tuple[KeyQuery, RowsQuery]:
        return queries.dataset_key, queries.dataset_embeddings

    def _parameter_queries(self, schema_hash: str) -> tuple[KeyQuery, RowsQuery]:
        return (
            lambda session: queries.parameter_key(session, schema_hash),
            lambda session, after: queries.parameter_embeddings(session, schema_hash, after),
        )

    def _apply(self, name: str, generation: int, change: Callable[[_Cached], Key]) -> None:
        with self._lock:
            self._apply_unlocked(name, generation, change)

    def _apply_unlocked(self, name: str, generation: int, change: Callable[[_Cached], Key]) -> None:
        cached = self._cache.get(name)
        if cached is None or cached.generation != generation - 1:
            cached = self._load(name)
        if cached is None or cached.generation != generation - 1:
            return
        cached.key = change(cached)
        cached.generation = generation
        self._cache[name] = cached
        self._save(name, cached, force=False)

    def _fresh(self, name: str, key: KeyQuery, rows: RowsQuery) -> VectorIndex:
        generation = self.catalog.generation()
        cached = self._cache.get(name)
        if cached is not None and cached.generation == generation:
            self.stats["current"] += 1
            return cached.index
        if self._saved_generation(name) not in (None, cached.generation if cached else None):
            # Another process of this machine may have brought the copy on disk up to date.
            saved = self._load(name)
            if saved is not None and (cached is None or saved.generation > cached.generation):
                cached = saved
                if cached.generation == generation:
                    self.stats["disk"] += 1
                    self._cache[name] = cached
                    return cached.index
        rebuilt_before = self.stats["rebuilt"]
        with self.catalog.snapshot() as session:
            # Key, rows and generation from one snapshot: the index records exactly the state it holds.
            generation = queries.generation(session)
            current_key = key(session)
            if cached is not None and cached.key == current_key:
                self.stats["key"] += 1
                cached.generation = generation
            else:
                cached = self._caught_up(cached, current_key, generation, session, rows)
        if cached is None:
            self._cache.pop(name, None)
            return _empty_index()
        self._cache[name] = cached
        self._save(name, cached, force=self.stats["rebuilt"] != rebuilt_before)
        return cached.index

    def _caught_up(self, cached: _Cached | None, current_key: Key, generation: int, session: Session, rows: RowsQuery) -> _Cached | None:
        if cached is not None:
            ids, vectors = rows(session, cached.max_id)
            # Ids only grow, so rows past the cached maximum are the additions; if they account
            # for the whole change of the key, nothing was removed.
            added = (cached.key[0] + len(ids), cached.key[1] + int(ids.sum()))
            if added == current_key and (len(ids) == 0 or vectors.shape[1] == cached.index.dim):
                if len(ids):
                    cached.index.add(ids, vectors)
                self.stats["appended"] += 1
                return _Cached(cached.index, generation, current_key, max(cached.max_id, int(ids.max()) if len(ids) else 0))
        self.stats["rebuilt"] += 1
        ids, vectors = rows(session, 0)
        if len(ids) == 0:
            return None
        return _Cached(VectorIndex.build(ids, vectors, vectors.shape[1]), generation, current_key, int(ids.max()))

    def _saved_generation(self, name: str) -> int | None:
        """The generation the copy on disk claims, from its small sidecar (None: no readable copy)."""
        try:
            sidecar = json.loads((self.root / f"{name}.faiss.json").read_bytes())
            return int(sidecar["metadata"]["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _load(self, name: str) -> _Cached | None:
        try:
            index, meta = VectorIndex.load(self.root / f"{name}.faiss")
            if meta.get("registry", "") != self.registry_id:
                return None
            key = (int(meta["key"][0]), int(meta["key"][1]))
            max_id = int(meta["max_id"]) if "max_id" in meta else _max_id(index)
            return _Cached(index, int(meta["generation"]), key, max_id)
        except (VectorIndexError, KeyError, TypeError, ValueError, IndexError):
            return None

    def _save(self, name: str, cached: _Cached, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._saved_at.get(name, -SAVE_INTERVAL_S) < SAVE_INTERVAL_S:
            return
        self._saved_at[name] = now
        meta: dict[str, Any] = {"generation": cached.generation, "key": list(cached.key), "max_id": cached.max_id, "registry": self.registry_id}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            cached.index.save(self.root / f"{name}.faiss", meta)
        except OSError:
            # The index is only a cache: an unwritable cache directory costs speed (rebuilds), not correctness.
            pass


def _param_name(schema_hash: str) -> str:
    return f"params-{schema_hash[:16]}"


def _added(cached: _Cached, row_id: int, vector: np.ndarray) -> tuple[int, int]:
    cached.index.add(np.array([row_id]), vector[None, :])
    # max_id only has to bound every id ever indexed: ids are never handed out twice.
    cached.max_id = max(cached.max_id, row_id)
    return cached.key[0] + 1, cached.key[1] + row_id


def _removed(cached: _Cached, row_id: int) -> tuple[int, int]:
    removed = cached.index.remove(np.array([row_id]))
    return cached.key[0] - removed, cached.key[1] - row_id * removed


def _max_id(index: VectorIndex) -> int:
    ids = index.ids()
    return int(ids.max()) if len(ids) else 0


def _empty_index() -> VectorIndex:
    return VectorIndex.build(np.zeros(0, dtype=np.int64), np.zeros((0, 1), dtype=np.float32), 1)


def _hits(index: VectorIndex, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
    if len(index) == 0:
        return []
    if vector.shape != (index.dim,) or not np.all(np.isfinite(vector)):
        raise StoreError(f"the query vector has shape {vector.shape} or a non-finite value; this index holds vectors of {index.dim} finite values")
    # One query gains nothing from OpenMP threads, and their start-up and spinning cost
    # tens of milliseconds when several processes share the cores.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        scores, ids = index.search(vector[None, :], min(k, len(index)))
    finally:
        faiss.omp_set_num_threads(threads)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

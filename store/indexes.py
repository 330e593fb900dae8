"""The faiss indexes of the catalog: dataset embeddings, and parameter embeddings per tensor schema.

They are caches of the database. An index is trusted only when it is known to
match the rows: its sidecar records the registry generation it was built at and
a content key (count and id sum of its rows). A changed generation costs one
aggregate query; only a changed key costs a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from store.catalog import Catalog
from store.vector_index import VectorIndex, VectorIndexError

DATASETS = "datasets"


@dataclass
class _Cached:
    index: VectorIndex
    generation: int
    key: tuple[int, int]


class IndexSet:
    """Keeps the dataset index and the per-schema parameter indexes in step with the catalog."""

    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root = root
        self.catalog = catalog
        self._cache: dict[str, _Cached] = {}

    def search_datasets(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return _hits(self._fresh(DATASETS, self.catalog.dataset_key, self.catalog.dataset_embeddings), vector, k)

    def search_parameters(self, schema_hash: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return _hits(
            self._fresh(_param_name(schema_hash), lambda: self.catalog.parameter_key(schema_hash), lambda: self.catalog.parameter_embeddings(schema_hash)),
            vector,
            k,
        )

    def rebuild(self) -> dict[str, int]:
        """Rebuild every index from the database; return the rows in each."""
        self._cache.clear()
        for stale in self.root.glob("*.faiss*"):
            stale.unlink()
        sizes = {DATASETS: len(self._fresh(DATASETS, self.catalog.dataset_key, self.catalog.dataset_embeddings))}
        for schema in self.catalog.schema_hashes():
            name = _param_name(schema)
            sizes[name] = len(self._fresh(name, lambda s=schema: self.catalog.parameter_key(s), lambda s=schema: self.catalog.parameter_embeddings(s)))
        return sizes

    def module_added(self, generation: int, module_id: int, schema_hash: str, embedding: np.ndarray, dataset_id: int, dataset_embedding: np.ndarray) -> None:
        """Apply one push to the indexes that were current just before it; others rebuild on next use."""
        self._apply(_param_name(schema_hash), generation, lambda c: _added(c, module_id, embedding))
        self._apply(DATASETS, generation, lambda c: _added(c, dataset_id, dataset_embedding) if dataset_id not in set(c.index.ids().tolist()) else c.key)

    def module_removed(self, generation: int, module_id: int, schema_hash: str) -> None:
        self._apply(_param_name(schema_hash), generation, lambda c: _removed(c, module_id))
        # Whether the dataset lost its last module needs the database; let the key check decide.

    def _apply(self, name: str, generation: int, change: Callable[[_Cached], tuple[int, int]]) -> None:
        cached = self._cache.get(name) or self._load(name)
        if cached is None or cached.generation != generation - 1:
            return
        cached.key = change(cached)
        cached.generation = generation
        self._cache[name] = cached
        self._save(name, cached)

    def _fresh(self, name: str, key: Callable[[], tuple[int, int]], rows: Callable[[], tuple[np.ndarray, np.ndarray]]) -> VectorIndex:
        generation = self.catalog.generation()
        cached = self._cache.get(name) or self._load(name)
        if cached is not None and cached.generation == generation:
            self._cache[name] = cached
            return cached.index
        # The key is read before the rows: a write in between makes the index look stale, never fresh.
        current_key = key()
        if cached is not None and cached.key == current_key:
            cached.generation = generation
        else:
            ids, vectors = rows()
            if len(ids) == 0:
                return _empty_index()
            cached = _Cached(VectorIndex.build(ids, vectors, vectors.shape[1]), generation, current_key)
        self._cache[name] = cached
        self._save(name, cached)
        return cached.index

    def _load(self, name: str) -> _Cached | None:
        try:
            index, meta = VectorIndex.load(self.root / f"{name}.faiss")
            return _Cached(index, int(meta["generation"]), (int(meta["key"][0]), int(meta["key"][1])))
        except (VectorIndexError, KeyError, TypeError, ValueError, IndexError):
            return None

    def _save(self, name: str, cached: _Cached) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            cached.index.save(self.root / f"{name}.faiss", {"generation": cached.generation, "key": list(cached.key)})
        except OSError:
            # The index is only a cache: an unwritable cache directory costs speed (rebuilds), not correctness.
            pass


def _param_name(schema_hash: str) -> str:
    return f"params-{schema_hash[:16]}"


def _added(cached: _Cached, row_id: int, vector: np.ndarray) -> tuple[int, int]:
    cached.index.add(np.array([row_id]), vector[None, :])
    return cached.key[0] + 1, cached.key[1] + row_id


def _removed(cached: _Cached, row_id: int) -> tuple[int, int]:
    removed = cached.index.remove(np.array([row_id]))
    return cached.key[0] - removed, cached.key[1] - row_id * removed


def _empty_index() -> VectorIndex:
    return VectorIndex.build(np.zeros(0, dtype=np.int64), np.zeros((0, 1), dtype=np.float32), 1)


def _hits(index: VectorIndex, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
    if len(index) == 0:
        return []
    scores, ids = index.search(vector[None, :], min(k, len(index)))
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

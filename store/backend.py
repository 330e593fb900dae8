"""What `Hub` needs of a registry, whether it is opened locally (store.registry) or through a server (store.remote)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from store.module_query import ModuleQuery
from store.records import BaseModelInfo, DatasetInfo, ModuleRecord, NewModule, Provenance, TaskInfo
from store.tokens import TokenRecord


class Place(Protocol):
    @property
    def display(self) -> str: ...


class CatalogReads(Protocol):
    def dataset_embedding(self, fingerprint: str) -> np.ndarray | None: ...

    def get_module(self, module_id: int) -> ModuleRecord: ...

    def list_modules(self, query: ModuleQuery = ModuleQuery()) -> list[ModuleRecord]: ...


class BlobReads(Protocol):
    def get(self, digest: str, owner: str = "") -> bytes: ...


class IndexSearch(Protocol):
    def search_datasets(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def search_parameters(self, schema_hash: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def rebuild(self) -> dict[str, int]: ...


class Tokens(Protocol):
    def create(self, name: str, scope: str) -> tuple[TokenRecord, str]: ...

    def list(self) -> list[TokenRecord]: ...

    def revoke(self, name: str) -> TokenRecord: ...


class RegistryBackend(Protocol):
    """A registry as `Hub` uses it: catalog reads, blob reads, index search, tokens, and the two writes."""

    location: Place
    catalog: CatalogReads
    blobs: BlobReads
    indexes: IndexSearch
    tokens: Tokens

    def add_module(
        self, data: bytes, module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None = None
    ) -> tuple[ModuleRecord, bool]: ...

    def remove_module(self, module_id: int) -> ModuleRecord: ...

    def close(self) -> None: ...

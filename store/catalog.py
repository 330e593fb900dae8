"""The catalog: the registry's database, read through store.queries and written through store.writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store import queries, records, writes
from store.db import database_errors, is_sqlite
from store.module_query import ModuleQuery
from store.records import DatasetInfo, ModuleRecord, Provenance, TaskInfo

__all__ = ["Catalog"]


class Catalog:
    """Sessions on the catalog database; every write goes through one WriteTransaction (it bumps the generation)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite's deferred BEGIN already reads one WAL snapshot; PostgreSQL needs REPEATABLE READ for that.
        snapshot_engine = engine if is_sqlite(engine) else engine.execution_options(isolation_level="REPEATABLE READ")
        self._snapshots = sessionmaker(snapshot_engine, expire_on_commit=False)
        self._writes = writes.WriteTransaction(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with database_errors(self.engine), self._sessions.begin() as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only transaction whose queries all see one consistent state of the catalog."""
        with database_errors(self.engine), self._snapshots.begin() as session:
            yield session

    def generation(self) -> int:
        with self.session() as session:
            return queries.generation(session)

    def registry_id(self) -> str:
        with self.session() as session:
            return queries.registry_id(session)

    def blob_location(self) -> str:
        """Where `blobs copy` moved the blobs; "" when the opener names them."""
        with self.session() as session:
            return queries.blob_location(session)

    def switch_blob_location(self, where: str, present: set[str]) -> set[str]:
        """Record `where` as the blob location if it holds every blob a row references; else return those it lacks.

        The check and the switch are one write transaction, so no push commits a row in between.
        """
        missing, _generation = self._writes.run(lambda session: writes.switch_blob_location(session, where, present))
        return missing

    def dataset_embedding(self, fingerprint: str) -> np.ndarray | None:
        with self.session() as session:
            return queries.dataset_embedding(session, fingerprint)

    def get_module(self, module_id: int) -> ModuleRecord:
        with self.session() as session:
            return queries.get_module(session, module_id)

    def list_modules(self, query: ModuleQuery = ModuleQuery()) -> list[ModuleRecord]:
        """Modules matching `query` (default: every module), by id; the same records as `get_module`, provenance included."""
        with self.session() as session:
            return queries.list_modules(session, query)

    def module_blobs(self) -> list[tuple[int, str, str, list[Any]]]:
        with self.session() as session:
            return queries.module_blobs(session)

    def schema_hashes(self) -> list[str]:
        with self.session() as session:
            return queries.schema_hashes(session)

    def blob_digests(self) -> set[str]:
        with self.session() as session:
            return queries.blob_digests(session)

    def add_module(
        self,
        module: records.NewModule,
        task: TaskInfo,
        dataset: DatasetInfo | None,
        base_model: records.BaseModelInfo,
        provenance: Provenance | None = None,
        blobs_at: str = "",
    ) -> tuple[ModuleRecord, int | None]:
        """Insert a module (and its task, dataset, base model rows if new); `dataset` None: a module described only by its task.

        `blobs_at` is where the writer put the blob: refused, with nothing written, when `blobs copy`
        has since moved the registry's blobs elsewhere (a server started before the move).
        Returns the module and the generation of the write, or None when the module was already there.
        """

        def work(session: Session) -> tuple[int, bool]:
            writes.check_blob_location(session, blobs_at)
            return writes.add_module(session, module, task, dataset, base_model, provenance)

        (module_id, created), generation = self._writes.run(work)
        return self.get_module(module_id), generation if created else None

    def remove_module(self, module_id: int) -> tuple[ModuleRecord, int]:
        """Delete a module; return what it was and the generation of the write."""
        record = self.get_module(module_id)
        _, generation = self._writes.run(lambda session: writes.remove_module(session, module_id))
        return record, generation

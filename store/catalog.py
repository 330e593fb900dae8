"""Queries of the catalog. Plain SQLAlchemy Core/ORM that runs the same on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from store.db import WRITE_OPTION, display_url, is_sqlite, unreachable
from store.errors import NotFound, StoreError
from store.models import (
    BaseModelRow,
    DatasetRow,
    EnsembleRow,
    EnsembleSourceRow,
    ModuleRow,
    ModuleTagRow,
    RegistryStateRow,
    TaskRow,
)

T = TypeVar("T")
# A write is retried when it loses a race it cannot see coming (a unique row inserted
# by a writer that does not take the generation lock, a lock timeout, a deadlock).
RETRIES = 8


@dataclass(frozen=True)
class TaskInfo:
    name: str
    category: str
    format: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    fingerprint: str
    size: int
    source: str
    embedding: np.ndarray


@dataclass(frozen=True)
class BaseModelInfo:
    name: str
    kind: str
    arch_hash: str
    revision: str = ""


@dataclass(frozen=True)
class SourceWeight:
    module_id: int
    digest: str
    score: float | None
    weight: float


@dataclass(frozen=True)
class Provenance:
    """How a composed init came to be: target dataset, strategy, temperature, sources and weights."""

    strategy: str
    temperature: float
    top_k: int | None
    sources: tuple[SourceWeight, ...]
    target_fingerprint: str = ""


@dataclass(frozen=True)
class NewModule:
    method: str
    config: dict[str, Any]
    tensor_schema: list[Any]
    schema_hash: str
    num_params: int
    blob_digest: str
    param_embedding: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    kind: str = "trained"
    created_by: str = ""
    created_host: str = ""


@dataclass(frozen=True)
class ModuleRecord:
    """A module as the catalog knows it, joined with its task, dataset and base model."""

    id: int
    method: str
    kind: str
    task: str
    category: str
    task_format: str
    dataset_id: int
    dataset_fingerprint: str
    base_model: str
    base_model_kind: str
    base_arch_hash: str
    schema_hash: str
    num_params: int
    blob_digest: str
    metrics: dict[str, float]
    tags: tuple[str, ...]
    created_at: datetime
    created_by: str
    config: dict[str, Any]
    tensor_schema: list[Any]
    provenance: Provenance | None = None
    created_host: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["tags"] = list(self.tags)
        return data


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def bytes_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32)


class Catalog:
    """All reads and writes of catalog rows; every write bumps the registry generation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        # SQLite's deferred BEGIN already reads one WAL snapshot; PostgreSQL needs REPEATABLE READ for that.
        snapshot_engine = engine if is_sqlite(engine) else engine.execution_options(isolation_level="REPEATABLE READ")
        self._snapshots = sessionmaker(snapshot_engine, expire_on_commit=False)
        self._bump_first = is_sqlite(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with _database_errors(self.engine), self._sessions.begin() as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only transaction whose queries all see one consistent state of the catalog."""
        with _database_errors(self.engine), self._snapshots.begin() as session:
            yield session

    def _write(self, work: Callable[[Session], T]) -> tuple[T, int]:
        """Run a write transaction and return its result with the generation it produced.

        Writers take turns on the generation: on SQLite, BEGIN IMMEDIATE holds the write
        lock for the whole transaction; on PostgreSQL the bump is the last statement, so
        its row lock is held only until the commit. Either way writes commit in generation
        order, and the state at `generation` is the state at `generation - 1` plus this
        write (two writers racing to insert the same unique row: the loser's insert fails
        once the winner commits, and the retry finds the row).
        """
        for attempt in range(RETRIES):
            try:
                with _database_errors(self.engine), self._writes.begin() as session:
                    if self._bump_first:
                        generation = _bump(session)
                        result = work(session)
                    else:
                        result = work(session)
                        session.flush()
                        generation = _bump(session)
                    return result, int(generation)
            except (IntegrityError, _Retry):
                if attempt == RETRIES - 1:
                    raise StoreError(f"a write to {display_url(self.engine)} kept conflicting with other writers; try again") from None
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    def generation(self) -> int:
        with self.session() as session:
            return _generation(session)

    def generation_in(self, session: Session) -> int:
        """The generation as seen by an open transaction (e.g. a snapshot)."""
        return _generation(session)

    def registry_id(self) -> str:
        with self.session() as session:
            return str(session.scalar(select(RegistryStateRow.registry_id).where(RegistryStateRow.id == 1)) or "")

    def dataset_embedding(self, fingerprint: str) -> np.ndarray | None:
        with self.session() as session:
            data = session.scalar(select(DatasetRow.embedding).where(DatasetRow.fingerprint == fingerprint))
            return None if data is None else bytes_vector(data).copy()

    def add_module(
        self, module: NewModule, task: TaskInfo, dataset: DatasetInfo, base_model: BaseModelInfo, provenance: Provenance | None = None
    ) -> tuple[ModuleRecord, int | None]:
        """Insert a module (and its task, dataset, base model rows if new).

        Returns the module and the generation of the write, or None when the module was already there.
        """

        def work(session: Session) -> tuple[int, bool]:
            task_row = _task(session, task)
            dataset_row = _dataset(session, dataset, task_row)
            base_row = _base_model(session, base_model)
            existing = session.scalar(
                select(ModuleRow.id).where(
                    ModuleRow.base_model_id == base_row.id,
                    ModuleRow.dataset_id == dataset_row.id,
                    ModuleRow.blob_digest == module.blob_digest,
                )
            )
            if existing is not None:
                return existing, False
            row = ModuleRow(
                base_model=base_row,
                dataset=dataset_row,
                method=module.method,
                config=module.config,
                tensor_schema=module.tensor_schema,
                schema_hash=module.schema_hash,
                num_params=module.num_params,
                blob_digest=module.blob_digest,
                metrics=module.metrics,
                param_embedding=vector_bytes(module.param_embedding),
                kind=module.kind,
                created_by=module.created_by,
                created_host=module.created_host,
                tags=[ModuleTagRow(tag=tag) for tag in sorted(set(module.tags))],
            )
            session.add(row)
            session.flush()
            if provenance is not None:
                session.add(
                    EnsembleRow(
                        module_id=row.id,
                        target_dataset_id=dataset_row.id,
                        strategy=provenance.strategy,
                        temperature=provenance.temperature,
                        top_k=provenance.top_k,
                        sources=[
                            EnsembleSourceRow(position=i, source_module_id=s.module_id, source_digest=s.digest, score=s.score, weight=s.weight)
                            for i, s in enumerate(provenance.sources)
                        ],
                    )
                )
            return row.id, True

        (module_id, created), generation = self._write(work)
        return self.get_module(module_id), generation if created else None

    def get_module(self, module_id: int) -> ModuleRecord:
        with self.session() as session:
            row = session.scalar(_module_query().where(ModuleRow.id == module_id))
            if row is None:
                raise NotFound(f"no module with id {module_id}; `adapters list` shows the ids")
            return _record(row, _provenance(session, row.id))

    def list_modules(
        self,
        *,
        base_model: str | None = None,
        method: str | None = None,
        category: str | None = None,
        task: str | None = None,
        kind: str | None = None,
        schema_hash: str | None = None,
        dataset_ids: Sequence[int] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[ModuleRecord]:
        query = _module_query().join(ModuleRow.dataset).join(DatasetRow.task).join(ModuleRow.base_model)
        if base_model is not None:
            query = query.where(BaseModelRow.name == base_model)
        if method is not None:
            query = query.where(ModuleRow.method == method)
        if category is not None:
            query = query.where(TaskRow.category == category)
        if task is not None:
            query = query.where(TaskRow.name == task)
        if kind is not None:
            query = query.where(ModuleRow.kind == kind)
        if schema_hash is not None:
            query = query.where(ModuleRow.schema_hash == schema_hash)
        if dataset_ids is not None:
            query = query.where(ModuleRow.dataset_id.in_(list(dataset_ids)))
        if ids is not None:
            query = query.where(ModuleRow.id.in_(list(ids)))
        with self.session() as session:
            return [_record(row) for row in session.scalars(query.order_by(ModuleRow.id))]

    def remove_module(self, module_id: int) -> tuple[ModuleRecord, int]:
        """Delete a module; return what it was and the generation of the write."""
        record = self.get_module(module_id)

        def work(session: Session) -> None:
            row = session.get(ModuleRow, module_id)
            if row is None:
                raise NotFound(f"no module with id {module_id}; `adapters list` shows the ids")
            session.delete(row)

        _, generation = self._write(work)
        return record, generation

    def set_tags(self, module_id: int, add: Iterable[str] = (), remove: Iterable[str] = ()) -> tuple[ModuleRecord, int]:
        """Add and remove tags of a module in one write; return the module and the write's generation."""
        added, removed = sorted(set(add)), sorted(set(remove))

        def work(session: Session) -> None:
            if session.get(ModuleRow, module_id) is None:
                raise NotFound(f"no module with id {module_id}; `adapters list` shows the ids")
            if removed:
                session.execute(delete(ModuleTagRow).where(ModuleTagRow.module_id == module_id, ModuleTagRow.tag.in_(removed)))
            present = set(session.scalars(select(ModuleTagRow.tag).where(ModuleTagRow.module_id == module_id)))
            session.add_all(ModuleTagRow(module_id=module_id, tag=tag) for tag in added if tag not in present)

        _, generation = self._write(work)
        return self.get_module(module_id), generation

    # The index caches read a key and the rows in one snapshot (pass `session`), so the
    # generation an index records is exactly the state its vectors come from.

    def dataset_embeddings(self, session: Session | None = None, after_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(dataset ids, embeddings) of every dataset (with id > after_id) that has at least one module."""
        query = (
            select(DatasetRow.id, DatasetRow.embedding)
            .where(DatasetRow.id.in_(select(ModuleRow.dataset_id)), DatasetRow.id > after_id)
            .order_by(DatasetRow.id)
        )
        return _matrix(self._rows(session, query))

    def parameter_embeddings(self, schema_hash: str, session: Session | None = None, after_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        query = (
            select(ModuleRow.id, ModuleRow.param_embedding)
            .where(ModuleRow.schema_hash == schema_hash, ModuleRow.id > after_id)
            .order_by(ModuleRow.id)
        )
        return _matrix(self._rows(session, query))

    def dataset_key(self, session: Session | None = None) -> tuple[int, int]:
        """(count, sum of ids) of the datasets that have modules: changes whenever that set changes."""
        ids = select(ModuleRow.dataset_id).distinct().subquery()
        query = select(func.count(), func.coalesce(func.sum(ids.c.dataset_id), 0)).select_from(ids)
        count, total = self._rows(session, query)[0]
        return int(count), int(total)

    def parameter_key(self, schema_hash: str, session: Session | None = None) -> tuple[int, int]:
        """(count, sum of ids) of the modules of a schema; ids are never reused, so any change moves it."""
        query = select(func.count(), func.coalesce(func.sum(ModuleRow.id), 0)).where(ModuleRow.schema_hash == schema_hash)
        count, total = self._rows(session, query)[0]
        return int(count), int(total)

    def _rows(self, session: Session | None, query: Any) -> Sequence[Any]:
        if session is not None:
            return session.execute(query).all()
        with self.session() as own:
            return own.execute(query).all()

    def module_blobs(self) -> list[tuple[int, str, str, list[Any]]]:
        """(id, task, blob digest, tensor schema) of every module, for `verify`."""
        with self.session() as session:
            rows = session.execute(
                select(ModuleRow.id, TaskRow.name, ModuleRow.blob_digest, ModuleRow.tensor_schema)
                .join(DatasetRow, ModuleRow.dataset_id == DatasetRow.id)
                .join(TaskRow, DatasetRow.task_id == TaskRow.id)
                .order_by(ModuleRow.id)
            ).all()
        return [(int(r[0]), str(r[1]), str(r[2]), list(r[3])) for r in rows]

    def module_ids(self, session: Session | None = None) -> set[int]:
        return {int(row[0]) for row in self._rows(session, select(ModuleRow.id))}

    def indexed_dataset_ids(self, session: Session | None = None) -> set[int]:
        return {int(row[0]) for row in self._rows(session, select(ModuleRow.dataset_id).distinct())}

    def schema_hashes(self) -> list[str]:
        with self.session() as session:
            return list(session.scalars(select(ModuleRow.schema_hash).distinct().order_by(ModuleRow.schema_hash)))

    def blob_digests(self) -> set[str]:
        with self.session() as session:
            return set(session.scalars(select(ModuleRow.blob_digest)))


class _Retry(StoreError):
    """A transient conflict between writers (lock timeout, deadlock, serialization failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the registry database is busy ({reason.strip().splitlines()[0] if reason.strip() else 'conflict'}); try again")


# SQLSTATEs of PostgreSQL conflicts that succeed when retried.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


@contextmanager
def _database_errors(engine: Engine) -> Iterator[None]:
    """Turn a lost or unreachable database into one line; mark transient conflicts for a retry."""
    try:
        yield
    except IntegrityError:
        raise
    except (OperationalError, DBAPIError) as error:
        code = getattr(getattr(error, "orig", None), "sqlstate", None)
        text = str(getattr(error, "orig", error))
        if code in _RETRY_SQLSTATES or "database is locked" in text or "deadlock" in text:
            raise _Retry(text) from error
        if error.connection_invalidated or isinstance(error, OperationalError):
            raise unreachable(engine, error) from None
        raise


def _bump(session: Session) -> int:
    return int(
        session.execute(
            update(RegistryStateRow).where(RegistryStateRow.id == 1).values(generation=RegistryStateRow.generation + 1).returning(RegistryStateRow.generation)
        ).scalar_one()
    )


def _generation(session: Session) -> int:
    return int(session.scalar(select(RegistryStateRow.generation).where(RegistryStateRow.id == 1)) or 0)


def _module_query():
    return select(ModuleRow).options(
        selectinload(ModuleRow.dataset).selectinload(DatasetRow.task),
        selectinload(ModuleRow.base_model),
        selectinload(ModuleRow.tags),
    )


def _record(row: ModuleRow, provenance: Provenance | None = None) -> ModuleRecord:
    return ModuleRecord(
        id=row.id,
        method=row.method,
        kind=row.kind,
        task=row.dataset.task.name,
        category=row.dataset.task.category,
        task_format=row.dataset.task.format,
        dataset_id=row.dataset_id,
        dataset_fingerprint=row.dataset.fingerprint,
        base_model=row.base_model.name,
        base_model_kind=row.base_model.kind,
        base_arch_hash=row.base_model.arch_hash,
        schema_hash=row.schema_hash,
        num_params=row.num_params,
        blob_digest=row.blob_digest,
        metrics=dict(row.metrics),
        tags=tuple(tag.tag for tag in row.tags),
        created_at=row.created_at,
        created_by=row.created_by,
        created_host=row.created_host,
        config=dict(row.config),
        tensor_schema=list(row.tensor_schema),
        provenance=provenance,
    )


def _provenance(session: Session, module_id: int) -> Provenance | None:
    ensemble = session.scalar(select(EnsembleRow).where(EnsembleRow.module_id == module_id).options(selectinload(EnsembleRow.sources)))
    if ensemble is None:
        return None
    target = session.scalar(select(DatasetRow.fingerprint).where(DatasetRow.id == ensemble.target_dataset_id)) or ""
    return Provenance(
        strategy=ensemble.strategy,
        temperature=ensemble.temperature,
        top_k=ensemble.top_k,
        sources=tuple(SourceWeight(s.source_module_id or 0, s.source_digest, s.score, s.weight) for s in ensemble.sources),
        target_fingerprint=target,
    )


def _task(session: Session, task: TaskInfo) -> TaskRow:
    row = session.scalar(select(TaskRow).where(TaskRow.name == task.name))
    if row is None:
        row = TaskRow(name=task.name, category=task.category, format=task.format, description=task.description, labels=task.labels)
        session.add(row)
        session.flush()
    elif row.format != task.format:
        raise StoreError(f"task {task.name!r} is registered with format {row.format}, not {task.format}; rename the task in its card")
    return row


def _dataset(session: Session, dataset: DatasetInfo, task: TaskRow) -> DatasetRow:
    row = session.scalar(select(DatasetRow).where(DatasetRow.fingerprint == dataset.fingerprint))
    if row is None:
        row = DatasetRow(fingerprint=dataset.fingerprint, task=task, size=dataset.size, source=dataset.source, embedding=vector_bytes(dataset.embedding))
        session.add(row)
        session.flush()
    return row


def _base_model(session: Session, base: BaseModelInfo) -> BaseModelRow:
    row = session.scalar(
        select(BaseModelRow).where(BaseModelRow.name == base.name, BaseModelRow.revision == base.revision, BaseModelRow.arch_hash == base.arch_hash)
    )
    if row is None:
        row = BaseModelRow(name=base.name, revision=base.revision, kind=base.kind, arch_hash=base.arch_hash)
        session.add(row)
        session.flush()
    return row


def _matrix(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    return ids, np.stack([bytes_vector(row[1]) for row in rows])

"""Queries of the catalog. Plain SQLAlchemy Core/ORM that runs the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

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
RETRIES = 5


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

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _write(self, work: Callable[[Session], T]) -> tuple[T, int]:
        """Run a write transaction and return its result with the generation it produced.

        Retries when a concurrent writer inserted the same unique row first. Bumping
        the counter row serializes writers, so `generation - 1` is exactly the state
        this write started from.
        """
        for attempt in range(RETRIES):
            try:
                with self.session() as session:
                    result = work(session)
                    generation = session.execute(
                        update(RegistryStateRow)
                        .where(RegistryStateRow.id == 1)
                        .values(generation=RegistryStateRow.generation + 1)
                        .returning(RegistryStateRow.generation)
                    ).scalar_one()
                    return result, int(generation)
            except IntegrityError:
                if attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def generation(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(RegistryStateRow.generation).where(RegistryStateRow.id == 1)) or 0)

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

    def dataset_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(dataset ids, embeddings) of every dataset that has at least one module."""
        with self.session() as session:
            rows = session.execute(
                select(DatasetRow.id, DatasetRow.embedding).where(DatasetRow.id.in_(select(ModuleRow.dataset_id))).order_by(DatasetRow.id)
            ).all()
        return _matrix(rows)

    def parameter_embeddings(self, schema_hash: str) -> tuple[np.ndarray, np.ndarray]:
        with self.session() as session:
            rows = session.execute(
                select(ModuleRow.id, ModuleRow.param_embedding).where(ModuleRow.schema_hash == schema_hash).order_by(ModuleRow.id)
            ).all()
        return _matrix(rows)

    def dataset_key(self) -> tuple[int, int]:
        """(count, sum of ids) of the datasets that have modules: changes whenever that set changes."""
        with self.session() as session:
            ids = select(ModuleRow.dataset_id).distinct().subquery()
            count, total = session.execute(select(func.count(), func.coalesce(func.sum(ids.c.dataset_id), 0)).select_from(ids)).one()
        return int(count), int(total)

    def parameter_key(self, schema_hash: str) -> tuple[int, int]:
        """(count, sum of ids) of the modules of a schema; ids are never reused, so any change moves it."""
        with self.session() as session:
            count, total = session.execute(
                select(func.count(), func.coalesce(func.sum(ModuleRow.id), 0)).where(ModuleRow.schema_hash == schema_hash)
            ).one()
        return int(count), int(total)

    def schema_hashes(self) -> list[str]:
        with self.session() as session:
            return list(session.scalars(select(ModuleRow.schema_hash).distinct().order_by(ModuleRow.schema_hash)))

    def blob_digests(self) -> set[str]:
        with self.session() as session:
            return set(session.scalars(select(ModuleRow.blob_digest)))


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

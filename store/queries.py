"""Read-side queries of the catalog: functions of an open session, the same on SQLite and PostgreSQL.

The index caches run a key query and a rows query in one snapshot session, so the
generation an index records is exactly the state its vectors come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, contains_eager, defer, joinedload, selectinload

from store.errors import NotFound
from store.models import BaseModelRow, DatasetRow, EnsembleRow, ModuleRow, RegistryStateRow, TaskRow, bytes_vector
from store.module_query import ModuleQuery
from store.records import ModuleRecord, Provenance, SourceWeight


def generation(session: Session) -> int:
    """The registry generation (bumped by every write) as this session's transaction sees it."""
    return int(session.scalar(select(RegistryStateRow.generation).where(RegistryStateRow.id == 1)) or 0)


def registry_id(session: Session) -> str:
    return str(session.scalar(select(RegistryStateRow.registry_id).where(RegistryStateRow.id == 1)) or "")


def blob_location(session: Session) -> str:
    return str(session.scalar(select(RegistryStateRow.blob_location).where(RegistryStateRow.id == 1)) or "")


def get_module(session: Session, module_id: int) -> ModuleRecord:
    row = session.scalar(_modules().where(ModuleRow.id == module_id))
    if row is None:
        raise NotFound(module_id)
    return _record(row)


def list_modules(session: Session, query: ModuleQuery) -> list[ModuleRecord]:
    """Modules matching `query`, by id; the same records as `get_module`, provenance included."""
    select_modules = _modules()
    if query.base_model is not None:
        select_modules = select_modules.where(BaseModelRow.name == query.base_model)
    if query.method is not None:
        select_modules = select_modules.where(ModuleRow.method == query.method)
    if query.category is not None:
        select_modules = select_modules.where(TaskRow.category == query.category)
    if query.task is not None:
        select_modules = select_modules.where(TaskRow.name == query.task)
    if query.dataset_ids is not None:
        select_modules = select_modules.where(ModuleRow.dataset_id.in_(list(query.dataset_ids)))
    if query.ids is not None:
        select_modules = select_modules.where(ModuleRow.id.in_(list(query.ids)))
    return [_record(row) for row in session.scalars(select_modules.order_by(ModuleRow.id))]


def dataset_embedding(session: Session, fingerprint: str) -> np.ndarray | None:
    data = session.scalar(select(DatasetRow.embedding).where(DatasetRow.fingerprint == fingerprint))
    return None if data is None else bytes_vector(data).copy()


def dataset_embeddings(session: Session, after_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(dataset ids, embeddings) of every dataset (with id > after_id) that has at least one module."""
    query = select(DatasetRow.id, DatasetRow.embedding).where(DatasetRow.id.in_(select(ModuleRow.dataset_id)), DatasetRow.id > after_id).order_by(DatasetRow.id)
    return _matrix(session.execute(query).all())


def parameter_embeddings(session: Session, schema_hash: str, after_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(module ids, parameter embeddings) of the modules of a tensor schema (with id > after_id)."""
    query = select(ModuleRow.id, ModuleRow.param_embedding).where(ModuleRow.schema_hash == schema_hash, ModuleRow.id > after_id).order_by(ModuleRow.id)
    return _matrix(session.execute(query).all())


def dataset_key(session: Session) -> tuple[int, int]:
    """(count, sum of ids) of the datasets that have modules: changes whenever that set changes."""
    # Modules without a dataset are not in the dataset index: their NULL is not a dataset.
    ids = select(ModuleRow.dataset_id).where(ModuleRow.dataset_id.is_not(None)).distinct().subquery()
    count, total = session.execute(select(func.count(), func.coalesce(func.sum(ids.c.dataset_id), 0)).select_from(ids)).one()
    return int(count), int(total)


def parameter_key(session: Session, schema_hash: str) -> tuple[int, int]:
    """(count, sum of ids) of the modules of a schema; ids are never reused, so any change moves it."""
    query = select(func.count(), func.coalesce(func.sum(ModuleRow.id), 0)).where(ModuleRow.schema_hash == schema_hash)
    count, total = session.execute(query).one()
    return int(count), int(total)


def module_blobs(session: Session) -> list[tuple[int, str, str, list[Any]]]:
    """(id, task, blob digest, tensor schema) of every module, for `verify`."""
    rows = session.execute(
        select(ModuleRow.id, TaskRow.name, ModuleRow.blob_digest, ModuleRow.tensor_schema).join(TaskRow, ModuleRow.task_id == TaskRow.id).order_by(ModuleRow.id)
    ).all()
    return [(int(r[0]), str(r[1]), str(r[2]), list(r[3])) for r in rows]


def module_ids(session: Session) -> set[int]:
    return set(session.scalars(select(ModuleRow.id)))


def indexed_dataset_ids(session: Session) -> set[int]:
    """Ids of the datasets that have modules (those the dataset index holds)."""
    return set(session.scalars(select(ModuleRow.dataset_id).where(ModuleRow.dataset_id.is_not(None)).distinct()))


def schema_hashes(session: Session) -> list[str]:
    return list(session.scalars(select(ModuleRow.schema_hash).distinct().order_by(ModuleRow.schema_hash)))


def blob_digests(session: Session) -> set[str]:
    return set(session.scalars(select(ModuleRow.blob_digest)))


def _modules() -> Select[tuple[ModuleRow]]:
    """Modules with all a record shows, in the same few queries however many match: one joined
    query for the module and its task, dataset (an outer join: a module may have none), base model
    and ensemble, one for the tags, one for the ensemble sources. The embeddings, which a record
    does not show, stay in the database."""
    return (
        select(ModuleRow)
        .join(ModuleRow.task)
        .outerjoin(ModuleRow.dataset)
        .join(ModuleRow.base_model)
        .options(
            defer(ModuleRow.param_embedding),
            contains_eager(ModuleRow.task),
            contains_eager(ModuleRow.dataset).defer(DatasetRow.embedding),
            contains_eager(ModuleRow.base_model),
            selectinload(ModuleRow.tags),
            joinedload(ModuleRow.ensemble).options(joinedload(EnsembleRow.target_dataset).defer(DatasetRow.embedding), selectinload(EnsembleRow.sources)),
        )
    )


def _record(row: ModuleRow) -> ModuleRecord:
    return ModuleRecord(
        id=row.id,
        method=row.method,
        origin=row.origin,
        task=row.task.name,
        category=row.task.category,
        task_format=row.task.format,
        dataset_id=row.dataset_id,
        dataset_fingerprint=row.dataset.fingerprint if row.dataset is not None else None,
        base_model=row.base_model.name,
        base_model_family=row.base_model.family,
        base_arch_hash=row.base_model.arch_hash,
        base_revision=row.base_model.revision,
        schema_hash=row.schema_hash,
        num_params=row.num_params,
        blob_digest=row.blob_digest,
        metrics=dict(row.metrics),
        tags=tuple(tag.tag for tag in row.tags),
        created_at=row.created_at,
        created_by=row.created_by,
        created_host=row.created_host,
        source=row.source,
        card=row.card,
        task_description=row.task.description,
        task_labels=dict(row.task.labels),
        dataset_size=row.dataset.size if row.dataset is not None else None,
        dataset_splits=dict(row.dataset.split_sizes or {}) if row.dataset is not None else {},
        config=dict(row.config),
        tensor_schema=list(row.tensor_schema),
        provenance=None if row.ensemble is None else _provenance(row.ensemble),
    )


def _provenance(ensemble: EnsembleRow) -> Provenance:
    return Provenance(
        strategy=ensemble.strategy,
        temperature=ensemble.temperature,
        top_k=ensemble.top_k,
        # A removed source keeps its digest; its id is gone (0).
        sources=tuple(SourceWeight(s.source_module_id or 0, s.source_digest, s.score, s.weight) for s in ensemble.sources),
        target_fingerprint=ensemble.target_dataset.fingerprint,
        chosen=ensemble.chosen,
        rationale=ensemble.rationale,
        layers=ensemble.layers,
        combine=ensemble.combine,
    )


def _matrix(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    return ids, np.stack([bytes_vector(row[1]) for row in rows])

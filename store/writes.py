"""The catalog's write transaction: every write bumps the registry generation, and is retried
when it loses a race it could not see coming."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import queries
from store.db import WRITE_OPTION, database_errors, display_url, is_sqlite
from store.errors import DatabaseBusy, NotFound, StoreError
from store.models import (
    BaseModelRow,
    DatasetRow,
    EnsembleRow,
    EnsembleSourceRow,
    ModuleRow,
    ModuleTagRow,
    RegistryStateRow,
    TaskRow,
    vector_bytes,
)
from store.records import UNKNOWN_FORMAT, BaseModelInfo, DatasetInfo, NewModule, Provenance, TaskInfo

T = TypeVar("T")
# A write is retried when it loses a race it cannot see coming (a unique row inserted
# by a writer that does not take the generation lock, a lock timeout, a deadlock).
RETRIES = 8


class WriteTransaction:
    """Runs write transactions in generation order.

    Writers take turns on the generation: on SQLite, BEGIN IMMEDIATE holds the write
    lock for the whole transaction; on PostgreSQL the bump is the last statement, so
    its row lock is held only until the commit. Either way writes commit in generation
    order, and the state at `generation` is the state at `generation - 1` plus this
    write (two writers racing to insert the same unique row: the loser's insert fails
    once the winner commits, and the retry finds the row).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        self._bump_first = is_sqlite(engine)

    def run(self, work: Callable[[Session], T]) -> tuple[T, int]:
        """Run `work` in one write transaction; return its result and the generation the write produced."""
        for attempt in range(RETRIES):
            try:
                with database_errors(self.engine), self._sessions.begin() as session:
                    if self._bump_first:
                        generation = _bump(session)
                        result = work(session)
                    else:
                        result = work(session)
                        session.flush()
                        generation = _bump(session)
                    return result, generation
            except (IntegrityError, DatabaseBusy):
                if attempt == RETRIES - 1:
                    raise StoreError(f"a write to {display_url(self.engine)} kept conflicting with other writers; try again") from None
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")


def add_module(
    session: Session, module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None
) -> tuple[int, bool]:
    """Insert a module (and its task, dataset, base model rows if new); return its id and whether it is new.

    Without a dataset (a module described only by its task), the same weights on the same base model
    already registered, with a dataset or without, are that module: the dataset-less push adds nothing.
    """
    task_row = _task(session, task)
    dataset_row = _dataset(session, dataset, task_row) if dataset is not None else None
    base_row = _base_model(session, base_model)
    same_weights = select(ModuleRow.id).where(ModuleRow.base_model_id == base_row.id, ModuleRow.blob_digest == module.blob_digest)
    if dataset_row is not None:
        same_weights = same_weights.where(ModuleRow.dataset_id == dataset_row.id)
    existing = session.scalar(same_weights.order_by(ModuleRow.id).limit(1))
    if existing is not None:
        return existing, False
    row = ModuleRow(
        base_model=base_row,
        task=task_row,
        dataset=dataset_row,
        method=module.method,
        config=module.config,
        tensor_schema=module.tensor_schema,
        schema_hash=module.schema_hash,
        num_params=module.num_params,
        blob_digest=module.blob_digest,
        metrics=module.metrics,
        param_embedding=vector_bytes(module.param_embedding),
        origin=module.origin,
        created_by=module.created_by,
        created_host=module.created_host,
        source=module.source,
        card=module.card,
        tags=[ModuleTagRow(tag=tag) for tag in sorted(set(module.tags))],
        ensemble=None if provenance is None else _ensemble(provenance, dataset_row),
    )
    session.add(row)
    session.flush()
    return row.id, True


def remove_module(session: Session, module_id: int) -> None:
    row = session.get(ModuleRow, module_id)
    if row is None:
        raise NotFound(module_id)
    session.delete(row)


def check_blob_location(session: Session, blobs_at: str) -> None:
    recorded = queries.blob_location(session)
    if recorded and blobs_at and recorded != blobs_at:
        raise StoreError(
            f"this registry's blobs were moved to {recorded}, and this process still writes them to {blobs_at}; reopen the registry (restart the server)"
        )


def switch_blob_location(session: Session, where: str, present: set[str]) -> set[str]:
    """The referenced digests not in `present`; when there are none, `where` becomes the recorded blob location."""
    missing = queries.blob_digests(session) - present
    if not missing:
        session.execute(update(RegistryStateRow).where(RegistryStateRow.id == 1).values(blob_location=where))
    return missing


def _bump(session: Session) -> int:
    return int(
        session.execute(
            update(RegistryStateRow).where(RegistryStateRow.id == 1).values(generation=RegistryStateRow.generation + 1).returning(RegistryStateRow.generation)
        ).scalar_one()
    )


def _task(session: Session, task: TaskInfo) -> TaskRow:
    row = session.scalar(select(TaskRow).where(TaskRow.name == task.name))
    if row is None:
        row = TaskRow(name=task.name, category=task.category, format=task.format, description=task.description, labels=dict(task.labels))
        session.add(row)
        session.flush()
    elif row.format == UNKNOWN_FORMAT and task.format != UNKNOWN_FORMAT:
        # The task was known only from a model card; its first dataset says what it is.
        row.format, row.description, row.labels = task.format, task.description, dict(task.labels)
    elif task.format not in (row.format, UNKNOWN_FORMAT):
        raise StoreError(f"task {task.name!r} is registered with format {row.format}, not {task.format}; rename the task in its card")
    return row


def _dataset(session: Session, dataset: DatasetInfo, task: TaskRow) -> DatasetRow:
    row = session.scalar(select(DatasetRow).where(DatasetRow.fingerprint == dataset.fingerprint))
    if row is None:
        row = DatasetRow(
            fingerprint=dataset.fingerprint,
            task=task,
            size=dataset.size,
            split_sizes=dict(dataset.split_sizes) or None,
            source=dataset.source,
            embedding=vector_bytes(dataset.embedding),
        )
        session.add(row)
        session.flush()
    return row


def _base_model(session: Session, base: BaseModelInfo) -> BaseModelRow:
    row = session.scalar(
        select(BaseModelRow).where(BaseModelRow.name == base.name, BaseModelRow.revision == base.revision, BaseModelRow.arch_hash == base.arch_hash)
    )
    if row is None:
        row = BaseModelRow(name=base.name, revision=base.revision, family=base.family, arch_hash=base.arch_hash)
        session.add(row)
        session.flush()
    return row


def _ensemble(provenance: Provenance, target: DatasetRow) -> EnsembleRow:
    sources = [
        # Module id 0 names a source this registry does not hold (a removed one, or one an imported card names by digest).
        EnsembleSourceRow(position=i, source_module_id=s.module_id or None, source_digest=s.digest, score=s.score, weight=s.weight)
        for i, s in enumerate(provenance.sources)
    ]
    return EnsembleRow(
        target_dataset=target, strategy=provenance.strategy, temperature=provenance.temperature, top_k=provenance.top_k,
        chosen=provenance.chosen, rationale=provenance.rationale, layers=provenance.layers, combine=provenance.combine, sources=sources,
    )  # fmt: skip

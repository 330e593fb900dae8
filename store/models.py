"""The catalog's tables. The schema is made only by the Alembic migrations in `migrations/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Fixed constraint names keep SQLite and PostgreSQL migrations identical.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def vector_bytes(vector: np.ndarray) -> bytes:
    """An embedding as stored in a LargeBinary column: float32, native byte order."""
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def bytes_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class BaseModelRow(Base):
    """A frozen backbone: its name, revision and the hash of its parameter names and shapes."""

    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("name", "revision", "arch_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    revision: Mapped[str] = mapped_column(String(128), default="")
    # cross-encoder, seq2seq or causal: decides how a module's predictions are read.
    family: Mapped[str] = mapped_column(String(32))
    arch_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    category: Mapped[str] = mapped_column(String(256), index=True)
    format: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class DatasetRow(Base):
    """The examples of a task, known by fingerprint, with their dataset embedding."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    split_sizes: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)  # None: registered before 0011 recorded it
    source: Mapped[str] = mapped_column(Text, default="")
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    task: Mapped[TaskRow] = relationship()


class ModuleRow(Base):
    """A trained (or composed) module: its task, config, tensor schema, blob address, metrics, parameter embedding.

    `dataset_id` is None for a module pushed without a dataset (described by its model card or
    --task/--category): it has a task but no dataset embedding, so dataset search cannot find it.
    """

    __tablename__ = "modules"
    # The same weights for the same base model and dataset are one module: pushes are idempotent.
    # NULLs are distinct in a unique constraint, so a module without a dataset is kept unique by a partial index.
    # AUTOINCREMENT on SQLite: a removed module's id is never handed out again (index caches key on it).
    __table_args__ = (
        UniqueConstraint("base_model_id", "dataset_id", "blob_digest"),
        Index(
            "uq_modules_without_dataset",
            "base_model_id",
            "blob_digest",
            unique=True,
            sqlite_where=text("dataset_id IS NULL"),
            postgresql_where=text("dataset_id IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    # The module's task; for a module with a dataset, the dataset's task (a module without one still has a task).
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), index=True, nullable=True)
    method: Mapped[str] = mapped_column(String(32), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    tensor_schema: Mapped[list[Any]] = mapped_column(JSON)
    schema_hash: Mapped[str] = mapped_column(String(64), index=True)
    num_params: Mapped[int] = mapped_column(BigInteger)
    blob_digest: Mapped[str] = mapped_column(String(64), index=True)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    param_embedding: Mapped[bytes] = mapped_column(LargeBinary)
    # trained, or ensemble (a composed init, with its provenance in `ensemble`).
    origin: Mapped[str] = mapped_column(String(16), default="trained")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    # The machine a module was pushed from: a shared registry has writers on many hosts.
    created_host: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # Where the module came from when it was not trained here, e.g. hf://ORG/NAME@SHA ("" when unknown).
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The model card (README.md) the module was pushed with, "" when it had none: export keeps what it said.
    card: Mapped[str] = mapped_column(Text, default="", server_default="")

    base_model: Mapped[BaseModelRow] = relationship()
    task: Mapped[TaskRow] = relationship()
    dataset: Mapped[DatasetRow | None] = relationship()
    tags: Mapped[list[ModuleTagRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True, order_by="ModuleTagRow.tag")
    ensemble: Mapped[EnsembleRow | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class ModuleTagRow(Base):
    __tablename__ = "module_tags"

    module_id: Mapped[int] = mapped_column(ForeignKey("modules.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)


class EnsembleRow(Base):
    """Provenance of a composed init: for which target, with which strategy (what auto chose, and why), temperature, layers and operator."""

    __tablename__ = "ensembles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    module_id: Mapped[int] = mapped_column(ForeignKey("modules.id", ondelete="CASCADE"), unique=True)
    target_dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    strategy: Mapped[str] = mapped_column(String(64))
    temperature: Mapped[float] = mapped_column(Float)
    top_k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A choosing strategy (auto): the strategy whose init it kept, and why.
    chosen: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rationale: Mapped[str] = mapped_column(Text, default="", server_default="")
    layers: Mapped[str | None] = mapped_column(String(128), nullable=True)
    combine: Mapped[str] = mapped_column(String(64), default="linear", server_default="linear")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    target_dataset: Mapped[DatasetRow] = relationship()
    sources: Mapped[list[EnsembleSourceRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True, order_by="EnsembleSourceRow.position")


class EnsembleSourceRow(Base):
    """One source of an ensemble; its digest survives the source module's removal."""

    __tablename__ = "ensemble_sources"

    ensemble_id: Mapped[int] = mapped_column(ForeignKey("ensembles.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_module_id: Mapped[int | None] = mapped_column(ForeignKey("modules.id", ondelete="SET NULL"), nullable=True, index=True)
    source_digest: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight: Mapped[float] = mapped_column(Float)


class RegistryStateRow(Base):
    """One row whose generation grows with every catalog write: index caches compare against it.

    Every write transaction bumps it first, so the row lock serializes writers (on
    SQLite, BEGIN IMMEDIATE does the same). `registry_id` names the registry; its
    blob directory carries the same id, so a mixed-up blob directory is refused.
    `blob_location` is where `blobs copy` moved the blobs (a directory or s3://BUCKET/PREFIX);
    empty while the opener names them (or a directory registry keeps them in its blobs/).
    """

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    registry_id: Mapped[str] = mapped_column(String(32), default="", server_default="")
    blob_location: Mapped[str] = mapped_column(String(1024), default="", server_default="")


class TokenRow(Base):
    """An API token of the registry server: a name, a scope and the sha256 of its secret (the secret itself is never stored).

    A revoked token keeps its row (and its name) so that `revoked_at` says when it stopped working.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # read, write or admin: each includes the ones before it (store.tokens.SCOPES).
    scope: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Updated at most once a minute per token, so authenticated reads do not write on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

"""What the catalog takes in and hands out: frozen records, free of database sessions and rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

# The format of a task known only from a module's model card or --task/--category: no examples say it.
# A later push with a dataset of that task fills it in.
UNKNOWN_FORMAT = "unknown"


@dataclass(frozen=True)
class TaskInfo:
    """What a task is: its name, category, format and label verbalizations (hub calls it a task card).

    A task described only by a model card or --task/--category has format UNKNOWN_FORMAT and no labels.
    """

    name: str
    category: str
    format: str
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category, "format": self.format, "description": self.description, "labels": dict(self.labels)}


@dataclass(frozen=True)
class DatasetInfo:
    fingerprint: str
    size: int
    source: str
    embedding: np.ndarray


@dataclass(frozen=True)
class BaseModelInfo:
    """A backbone; `family` (cross-encoder, seq2seq, causal) says how its predictions are read."""

    name: str
    family: str
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
    """How a composed init came to be: target dataset, strategy (and what auto chose, and why), temperature, sources and weights."""

    strategy: str
    temperature: float
    top_k: int | None
    sources: tuple[SourceWeight, ...]
    target_fingerprint: str = ""
    chosen: str | None = None  # the strategy whose init a choosing strategy (auto) kept
    rationale: str = ""  # why, in one line
    layers: str | None = None  # the layers composed (None: every layer)


@dataclass(frozen=True)
class NewModule:
    """A module to register; `origin` is "trained", or "ensemble" for a composed init."""

    method: str
    config: dict[str, Any]
    tensor_schema: list[Any]
    schema_hash: str
    num_params: int
    blob_digest: str
    param_embedding: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    origin: str = "trained"
    created_by: str = ""
    created_host: str = ""
    source: str = ""  # where it came from, e.g. hf://ORG/NAME@SHA; "" when unknown


@dataclass(frozen=True)
class ModuleRecord:
    """A module as the catalog knows it, joined with its task, dataset, base model and provenance (ensembles).

    `dataset_id` and `dataset_fingerprint` are None for a module pushed without a dataset.
    """

    id: int
    method: str
    origin: str
    task: str
    category: str
    task_format: str
    dataset_id: int | None
    dataset_fingerprint: str | None
    base_model: str
    base_model_family: str
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
    base_revision: str = ""  # the base model's pinned revision ("" where none was recorded)
    source: str = ""  # where the module came from, e.g. hf://ORG/NAME@SHA ("" when unknown)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["tags"] = list(self.tags)
        return data

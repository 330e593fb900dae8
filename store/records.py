"""What the catalog takes in and hands out: frozen records, free of database sessions and rows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from store.errors import InvalidName

# The format of a task known only from a module's model card or --task/--category: no examples say it.
# A later push with a dataset of that task fills it in.
UNKNOWN_FORMAT = "unknown"

# What a task and a category may be named. Names travel into URLs, file names and exported model cards
# (`datasets:`), so they follow the Hugging Face Hub's rule for repo names: letters, digits, '-', '_', '.',
# starting and ending with a letter or digit, no '..', at most 96 characters. A task may be a Hub dataset
# id ORG/NAME (what a Hub card's `datasets:` holds); a category may have spaces between its words.
_WORD = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
NAME_LENGTH = 96
NAME_RULES = {
    "task": (re.compile(rf"{_WORD}(?:/{_WORD})?"), "letters, digits, '-', '_' and '.', optionally as ORG/NAME"),
    "category": (re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]*[A-Za-z0-9])?"), "letters, digits, spaces, '-', '_' and '.'"),
}


def check_name(kind: str, name: str) -> str:
    """`name` when it is a valid task or category name (`kind`); else InvalidName, naming the rule."""
    pattern, allowed = NAME_RULES[kind]
    if not isinstance(name, str) or not pattern.fullmatch(name) or ".." in name or len(name) > NAME_LENGTH:
        raise InvalidName(
            f"{kind} name {name!r} is not allowed: a {kind} name is {allowed}, starts and ends with a letter or digit, "
            f"has no '..' and at most {NAME_LENGTH} characters"
        )
    return name


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

    def __post_init__(self) -> None:
        # Every way a task enters the registry (task.json, a model card, --task, a server client) builds one of these.
        check_name("task", self.name)
        check_name("category", self.category)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category, "format": self.format, "description": self.description, "labels": dict(self.labels)}


@dataclass(frozen=True)
class DatasetInfo:
    fingerprint: str
    size: int
    source: str
    embedding: np.ndarray
    split_sizes: Mapping[str, int] = field(default_factory=dict)  # examples per split (train, dev, test)


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
    """How a composed init came to be: target dataset, strategy (and what auto chose, and why), temperature, sources and weights, operator."""

    strategy: str
    temperature: float
    top_k: int | None
    sources: tuple[SourceWeight, ...]
    target_fingerprint: str = ""
    chosen: str | None = None  # the strategy whose init a choosing strategy (auto) kept
    rationale: str = ""  # why, in one line
    layers: str | None = None  # the layers composed (None: every layer)
    combine: str = "linear"  # the composition operator (`svd`, `ties:0.2`; ensembling.operators)


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
    card: str = ""  # the model card (README.md) it was pushed with; "" when none


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
    card: str = ""  # the model card (README.md) it was pushed with ("" when none); export keeps what it says
    task_description: str = ""  # the task card's description and label verbalizations (none for a task known only from a model card)
    task_labels: dict[str, str] = field(default_factory=dict)
    dataset_size: int | None = None  # examples in the dataset's splits (None: pushed without a dataset)
    dataset_splits: dict[str, int] = field(default_factory=dict)  # examples per split ({}: not recorded, or no dataset)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["tags"] = list(self.tags)
        return data

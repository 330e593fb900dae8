"""`ModuleQuery`: which modules `list_modules` returns, defined once for the catalog, the server and its clients.

The local catalog turns it into SQL (store/queries.py); a client of a registry server sends it as the
query parameters of GET /api/v1/modules (`to_params`), and the server reads it back (`from_params`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

ID_LISTS = ("dataset_ids", "ids")


@dataclass(frozen=True)
class ModuleQuery:
    """Modules matching every filter given, listed by id; a filter left None matches every module."""

    base_model: str | None = field(default=None, metadata={"doc": "only modules of this base model (its name)"})
    method: str | None = field(default=None, metadata={"doc": "only modules of this PET method"})
    category: str | None = field(default=None, metadata={"doc": "only modules of tasks in this category"})
    task: str | None = field(default=None, metadata={"doc": "only modules of this task"})
    dataset_ids: Sequence[int] | None = field(default=None, metadata={"doc": "only modules trained on these datasets (comma-separated ids)"})
    ids: Sequence[int] | None = field(default=None, metadata={"doc": "only these modules (comma-separated ids)"})

    def __post_init__(self) -> None:
        # Any sequence of ids is accepted; a tuple of ints is kept, so queries compare and hash by value.
        for name in ID_LISTS:
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, tuple(int(value) for value in values))

    def to_params(self) -> dict[str, str]:
        """The query as HTTP query parameters: the filters given, id lists comma-separated."""
        params = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                params[item.name] = ",".join(str(number) for number in value) if item.name in ID_LISTS else str(value)
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ModuleQuery:
        """The query `to_params` wrote; ValueError names a malformed id list. Other parameters are ignored."""
        given: dict[str, object] = {}
        for item in fields(cls):
            value = params.get(item.name)
            if value is None:
                continue
            if item.name in ID_LISTS:
                parts = value.split(",") if value else []
                if not all(part.isascii() and part.isdigit() for part in parts):
                    raise ValueError(f"{item.name} must be comma-separated ids, got {value!r}")
                given[item.name] = [int(part) for part in parts]
            else:
                given[item.name] = value
        return cls(**given)

    def split(self, most_ids: int) -> list[ModuleQuery]:
        """This query as queries of at most `most_ids` ids (and dataset ids) each; the union of their answers is its answer."""
        chunked: dict[str, list[Sequence[int] | None]] = {}
        for name in ID_LISTS:
            values = getattr(self, name)
            chunked[name] = [values] if values is None or len(values) <= most_ids else [values[i : i + most_ids] for i in range(0, len(values), most_ids)]
        return [replace(self, dataset_ids=dataset_ids, ids=ids) for dataset_ids, ids in itertools.product(chunked["dataset_ids"], chunked["ids"])]

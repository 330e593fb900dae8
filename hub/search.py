"""What a registry search returns."""

from __future__ import annotations

from dataclasses import dataclass

from store.records import ModuleRecord


@dataclass(frozen=True)
class SearchHit:
    """A module found by a search and its cosine similarity to the query."""

    module: ModuleRecord
    similarity: float

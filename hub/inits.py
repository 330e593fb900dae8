"""A composed init for a target: per-source scores and weights, the tensors, and their provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hub.methods import Method
from store.catalog import ModuleRecord, Provenance


@dataclass(frozen=True)
class SourceRow:
    module_id: int
    task: str
    category: str
    score: float | None
    weight: float


@dataclass
class TransferResult:
    """An ensemble for a target: per-source scores and weights, the composed module and its provenance."""

    strategy: str
    temperature: float
    top_k: int | None
    method: Method
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    sources: list[SourceRow]
    provenance: Provenance
    base_model: str
    target: str
    record: ModuleRecord | None = None
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0
    tuning_steps: int = 0

    @property
    def weights(self) -> dict[int, float]:
        return {row.module_id: row.weight for row in self.sources}

    @property
    def effective_sources(self) -> float:
        """1 / Σ w²: how many sources a uniform weighting of the same concentration would use."""
        total = sum(row.weight**2 for row in self.sources)
        return 1.0 / total if total > 0 else 0.0

    @property
    def scores(self) -> dict[int, float | None]:
        return {row.module_id: row.score for row in self.sources}

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the init as a module folder (PEFT layout, or the method's own format)."""
        target = Path(folder)
        self.method.write_folder(target, self.config, self.tensors, self.base_model)
        return target

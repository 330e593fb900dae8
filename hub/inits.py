"""A composed init for a target: the ensemble (per-source scores and weights, the tensors) and its provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ensembling.ensemble import Ensemble, SourceWeight
from ensembling.strategies import Decision
from hub.methods import Method
from store.records import ModuleRecord, Provenance


@dataclass
class TransferResult:
    """An ensemble for a target (scores, weights, composed tensors) with the method that reads it and its provenance."""

    ensemble: Ensemble
    method: Method
    config: dict[str, Any]
    provenance: Provenance
    base_model: str
    target: str
    record: ModuleRecord | None = None
    skipped: tuple[str, ...] = ()

    @property
    def strategy(self) -> str:
        return self.ensemble.strategy

    @property
    def temperature(self) -> float:
        return self.ensemble.temperature

    @property
    def top_k(self) -> int | None:
        return self.ensemble.top_k

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        return self.ensemble.tensors

    @property
    def sources(self) -> tuple[SourceWeight, ...]:
        return self.ensemble.sources

    @property
    def weights(self) -> dict[int, float]:
        return self.ensemble.weights

    @property
    def decision(self) -> Decision | None:
        """What a choosing strategy (auto, guarded) decided and why: the strategy or default init it kept, and its trials.

        group-average decides only when no source shares the target's category: it then keeps the default init,
        and says so here.

        None for a strategy that only weighed sources (loss, el2n, average, …): its weights are the whole answer.
        """
        return self.ensemble.decision

    @property
    def effective_sources(self) -> float:
        return self.ensemble.effective_sources

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the init as a module folder (PEFT layout, or the method's own format)."""
        target = Path(folder)
        self.method.write_folder(target, self.config, self.tensors, self.base_model)
        return target

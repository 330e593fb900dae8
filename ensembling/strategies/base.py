"""The contract every strategy meets; one strategy lives in one file of this package.

A strategy says how it picks its sources (`select`), what it computes once per
target (`prepare`, e.g. a reference module trained on the target) and how it
scores one source (`score`). `scores_to_weights` then turns scores into weights
with the strategy's sign and default temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ensembling.candidates import Candidate, Evaluator, Target, Tensors
from ensembling.errors import EnsemblingError

# Paper defaults (DESIGN.md): steps of the briefly trained reference θ_t, and of per-source tuning.
REFERENCE_STEPS = 100
TUNE_STEPS = 200


@dataclass
class Context:
    """Everything a strategy may read while scoring one target."""

    target: Target
    evaluator: Evaluator | None
    seed: int = 0
    reference_steps: int = REFERENCE_STEPS
    tune_steps: int = TUNE_STEPS
    state: dict[str, object] = field(default_factory=dict)

    def need_evaluator(self, strategy: str) -> Evaluator:
        if self.evaluator is None:
            raise EnsemblingError(f"strategy {strategy} needs a model to evaluate candidates on the target's data")
        return self.evaluator


@dataclass(frozen=True)
class Scored:
    """A source's score, and the tensors to compose in its place when a strategy tunes it (performance)."""

    score: float
    tensors: Tensors | None = None


class Strategy:
    """Base class: override `score` (data or weight based) or set `uniform` (baselines)."""

    name: ClassVar[str]
    sign: ClassVar[int] = -1
    temperature: ClassVar[float] = 0.1
    znorm: ClassVar[bool] = False
    needs_model: ClassVar[bool] = True
    uniform: ClassVar[bool] = False  # baselines: equal weights, no scores
    transfer: ClassVar[bool] = True  # False: no sources, the method's default init
    summary: ClassVar[str] = ""

    def select(self, candidates: Sequence[Candidate], target: Target) -> list[Candidate]:
        """The sources this strategy weights; reads only metadata (tensors may not be loaded yet)."""
        return list(candidates)

    def prepare(self, context: Context) -> None:
        """Work done once per target before any source is scored."""

    def score(self, context: Context, candidate: Candidate) -> Scored:
        raise NotImplementedError(f"strategy {self.name} does not score candidates")


def rows_of(context: Context, candidate: Candidate, strategy: str):
    evaluator = context.need_evaluator(strategy)
    evaluator.apply(candidate.tensors)
    return evaluator.rows()


def detached(tensors: Tensors) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in tensors.items()}

"""One ensemble: a strategy weights the sources, the weighted sum of their tensors is the init."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ensembling.candidates import Candidate, Evaluator, Target
from ensembling.errors import EnsemblingError
from ensembling.layers import depth, parse_layers, restrict
from ensembling.operators import LINEAR, Operator, check_operator, parse_operator
from ensembling.strategies import Composition, Context, Strategy, Weighted, Weighting
from ensembling.strategies.base import REFERENCE_STEPS, TUNE_STEPS, Decision, Progress
from ensembling.weights import check_temperature, check_top_k

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Options:
    """How to weight: temperature and znorm default to the strategy's own (docs/strategies.md).

    `reference_steps` / `tune_steps` cap the training of θ_t and of each tuned source (both
    keep their best k-shot dev checkpoint; auto's cross-validation trains under `reference_steps`);
    `pool_size` is random-pool's and retrieval's number of sources; `layers` (`upper`, `lower`,
    or indices such as 0,4-5) composes only those layers and keeps the default init in the others;
    `combine` is the composition operator (`linear`, `svd`, `ties:0.5`, …; see ensembling.operators).
    """

    temperature: float | None = None
    top_k: int | None = None
    znorm: bool | None = None
    seed: int = 0
    reference_steps: int = REFERENCE_STEPS
    tune_steps: int = TUNE_STEPS
    pool_size: int = 3
    layers: str | None = None
    combine: str = LINEAR

    @property
    def operator(self) -> Operator:
        return parse_operator(self.combine)

    def __post_init__(self) -> None:
        # Checked where options are made, so a bad value is refused before any work.
        if self.temperature is not None:
            check_temperature(self.temperature)
        check_top_k(self.top_k)
        if self.reference_steps < 1 or self.tune_steps < 1:
            raise EnsemblingError("--steps must be at least 1")
        if self.pool_size < 1:
            raise EnsemblingError(f"--pool-size must be at least 1, got {self.pool_size}")
        parse_operator(self.combine)


@dataclass(frozen=True)
class SourceWeight:
    """A source, as composed (tuned tensors for a strategy that tunes), with its score and weight."""

    candidate: Candidate
    score: float | None
    weight: float

    @property
    def module_id(self) -> int:
        return self.candidate.id

    @property
    def task(self) -> str:
        return self.candidate.task

    @property
    def category(self) -> str:
        return self.candidate.category


@dataclass(frozen=True)
class Ensemble:
    """The scores and weights of the sources and the composed module's tensors."""

    strategy: str
    temperature: float
    top_k: int | None
    znorm: bool
    sources: tuple[SourceWeight, ...]
    tensors: dict[str, torch.Tensor]
    seconds: float
    tuning_steps: int = 0  # optimizer steps spent on the target before its training (tuned sources, auto's cross-validation)
    decision: Decision | None = None  # what auto chose and why
    layers: str | None = None  # the layers composed (None: every layer)
    combine: str = LINEAR  # the composition operator, as recorded (`svd`, `ties:0.2`)

    @property
    def weights(self) -> dict[int, float]:
        return {source.candidate.id: source.weight for source in self.sources}

    @property
    def effective_sources(self) -> float:
        """(Σ|w|)² / Σ w² (1 / Σ w² for weights summing to one): how many sources a uniform weighting of the same concentration would use."""
        total = sum(source.weight**2 for source in self.sources)
        return sum(abs(source.weight) for source in self.sources) ** 2 / total if total > 0 else 0.0


def weighting_of(strategy: Strategy, options: Options) -> Weighting:
    """The weighting `strategy` uses under `options`: the temperature and znorm asked for, else its own."""
    temperature = strategy.temperature if options.temperature is None else float(options.temperature)
    znorm = strategy.znorm if options.znorm is None else bool(options.znorm)
    return Weighting(temperature, znorm, options.top_k)


def context_for(target: Target, evaluator: Evaluator | None, options: Options, memo: dict[str, object] | None = None) -> Context:
    return Context(
        target, evaluator, options.seed, options.reference_steps, options.tune_steps, options.pool_size, {} if memo is None else memo, operator=options.operator
    )


def run(
    strategy: Strategy,
    candidates: Sequence[Candidate],
    target: Target,
    evaluator: Evaluator | None,
    options: Options = Options(),
    progress: Progress | None = None,
    memo: dict[str, object] | None = None,
) -> Ensemble:
    """Weight and compose. `candidates` must already exclude the target's own modules.

    `strategy` is the object `get_strategy` makes of a name (the name is resolved once, by the caller).
    Pass the same `memo` to the runs of several strategies on one target and evaluator:
    a control then permutes the weights its strategy already found instead of scoring again.
    """
    started = time.perf_counter()
    weighting = weighting_of(strategy, options)
    own = [
        candidate
        for candidate in candidates
        if candidate.task == target.task or (target.fingerprint and candidate.metadata.get("fingerprint") == target.fingerprint)
    ]
    if own:
        raise EnsemblingError(f"{own[0].label} belongs to the target task; the target's own modules are never sources")
    operator = options.operator
    if strategy.composition is Composition.DEFAULT_INIT and operator.name != LINEAR:
        raise EnsemblingError(f"--combine {operator.label} does not apply to strategy {strategy.name}: it composes nothing (the default init); drop --combine")
    # Checked before any scoring, like --layers: an operator the modules do not support should not cost a run.
    check_operator(operator, candidates)
    if (strategy.composition is Composition.DEFAULT_INIT or options.layers is not None) and evaluator is None:
        raise EnsemblingError(f"strategy {strategy.name}{' with --layers' if options.layers else ''} needs the model's default init")
    if options.layers is not None:
        # Checked before any scoring: a misnamed layer should not cost a run.
        parse_layers(options.layers, depth(candidates[0].tensors if candidates else evaluator.default_tensors()))
    if strategy.composition is Composition.DEFAULT_INIT:
        weighted = Weighted([], [], [])
    else:
        weighted = strategy.weigh(context_for(target, evaluator, options, memo), candidates, weighting, progress)

    def default_init() -> dict[str, torch.Tensor]:
        if evaluator is None:  # a strategy that may keep the default init (group-average without a source of the category)
            raise EnsemblingError(f"strategy {strategy.name} kept the default init, which takes the model to make; pass an evaluator")
        return evaluator.default_tensors()

    tensors = weighted.tensors(strategy.composition, default_init, operator, options.seed)
    if options.layers is not None and weighted.sources:
        tensors = restrict(tensors, evaluator.default_tensors(), options.layers)
    ranked = tuple(SourceWeight(source, score, weight) for source, score, weight in zip(weighted.sources, weighted.scores, weighted.weights))
    return Ensemble(
        strategy.label, weighting.temperature, options.top_k, weighting.znorm, ranked, tensors, time.perf_counter() - started, weighted.tuning_steps,
        weighted.decision, options.layers, operator.label,
    )  # fmt: skip

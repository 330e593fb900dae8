"""One ensemble: score the sources with a strategy, turn scores into weights, compose the init."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ensembling.candidates import Candidate, Evaluator, Target
from ensembling.compose import check_compatible, compose
from ensembling.errors import EnsemblingError
from ensembling.strategies import Context, Strategy, get_strategy
from ensembling.strategies.base import REFERENCE_STEPS, TUNE_STEPS
from ensembling.weights import check_temperature, check_top_k, scores_to_weights, uniform_weights


@dataclass(frozen=True)
class Options:
    """How to weight: temperature and znorm default to the strategy's own (DESIGN.md)."""

    temperature: float | None = None
    top_k: int | None = None
    znorm: bool | None = None
    seed: int = 0
    reference_steps: int = REFERENCE_STEPS
    tune_steps: int = TUNE_STEPS

    def check(self) -> Options:
        if self.temperature is not None:
            check_temperature(self.temperature)
        check_top_k(self.top_k)
        if self.reference_steps < 1 or self.tune_steps < 1:
            raise EnsemblingError("--steps must be at least 1")
        return self


@dataclass(frozen=True)
class SourceWeight:
    candidate: Candidate
    score: float | None
    weight: float


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

    @property
    def weights(self) -> dict[int, float]:
        return {source.candidate.id: source.weight for source in self.sources}


Progress = Callable[[int, int, Candidate], None]


def resolve(strategy: str | Strategy, options: Options) -> tuple[Strategy, float, bool]:
    """The strategy object with the temperature and znorm it will use; errors before any work."""
    chosen = get_strategy(strategy) if isinstance(strategy, str) else strategy
    options.check()
    temperature = chosen.temperature if options.temperature is None else float(options.temperature)
    znorm = chosen.znorm if options.znorm is None else bool(options.znorm)
    return chosen, temperature, znorm


def score_candidates(strategy: Strategy, candidates: Sequence[Candidate], context: Context, progress: Progress | None = None) -> list:
    """Scored results in candidate order (the `prepare` step included)."""
    strategy.prepare(context)
    results = []
    for index, candidate in enumerate(candidates):
        results.append(strategy.score(context, candidate))
        if progress is not None:
            progress(index + 1, len(candidates), candidate)
    return results


def run(
    strategy: str | Strategy,
    candidates: Sequence[Candidate],
    target: Target,
    evaluator: Evaluator | None,
    options: Options = Options(),
    progress: Progress | None = None,
) -> Ensemble:
    """Select, score, weight and compose. `candidates` must already exclude the target's own modules."""
    started = time.perf_counter()
    chosen, temperature, znorm = resolve(strategy, options)
    own = [candidate for candidate in candidates if candidate.task == target.task or (target.fingerprint and candidate.metadata.get("fingerprint") == target.fingerprint)]
    if own:
        raise EnsemblingError(f"{own[0].label} belongs to the target task; the target's own modules are never sources")
    if not chosen.transfer:
        if evaluator is None:
            raise EnsemblingError(f"strategy {chosen.name} needs the model's default init")
        return Ensemble(chosen.name, temperature, options.top_k, znorm, (), evaluator.default_tensors(), time.perf_counter() - started)
    sources = chosen.select(candidates, target)
    if not sources:
        raise EnsemblingError("no compatible source modules to ensemble")
    check_compatible(sources)
    context = Context(target, evaluator, options.seed, options.reference_steps, options.tune_steps)
    if chosen.uniform:
        scores: list[float | None] = [None] * len(sources)
        weights = uniform_weights(len(sources), options.top_k)
        composed_from = list(sources)
    else:
        if chosen.needs_model:
            context.need_evaluator(chosen.name)
        results = score_candidates(chosen, sources, context, progress)
        scores = [result.score for result in results]
        for source, score in zip(sources, scores):
            if score != score or score in (float("inf"), float("-inf")):
                raise EnsemblingError(f"{source.label} got a non-finite {chosen.name} score ({score}); check the module")
        weights = scores_to_weights(scores, sign=chosen.sign, temperature=temperature, znorm=znorm, top_k=options.top_k)
        composed_from = [
            source if result.tensors is None else Candidate(source.id, source.task, source.category, source.digest, result.tensors, source.base_model, source.metadata)
            for source, result in zip(sources, results)
        ]
    tensors = compose(composed_from, weights)
    ranked = tuple(SourceWeight(source, score, weight) for source, score, weight in zip(sources, scores, weights))
    return Ensemble(chosen.name, temperature, options.top_k, znorm, ranked, tensors, time.perf_counter() - started)

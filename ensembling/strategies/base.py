"""The contract every strategy meets; one strategy lives in one file of this package.

A strategy says how it picks its sources (`select`), what it computes once per
target (`prepare`, e.g. a reference module trained on the target) and how it
scores one source (`score`). `scores_to_weights` then turns scores into weights
with the strategy's sign and default temperature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from ensembling.candidates import Candidate, Evaluator, Rows, Target, Tensors
from ensembling.compose import check_compatible
from ensembling.errors import EnsemblingError
from ensembling.operators import Operator, combine
from ensembling.weights import scores_to_weights, uniform_weights

if TYPE_CHECKING:
    import torch

# Paper defaults (docs/strategies.md): the step caps of the reference θ_t's training and of per-source tuning.
REFERENCE_STEPS = 200
TUNE_STEPS = 200


class Composition(Enum):
    """What a strategy composes: the default init, equal weights, weights from scores, or fitted coefficients."""

    DEFAULT_INIT = "default-init"
    UNIFORM = "uniform"
    SCORED = "scored"
    FITTED = "fitted"  # coefficients fitted to the target's data: any sign and sum, composed as they are (LoraHub)
    CHOSEN = "chosen"  # whatever the strategy it chose composes (auto: see `Decision`)


class Family(Enum):
    """Where a strategy comes from; the CLI and the benchmark group strategies by it."""

    AUTO = "auto"  # deltahub's own: chooses among the others (and the default init) with the target's data
    PAPER = "paper"  # the five task-similarity strategies of Lv et al. (2023)
    WEIGHTS = "weights"  # the strategies of the paper's code that read module weights
    BASELINE = "baseline"
    PEER = "peer"  # other systems' methods run in the same harness (LoraHub, retrieval by dataset embedding)
    CONTROL = "control"  # the same sources without similarity
    ORACLE = "oracle"  # one source alone: the benchmark's ceiling, never a user's choice


class Needs(Enum):
    """Target data a strategy reads (all of it from the k-shot sample)."""

    SCORING = "scoring"  # labelled examples to score candidates on (the k-shot dev, else train)
    TRAIN = "train"  # the k-shot train split, to tune on
    DEV = "dev"  # the k-shot dev split, to measure or early-stop on
    SIMILARITY = "similarity"  # each source's dataset-embedding similarity to the target (the target embedded from its k-shot train split)


@dataclass
class Context:
    """Everything a strategy may read while scoring one target.

    `memo` is shared by the strategies run on the same target and data (the caller
    passes one dict to several `run`s): each strategy leaves its `Weighted` there under
    its label, and a control reads the weights it permutes from it.
    """

    target: Target
    evaluator: Evaluator | None
    seed: int = 0
    reference_steps: int = REFERENCE_STEPS
    tune_steps: int = TUNE_STEPS
    pool_size: int = 3
    memo: dict[str, object] = field(default_factory=dict)
    state: dict[str, object] = field(default_factory=dict)
    operator: Operator = Operator()  # how the sources' tensors become an init (`--combine`)

    def need_evaluator(self, strategy: str) -> Evaluator:
        if self.evaluator is None:
            raise EnsemblingError(f"strategy {strategy} needs a model to evaluate candidates on the target's data")
        return self.evaluator


@dataclass(frozen=True)
class Scored:
    """A source's score, and the tensors to compose in its place when a strategy tunes it (performance)."""

    score: float
    tensors: Tensors | None = None
    tuning_steps: int = 0


@dataclass(frozen=True)
class Decision:
    """What a strategy that chooses (auto) kept, how that init is composed, and why, in one line."""

    chosen: str
    composition: Composition
    reason: str
    trials: tuple[Trial, ...] = ()  # every init it weighed, as measured (empty when nothing could be validated)


@dataclass(frozen=True)
class Trial:
    """One init's cross-validated result: mean held-out accuracy and loss over the folds."""

    strategy: str
    accuracy: float
    loss: float


@dataclass(frozen=True)
class Weighted:
    """A strategy's outcome over its sources: scores (None for uniform weights), weights, what is composed.

    `decision` is set by a strategy that chose another's init (auto): its composition then rules.
    """

    sources: list[Candidate]
    scores: list[float | None]
    weights: list[float]
    tuning_steps: int = 0
    decision: Decision | None = None

    def decided(self, decision: Decision, steps: int) -> Weighted:
        """These weights as the outcome of a strategy that chose them (`decision`), having spent `steps` more training steps."""
        return Weighted(self.sources, self.scores, self.weights, self.tuning_steps + steps, decision)

    def tensors(
        self, composition: Composition, default: Callable[[], dict[str, torch.Tensor]], operator: Operator = Operator(), seed: int = 0
    ) -> dict[str, torch.Tensor]:
        """The composed init: the default init, or the sources under `operator` (normalized weights, or fitted ones as they are)."""
        if self.decision is not None:
            composition = self.decision.composition
        if composition is Composition.DEFAULT_INIT:
            return default()
        return combine(self.sources, self.weights, operator, normalized=composition is not Composition.FITTED, seed=seed)


class Strategy:
    """Base class. A strategy declares its family, composition and the target data it needs.

    Scored strategies override `score` (and maybe `prepare`); uniform ones may override
    `select`; a strategy that weights in its own way (the controls) overrides `weigh`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    parameter: ClassVar[str | None] = None  # a strategy named `name:<parameter>` (e.g. shuffled:cos) takes one
    family: ClassVar[Family]
    composition: ClassVar[Composition] = Composition.SCORED
    needs: ClassVar[frozenset[Needs]] = frozenset({Needs.SCORING})  # target data it cannot run without (a target lacking it is refused)
    optional_needs: ClassVar[frozenset[Needs]] = frozenset()  # target data it reads when the target has it, never required
    reads_gradients: ClassVar[bool] = False  # scores need a backward pass per source (costlier than predictions)
    reads_predictions: ClassVar[bool] = False  # scores read each source's rows (`rows_of`): they are fetched for all sources at once
    may_keep_default_init: ClassVar[bool] = False  # may answer with the method's default init, which takes the model to make
    sign: ClassVar[int] = -1
    temperature: ClassVar[float] = 0.1
    znorm: ClassVar[bool] = False

    def __init__(self, argument: str | None = None) -> None:
        if (argument is None) != (self.parameter is None):
            expected = f"{self.name}:<{self.parameter}>" if self.parameter else self.name
            raise EnsemblingError(f"strategy {self.name} is written {expected}")

    @property
    def label(self) -> str:
        """The name under which its runs are reported (a parameterized strategy includes its parameter)."""
        return self.name

    @property
    def needs_model(self) -> bool:
        # Similarity comes from the catalog's embeddings, not from the model.
        return self.composition is Composition.DEFAULT_INIT or self.may_keep_default_init or bool(self.needs - {Needs.SIMILARITY})

    def select(self, candidates: Sequence[Candidate], context: Context) -> list[Candidate]:
        """The sources this strategy weights; reads only metadata (tensors may not be loaded yet)."""
        return list(candidates)

    def prepare(self, context: Context) -> None:
        """Work done once per target before any source is scored."""

    def score(self, context: Context, candidate: Candidate) -> Scored:
        raise NotImplementedError(f"strategy {self.name} does not score candidates")

    def weigh(self, context: Context, candidates: Sequence[Candidate], weighting: Weighting, progress: Progress | None = None) -> Weighted:
        """Select the sources, then weight them uniformly or by their scores (softmax of sign·s/τ)."""
        sources = self.select(candidates, context)
        if not sources:
            raise EnsemblingError("no compatible source modules to ensemble")
        check_compatible(sources)
        if self.composition is Composition.UNIFORM:
            return self._remember(context, Weighted(sources, [None] * len(sources), uniform_weights(len(sources), weighting.top_k)))
        evaluator = context.need_evaluator(self.name)
        self.prepare(context)
        if self.reads_predictions:
            # One call for every source lets the evaluator batch them (groups of candidates per forward on a GPU).
            evaluator.predict_many(sources)
        results = []
        for index, source in enumerate(sources):
            result = self.score(context, source)
            if not math.isfinite(result.score):
                raise EnsemblingError(f"{source.label} got a non-finite {self.name} score ({result.score}); check the module")
            results.append(result)
            if progress is not None:
                progress(index + 1, len(sources), source)
        scores: list[float | None] = [result.score for result in results]
        weights = scores_to_weights(
            [result.score for result in results], sign=self.sign, temperature=weighting.temperature, znorm=weighting.znorm, top_k=weighting.top_k
        )
        composed = [source if result.tensors is None else replace(source, tensors=result.tensors) for source, result in zip(sources, results)]
        return self._remember(context, Weighted(composed, scores, weights, sum(result.tuning_steps for result in results)))

    def _remember(self, context: Context, weighted: Weighted) -> Weighted:
        context.memo[self.label] = weighted
        return weighted


@dataclass(frozen=True)
class Weighting:
    """How scores become weights for one run: the temperature and znorm in force, and top-k."""

    temperature: float
    znorm: bool
    top_k: int | None


Progress = Callable[[int, int, Candidate], None]


def rows_of(context: Context, candidate: Candidate, strategy: str) -> Rows:
    return context.need_evaluator(strategy).predict(candidate)


def detached(tensors: Tensors) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in tensors.items()}

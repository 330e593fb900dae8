import random
import warnings
from collections.abc import Sequence

from ensembling.candidates import Candidate, Evaluator
from ensembling.compose import check_compatible, compose
from ensembling.errors import EnsemblingError
from ensembling.strategies import register
from ensembling.strategies.base import Composition, Family, Needs, Progress, Strategy, Weighted

# LoraHub's defaults (sail-sg/lorahub: reproduce_bbh.py and lorahub/algorithm.py).
SOURCES = 20  # modules drawn at random from the pool
BUDGET = 40  # max_inference_step: evaluations of the composed module
BOUND = 1.5  # each weight in [-BOUND, BOUND], starting at 0
L1 = 0.05  # the penalty's factor on mean |w|


@register
class LoraHub(Strategy):
    """LoraHub (Huang et al., 2023): weights fitted to the target's k-shot train loss by gradient-free search.

    Up to 20 sources drawn at random (seeded), weights started at 0 and bounded to [-1.5, 1.5],
    40 evaluations of nevergrad's NGOpt minimizing the mean cross-entropy of Σ_i w_i θ_i on the
    k-shot train split plus 0.05 · mean |w|. The weights are composed as they are: any sign, any
    sum, no softmax. The paper names CMA-ES; its code runs NGOpt, which at this budget hands the
    search to COBYLA (nevergrad 1.0), and so does this strategy.

    Deviations from LoraHub's code: its loss is the sum of per-batch mean losses divided by the
    number of examples (the mean divided by the batch size when all fit in one batch); here it is
    the plain mean, so the penalty's weight does not depend on the batching. And where the search
    keeps every weight at 0 (LoraHub would then run the bare base model), this strategy refuses:
    the composition would be a zero module, not an init to train.
    """

    name = "lorahub"
    summary = "weights of any sign fitted to the k-shot train loss + 0.05·mean|w| by 40 gradient-free evaluations (LoraHub)"
    family = Family.PEER
    composition = Composition.FITTED
    needs = frozenset({Needs.TRAIN})

    def select(self, candidates, context):
        ordered = sorted(candidates, key=lambda candidate: candidate.id)
        if len(ordered) <= SOURCES:
            return ordered
        rng = random.Random(f"{self.name}:{context.target.task}:{context.seed}")
        return sorted(rng.sample(ordered, SOURCES), key=lambda candidate: candidate.id)

    def weigh(self, context, candidates, weighting, progress=None):
        if weighting.top_k is not None:
            raise EnsemblingError("lorahub fits a weight for every source it draws; drop --top-k")
        sources = self.select(candidates, context)
        if len(sources) < 2:
            raise EnsemblingError(
                f"lorahub composes at least 2 source modules but has {len(sources)}; register more compatible modules or choose another strategy"
            )
        check_compatible(sources)
        evaluator = context.need_evaluator(self.name)
        weights = fit(sources, evaluator, context.seed, progress)
        if not any(weights):
            # Every weight at 0 composes a zero module, from which LoRA cannot even start to train (A = B = 0).
            raise EnsemblingError(
                f"lorahub kept every weight at 0: no composition of its {len(sources)} sources lowered the k-shot train loss by more than its penalty; use random or other sources"
            )
        return self._remember(context, Weighted(sources, [None] * len(sources), weights))


def fit(sources: Sequence[Candidate], evaluator: Evaluator, seed: int, progress: Progress | None = None) -> list[float]:
    """The weights NGOpt recommends after BUDGET evaluations of loss + L1 penalty."""
    import nevergrad as ng
    import numpy as np

    evaluations = 0

    def objective(weights: np.ndarray) -> float:
        nonlocal evaluations
        evaluator.apply(compose(sources, weights.tolist(), normalized=False))
        value = evaluator.train_loss() + L1 * float(np.abs(weights).mean())
        evaluations += 1
        if progress is not None:
            # The bar names the source that currently weighs most.
            progress(evaluations, BUDGET, sources[int(np.abs(weights).argmax())])
        return value

    parametrization = ng.p.Array(init=np.zeros(len(sources)), lower=-BOUND, upper=BOUND)
    parametrization.random_state = np.random.RandomState(seed)
    optimizer = ng.optimizers.NGOpt(parametrization=parametrization, budget=BUDGET)
    with warnings.catch_warnings():
        # At this budget NGOpt runs scipy's COBYLA, which warns that it adjusted nevergrad's final trust radius.
        warnings.filterwarnings("ignore", message="COBYLA", category=UserWarning)
        recommendation = optimizer.minimize(objective)
    return [float(weight) for weight in recommendation.value]

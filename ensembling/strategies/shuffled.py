import random

from ensembling.errors import EnsemblingError
from ensembling.strategies import SHUFFLED, get_strategy, register
from ensembling.strategies.base import Composition, Family, Strategy, Weighted, Weighting


@register
class Shuffled(Strategy):
    """Strategy s's weights randomly permuted over s's own sources (the tuned ones, for performance).

    Same sources, same multiset of weights, no similarity: what s gains over this control is
    what its choice of *which* source gets which weight is worth. The permuted ensemble is
    read from the run's memo when s already ran on this target, else s runs first.
    """

    name = SHUFFLED
    parameter = "strategy"
    summary = "a scored strategy's weights permuted over its sources (control)"
    family = Family.CONTROL

    def __init__(self, argument=None):
        super().__init__(argument)
        self.inner = get_strategy(argument)
        if self.inner.composition is not Composition.SCORED or self.inner.family is Family.CONTROL:
            raise EnsemblingError(f"shuffled:{argument}: only scored strategies have weights to shuffle")
        self.needs = self.inner.needs
        self.optional_needs = self.inner.optional_needs

    @property
    def label(self):
        return f"{self.name}:{self.inner.label}"

    def weigh(self, context, candidates, weighting, progress=None):
        inner = context.memo.get(self.inner.label)
        if inner is None:
            own = Weighting(self.inner.temperature, self.inner.znorm, weighting.top_k)
            inner = self.inner.weigh(context, candidates, own, progress)
        sources = list(inner.sources)
        weights = list(inner.weights)
        random.Random(f"{self.label}:{context.target.task}:{context.seed}").shuffle(weights)
        return Weighted(sources, [None] * len(sources), weights)

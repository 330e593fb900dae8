from ensembling.strategies import NO_TRANSFER, Decision, register
from ensembling.strategies.base import Composition, Family, Strategy, Weighted


@register
class GroupAverage(Strategy):
    """Uniform weights over the registry's sources of the target's task category.

    The default: it reads only the category labels, so it scores and trains nothing, and on the transfer
    benchmark's design targets it had the best mean gain over `random` with no target below it
    (docs/benchmarks.md, "The default init"). A registry without a source of the target's category has
    nothing to average: then the init is the method's default init, and the decision says so in one line.
    """

    name = "group-average"
    summary = "uniform weights over the sources of the target's task category (none: the default init); trains and scores nothing"
    family = Family.BASELINE
    composition = Composition.UNIFORM
    needs = frozenset()
    may_keep_default_init = True

    def select(self, candidates, context):
        return [candidate for candidate in candidates if candidate.category == context.target.category]

    def weigh(self, context, candidates, weighting, progress=None) -> Weighted:
        if not candidates or self.select(candidates, context):
            return super().weigh(context, candidates, weighting, progress)
        reason = (
            f"no source of category {context.target.category!r} among the {len(candidates)} candidates: kept the default init; "
            "--strategy retrieval or loss picks sources of other categories"
        )
        return self._remember(context, Weighted([], [], []).decided(Decision(NO_TRANSFER, Composition.DEFAULT_INIT, reason), 0))

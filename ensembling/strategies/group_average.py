from ensembling.strategies import BY_CATEGORY, NO_TRANSFER, Decision, register
from ensembling.strategies.base import Composition, Family, Strategy, Weighted


@register
class GroupAverage(Strategy):
    """Uniform weights over the registry's sources of the target's task category.

    It reads only the category labels, so it scores and trains nothing. On a registry of sibling tasks, one
    clean module each (the standard run's WordNet pool), it had the best mean gain over `random` on the
    design targets with no target below it; on a lab's registry, where a category also holds every task's
    early checkpoints and failed runs, most of its weight lands on those (docs/benchmarks.md, "Lab scale").
    A registry without a source of the target's category has nothing to average: then the init is the
    method's default init, and the decision says so in one line.
    """

    name = BY_CATEGORY
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

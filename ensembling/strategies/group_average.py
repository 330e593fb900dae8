from ensembling.errors import EnsemblingError
from ensembling.strategies import register
from ensembling.strategies.base import Composition, Family, Strategy


@register
class GroupAverage(Strategy):
    name = "group-average"
    summary = "uniform weights over the sources of the target's task category"
    family = Family.BASELINE
    composition = Composition.UNIFORM
    needs = frozenset()

    def select(self, candidates, context):
        same = [candidate for candidate in candidates if candidate.category == context.target.category]
        if not same:
            raise EnsemblingError(f"group-average found no source of category {context.target.category!r}; use average or another strategy")
        return same

from ensembling.errors import EnsemblingError
from ensembling.strategies import register
from ensembling.strategies.base import Strategy


@register
class GroupAverage(Strategy):
    name = "group-average"
    needs_model = False
    uniform = True
    summary = "uniform weights over the sources of the target's task category"

    def select(self, candidates, target):
        same = [candidate for candidate in candidates if candidate.category == target.category]
        if not same:
            raise EnsemblingError(f"group-average found no source of category {target.category!r}; use average or another strategy")
        return same

from ensembling.errors import EnsemblingError
from ensembling.strategies import SINGLE, register
from ensembling.strategies.base import Composition, Family, Strategy


@register
class Single(Strategy):
    """One named source alone, at weight 1.

    Not a way to choose: the benchmark's oracle trains the target from every `single:<task>`
    and keeps the best by test accuracy, the ceiling that any choice of one source could reach.
    """

    name = SINGLE
    parameter = "task"
    summary = "one named source task alone, weight 1 (the oracle's arms)"
    family = Family.ORACLE
    composition = Composition.UNIFORM
    needs = frozenset()

    def __init__(self, argument=None):
        super().__init__(argument)
        self.task = argument

    @property
    def label(self):
        return f"{self.name}:{self.task}"

    def select(self, candidates, context):
        chosen = [candidate for candidate in candidates if candidate.task == self.task]
        if not chosen:
            raise EnsemblingError(f"{self.label}: no source of task {self.task!r} among the {len(candidates)} candidates; name a source task")
        return chosen[:1]

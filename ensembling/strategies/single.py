from ensembling.errors import EnsemblingError
from ensembling.strategies import MODULE_MARK, SINGLE, register, single_of
from ensembling.strategies.base import Composition, Family, Strategy


@register
class Single(Strategy):
    """One named source alone, at weight 1.

    `single:<task>` names the one source of `task`. Where a task has several modules among the
    candidates (the lab pool: its source beside early, undertrained, shuffled-label and duplicate
    modules), `single:<task>` is refused as ambiguous and `single:<task>#<module id>` names one.

    Not a way to choose: the benchmark's oracle trains the target from every single arm (at lab
    scale, from a subset of them) and keeps the best by test accuracy, the ceiling that any choice
    of one source could reach.
    """

    name = SINGLE
    parameter = "task"
    summary = "one named source alone, weight 1 (the oracle's arms): single:<task>, or single:<task>#<module id> where a task has several modules"
    family = Family.ORACLE
    composition = Composition.UNIFORM
    needs = frozenset()

    def __init__(self, argument=None):
        super().__init__(argument)
        task, mark, module = argument.rpartition(MODULE_MARK)
        if not mark:
            self.task, self.module_id = argument, None
        elif task and module.isdigit():
            self.task, self.module_id = task, int(module)
        else:
            raise EnsemblingError(f"{SINGLE}:{argument}: name a module as {SINGLE}:<task>{MODULE_MARK}<module id>, e.g. {SINGLE}:wn-isa-animal{MODULE_MARK}12")

    @property
    def label(self):
        return single_of(self.task, self.module_id)

    def select(self, candidates, context):
        of_task = [candidate for candidate in candidates if candidate.task == self.task]
        if self.module_id is not None:
            chosen = [candidate for candidate in of_task if candidate.id == self.module_id]
            if not chosen:
                raise EnsemblingError(f"{self.label}: no module {self.module_id} of task {self.task!r} among the {len(candidates)} candidates")
            return chosen
        if not of_task:
            raise EnsemblingError(f"{self.label}: no source of task {self.task!r} among the {len(candidates)} candidates; name a source task")
        if len(of_task) > 1:
            ids = ", ".join(str(candidate.id) for candidate in of_task)
            raise EnsemblingError(
                f"{self.label}: task {self.task!r} has {len(of_task)} modules among the candidates ({ids}); name one: {self.label}{MODULE_MARK}<id>"
            )
        return of_task

from ensembling.candidates import Candidate
from ensembling.strategies import register
from ensembling.strategies.base import Composition, Family, Needs, Strategy
from ensembling.strategies.retrieval import nearest


@register
class TaskRetrieval(Strategy):
    """Retrieval by task, not by module (LoRAuter's task-level routing, arXiv 2601.21795).

    A lab's registry holds several modules of one task: duplicates under other seeds, early
    checkpoints, failed runs. They share their dataset, hence its embedding, so `retrieval`'s k
    nearest modules are often one task's good module and its junk. Here each task is represented by
    its module with the best dev accuracy on its card (its own task's dev split; modules without one
    rank after those with one, ties to the older module), and the k nearest tasks' representatives
    are composed with equal weights. k is the pool size random-pool draws, as for retrieval, so the
    two differ only in the per-task step. Nothing is scored on the target: its cost is retrieval's.

    The default: chosen by the lab-scale rule on the design targets (docs/benchmarks.md, "The default init"):
    the best mean gain over `random` among the cheap strategies with under 5 % of their weight on junk and
    no design target below `random`. On a registry of one module per task it is `retrieval`.
    """

    name = "task-retrieval"
    summary = "uniform weights over the k nearest tasks by dataset embedding, each by its module with the best recorded dev accuracy"
    family = Family.PEER
    composition = Composition.UNIFORM
    needs = frozenset({Needs.SIMILARITY})

    def select(self, candidates, context):
        best: dict[str, Candidate] = {}
        for candidate in sorted(candidates, key=lambda candidate: (candidate.dev_acc is None, -(candidate.dev_acc or 0.0), candidate.id)):
            best.setdefault(candidate.task, candidate)
        return nearest(list(best.values()), context.pool_size)

from ensembling.scores import euclidean_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Needs, Scored, Strategy


@register
class Euclidean(Strategy):
    """As the paper's code: each source tuned on the target to its best dev checkpoint within the
    tuning budget; the score is the sum over tensors of ‖θ_i' − θ_i‖₂, raw, at τ = 0.1."""

    name = "euclidean"
    summary = "Σ over tensors of ‖θ_i' − θ_i‖ after tuning the source on the target (lower is closer)"
    family = Family.WEIGHTS
    needs = frozenset({Needs.TRAIN, Needs.DEV})

    def score(self, context, candidate):
        evaluator = context.need_evaluator(self.name)
        tuned = evaluator.finetune(candidate.tensors, context.tune_steps, context.seed)
        return Scored(euclidean_score(candidate.tensors, tuned.tensors), tuning_steps=tuned.steps)

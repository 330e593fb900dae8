from ensembling.scores import kl_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Needs, Scored, Strategy, rows_of


@register
class Kl(Strategy):
    """p_t comes from θ_t, the target's module trained from the default init to its best k-shot dev checkpoint."""

    name = "kl"
    summary = "Σ KL(p_t ‖ p_i), p_t from the target's own trained module (lower is closer)"
    family = Family.PAPER
    reads_predictions = True
    needs = frozenset({Needs.SCORING, Needs.TRAIN, Needs.DEV})

    def prepare(self, context):
        evaluator = context.need_evaluator(self.name)
        evaluator.apply(evaluator.reference(context.reference_steps, context.seed).tensors)
        context.state["reference_rows"] = evaluator.rows()

    def score(self, context, candidate):
        reference = context.state["reference_rows"]
        rows = rows_of(context, candidate, self.name)
        return Scored(kl_score(reference.log_probs, rows.log_probs))

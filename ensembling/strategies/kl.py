from ensembling.scores import kl_score
from ensembling.strategies import register
from ensembling.strategies.base import Scored, Strategy, rows_of


@register
class Kl(Strategy):
    name = "kl"
    sign = -1
    temperature = 0.1
    summary = "Σ KL(p_t ‖ p_i), p_t from a module briefly trained on the target (lower is closer)"

    def prepare(self, context):
        evaluator = context.need_evaluator(self.name)
        reference = evaluator.train_reference(context.reference_steps, context.seed)
        evaluator.apply(reference)
        context.state["reference_rows"] = evaluator.rows()

    def score(self, context, candidate):
        reference = context.state["reference_rows"]
        rows = rows_of(context, candidate, self.name)
        return Scored(kl_score(reference.log_probs, rows.log_probs))

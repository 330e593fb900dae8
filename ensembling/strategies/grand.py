from ensembling.scores import grand_score
from ensembling.strategies import register
from ensembling.strategies.base import Scored, Strategy


@register
class Grand(Strategy):
    name = "grand"
    sign = -1
    temperature = 0.1
    summary = "Σ over batches of ‖∇θ L‖₂ w.r.t. the source's parameters (lower is closer)"

    def score(self, context, candidate):
        evaluator = context.need_evaluator(self.name)
        evaluator.apply(candidate.tensors)
        return Scored(grand_score(evaluator.gradient_norms()))

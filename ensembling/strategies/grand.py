from ensembling.scores import grand_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Scored, Strategy


@register
class Grand(Strategy):
    """The gradient is taken on batches of the scoring-batch size (the paper: its one scoring batch of up to 50)."""

    name = "grand"
    summary = "Σ over scoring batches of ‖∇θ L‖₂ w.r.t. the source's parameters (lower is closer)"
    family = Family.PAPER
    reads_gradients = True

    def score(self, context, candidate):
        evaluator = context.need_evaluator(self.name)
        evaluator.apply(candidate.tensors)
        return Scored(grand_score(evaluator.gradient_norms()))

from ensembling.scores import loss_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Scored, Strategy, rows_of


@register
class Loss(Strategy):
    name = "loss"
    summary = "mean cross-entropy of the source on the target's examples (lower is closer)"
    family = Family.PAPER
    reads_predictions = True

    def score(self, context, candidate):
        rows = rows_of(context, candidate, self.name)
        return Scored(loss_score(rows.log_probs, rows.gold))

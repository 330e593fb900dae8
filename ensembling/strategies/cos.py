from ensembling.scores import cos_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Scored, Strategy, rows_of


@register
class Cos(Strategy):
    name = "cos"
    summary = "Σ cos(p, y), cosine of predicted probabilities and labels (higher is closer)"
    family = Family.PAPER
    reads_predictions = True
    sign = 1

    def score(self, context, candidate):
        rows = rows_of(context, candidate, self.name)
        return Scored(cos_score(rows.log_probs, rows.gold))

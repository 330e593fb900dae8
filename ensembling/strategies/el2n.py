from ensembling.scores import el2n_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Scored, Strategy, rows_of


@register
class El2n(Strategy):
    name = "el2n"
    summary = "Σ ‖p − y‖₂, the error L2 norm of the source's predictions (lower is closer)"
    family = Family.PAPER
    reads_predictions = True

    def score(self, context, candidate):
        rows = rows_of(context, candidate, self.name)
        return Scored(el2n_score(rows.log_probs, rows.gold))

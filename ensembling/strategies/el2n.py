from ensembling.scores import el2n_score
from ensembling.strategies import register
from ensembling.strategies.base import Scored, Strategy, rows_of


@register
class El2n(Strategy):
    name = "el2n"
    sign = -1
    temperature = 0.1
    summary = "Σ ‖p − y‖₂, the error L2 norm of the source's predictions (lower is closer)"

    def score(self, context, candidate):
        rows = rows_of(context, candidate, self.name)
        return Scored(el2n_score(rows.log_probs, rows.gold))

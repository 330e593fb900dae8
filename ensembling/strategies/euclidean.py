from ensembling.scores import euclidean_score
from ensembling.strategies import register
from ensembling.strategies.base import Scored, Strategy


@register
class Euclidean(Strategy):
    """‖θ_i' − θ_i‖ after tuning θ_i on the target.

    Raw distances have no natural scale (it grows with the learning rate, the
    number of steps and the module's size), so a fixed τ on them would be
    arbitrary: this strategy z-normalizes its scores by default and uses τ = 1,
    i.e. a source one standard deviation closer than another gets e¹ times its
    weight. Pass a temperature (and znorm=False) to weight raw distances instead.
    """

    name = "euclidean"
    sign = -1
    temperature = 1.0
    znorm = True
    summary = "‖θ_i' − θ_i‖ after tuning the source on the target (lower is closer; z-normalized)"

    def score(self, context, candidate):
        evaluator = context.need_evaluator(self.name)
        tuned = evaluator.finetune(candidate.tensors, context.tune_steps, context.seed)
        return Scored(euclidean_score(candidate.tensors, tuned))

from ensembling.scores import weight_cos_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Needs, Scored, Strategy


@register
class WeightCos(Strategy):
    """θ_t is the target's module trained from the default init to its best k-shot dev checkpoint (as kl's)."""

    name = "weight-cos"
    summary = "mean over tensors of cos(θ_t, θ_i), θ_t the target's own trained module (higher is closer)"
    family = Family.WEIGHTS
    needs = frozenset({Needs.TRAIN, Needs.DEV})
    sign = 1
    temperature = 0.001

    def prepare(self, context):
        evaluator = context.need_evaluator(self.name)
        context.state["reference"] = evaluator.reference(context.reference_steps, context.seed).tensors

    def score(self, context, candidate):
        return Scored(weight_cos_score(context.state["reference"], candidate.tensors))

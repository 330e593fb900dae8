from ensembling.scores import weight_cos_score
from ensembling.strategies import register
from ensembling.strategies.base import Scored, Strategy, detached


@register
class WeightCos(Strategy):
    name = "weight-cos"
    sign = 1
    temperature = 0.001
    summary = "mean over tensors of cos(θ_t, θ_i), θ_t briefly trained on the target (higher is closer)"

    def prepare(self, context):
        evaluator = context.need_evaluator(self.name)
        context.state["reference"] = detached(evaluator.train_reference(context.reference_steps, context.seed))

    def score(self, context, candidate):
        return Scored(weight_cos_score(context.state["reference"], candidate.tensors))

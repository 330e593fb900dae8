from ensembling.scores import performance_score
from ensembling.strategies import register
from ensembling.strategies.base import Scored, Strategy, detached


@register
class Performance(Strategy):
    name = "performance"
    sign = 1
    temperature = 0.001
    summary = "dev score of the tuned source minus its zero-shot dev score; composes the tuned sources"

    def score(self, context, candidate):
        evaluator = context.need_evaluator(self.name)
        evaluator.apply(candidate.tensors)
        zero_shot = evaluator.dev_score()
        tuned = detached(evaluator.finetune(candidate.tensors, context.tune_steps, context.seed))
        evaluator.apply(tuned)
        return Scored(performance_score(evaluator.dev_score(), zero_shot), tensors=tuned)

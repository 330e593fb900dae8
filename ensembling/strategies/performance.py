from ensembling.scores import performance_score
from ensembling.strategies import register
from ensembling.strategies.base import Family, Needs, Scored, Strategy, detached


@register
class Performance(Strategy):
    """Each source tuned on the target to its best dev checkpoint; the tuned sources are what is composed."""

    name = "performance"
    summary = "dev score of the tuned source minus its zero-shot dev score; composes the tuned sources"
    family = Family.WEIGHTS
    needs = frozenset({Needs.TRAIN, Needs.DEV})
    sign = 1
    temperature = 0.001

    def score(self, context, candidate):
        evaluator = context.need_evaluator(self.name)
        evaluator.apply(candidate.tensors)
        zero_shot = evaluator.dev_score()
        tuned = evaluator.finetune(candidate.tensors, context.tune_steps, context.seed)
        return Scored(performance_score(tuned.dev, zero_shot), tensors=detached(tuned.tensors), tuning_steps=tuned.steps)

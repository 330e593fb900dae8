import random

from ensembling.strategies import RANDOM_POOL, register
from ensembling.strategies.base import Composition, Family, Strategy


@register
class RandomPool(Strategy):
    """The "Recycling LoRAs" question as a control: do a few arbitrary sources help as much as chosen ones?"""

    name = RANDOM_POOL
    summary = "uniform weights over a few sources drawn at random (seeded; no look at the target's data)"
    family = Family.CONTROL
    composition = Composition.UNIFORM
    needs = frozenset()

    def select(self, candidates, context):
        rng = random.Random(f"{self.name}:{context.target.task}:{context.seed}")
        ordered = sorted(candidates, key=lambda candidate: candidate.id)
        return rng.sample(ordered, min(context.pool_size, len(ordered)))

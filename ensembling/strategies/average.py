from ensembling.strategies import UNIFORM, register
from ensembling.strategies.base import Composition, Family, Strategy


@register
class Average(Strategy):
    name = UNIFORM
    summary = "uniform weights over every source"
    family = Family.BASELINE
    composition = Composition.UNIFORM
    needs = frozenset()

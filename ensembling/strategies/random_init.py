from ensembling.strategies import register
from ensembling.strategies.base import Composition, Family, Strategy


@register
class Random(Strategy):
    name = "random"
    summary = "no transfer: the method's default initialization"
    family = Family.BASELINE
    composition = Composition.DEFAULT_INIT
    needs = frozenset()

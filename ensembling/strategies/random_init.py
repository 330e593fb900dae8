from ensembling.strategies import NO_TRANSFER, register
from ensembling.strategies.base import Composition, Family, Strategy


@register
class Random(Strategy):
    name = NO_TRANSFER
    summary = "no transfer: the method's default initialization"
    family = Family.BASELINE
    composition = Composition.DEFAULT_INIT
    needs = frozenset()

from ensembling.strategies import register
from ensembling.strategies.base import Strategy


@register
class Random(Strategy):
    name = "random"
    transfer = False
    needs_model = True  # the default init comes from the live model
    uniform = True
    summary = "no transfer: the method's default initialization"

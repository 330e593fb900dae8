from ensembling.strategies import register
from ensembling.strategies.base import Strategy


@register
class Average(Strategy):
    name = "average"
    needs_model = False
    uniform = True
    summary = "uniform weights over every source"

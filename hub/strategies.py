"""The strategies as the front ends see them: names, one-line summaries and the names they default to.

Light on purpose (no model library is imported), so the CLI can build its help from it.
"""

from __future__ import annotations

from ensembling.operators import LINEAR as DEFAULT_COMBINE
from ensembling.operators import OPERATORS as COMBINE_OPERATORS
from ensembling.strategies import DEFAULT as DEFAULT_STRATEGY
from ensembling.strategies import NO_TRANSFER, STRATEGIES, known


def strategy_summaries() -> list[tuple[str, str]]:
    """Every registered strategy as written on the command line, with its one-line summary."""
    return [(name, STRATEGIES[name.partition(":")[0]].summary) for name in known()]


__all__ = ["COMBINE_OPERATORS", "DEFAULT_COMBINE", "DEFAULT_STRATEGY", "NO_TRANSFER", "strategy_summaries"]

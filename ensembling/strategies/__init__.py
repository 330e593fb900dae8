"""Strategies, registered by name. Adding a strategy is adding one file here.

Every module of this package except `base` is imported once; each defines a
`Strategy` subclass decorated with `@register`.
"""

from __future__ import annotations

import importlib
import pkgutil

from ensembling.errors import EnsemblingError
from ensembling.strategies.base import Composition, Context, Decision, Family, Needs, Scored, Strategy, Weighted, Weighting

STRATEGIES: dict[str, type[Strategy]] = {}

# The names callers compare against or default to, declared here so that no strategy
# name is spelled outside this package (a test checks it).
DEFAULT = "task-retrieval"  # what `adapters ensemble` and `Hub.transfer_init` use when not told (docs/benchmarks.md)
NO_TRANSFER = "random"  # the method's default init: every gain is measured against it
UNIFORM = "average"  # equal weights over every source
BY_CATEGORY = "group-average"  # equal weights over the sources of the target's category
RANDOM_POOL = "random-pool"  # equal weights over a few random sources (control)
SHUFFLED = "shuffled"  # shuffled:<strategy>, a strategy's weights permuted (control)
SINGLE = "single"  # single:<task> or single:<task>#<module id>, one source alone (the oracle's arms)
MODULE_MARK = "#"  # single:<task>#<module id> names one module of a task that has several


def shuffled_of(strategy: str) -> str:
    """The name of `strategy`'s shuffled control."""
    return f"{SHUFFLED}:{strategy}"


def single_of(task: str, module_id: int | None = None) -> str:
    """The name of the arm that composes `task`'s source alone, or its module `module_id` alone."""
    return f"{SINGLE}:{task}" if module_id is None else f"{SINGLE}:{task}{MODULE_MARK}{module_id}"


def register(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"two strategies are named {cls.name!r}")
    STRATEGIES[cls.name] = cls
    return cls


def _load_all() -> None:
    # Registration order is the order users see: the paper's strategies, the weight readers,
    # the baselines, the peers, the controls, the oracle; alphabetical within each.
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    order = list(Family)
    ranked = sorted(STRATEGIES.items(), key=lambda item: (order.index(item[1].family), item[0]))
    STRATEGIES.clear()
    STRATEGIES.update(ranked)


def known() -> list[str]:
    """Every strategy as it is written on the command line (`shuffled:<strategy>` for a parameterized one)."""
    return [f"{name}:<{cls.parameter}>" if cls.parameter else name for name, cls in STRATEGIES.items()]


def of_family(*families: Family) -> list[str]:
    """The unparameterized strategies of these families, in registration order."""
    return [name for name, cls in STRATEGIES.items() if cls.family in families and cls.parameter is None]


def get_strategy(name: str) -> Strategy:
    """`name` or `name:argument` (e.g. shuffled:cos)."""
    base, _, argument = name.partition(":")
    if base not in STRATEGIES:
        raise EnsemblingError(f"unknown strategy {name!r}; use one of {', '.join(known())}")
    return STRATEGIES[base](argument or None)


_load_all()

__all__ = [
    "BY_CATEGORY",
    "DEFAULT",
    "MODULE_MARK",
    "NO_TRANSFER",
    "RANDOM_POOL",
    "SHUFFLED",
    "SINGLE",
    "STRATEGIES",
    "UNIFORM",
    "shuffled_of",
    "single_of",
    "Composition",
    "Context",
    "Decision",
    "Family",
    "Needs",
    "Scored",
    "Strategy",
    "Weighted",
    "Weighting",
    "get_strategy",
    "known",
    "of_family",
    "register",
]

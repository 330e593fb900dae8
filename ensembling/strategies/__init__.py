"""Strategies, registered by name. Adding a strategy is adding one file here.

Every module of this package except `base` is imported once; each defines a
`Strategy` subclass decorated with `@register`.
"""

from __future__ import annotations

import importlib
import pkgutil

from ensembling.errors import EnsemblingError
from ensembling.strategies.base import Context, Scored, Strategy

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"two strategies are named {cls.name!r}")
    STRATEGIES[cls.name] = cls
    return cls


def _load_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def known() -> list[str]:
    return sorted(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise EnsemblingError(f"unknown strategy {name!r}; use one of {', '.join(known())}")
    return STRATEGIES[name]()


_load_all()

__all__ = ["STRATEGIES", "Context", "Scored", "Strategy", "get_strategy", "known", "register"]

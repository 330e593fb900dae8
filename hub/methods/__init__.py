"""PET methods, registered by name. Adding a method is adding one file here.

Every module of this package except `base` and `peft_method` is imported once; each
defines a `Method` subclass decorated with `@register_method`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from hub.errors import HubError, ModuleFolderError
from hub.folders import CONFIG_FILE, WEIGHTS_FILE, read_config
from hub.methods.base import Method, Option

METHODS: dict[str, Method] = {}
_SHARED = ("base", "peft_method")  # the contract and the PEFT adapter: modules of the package, not methods


def register_method(cls: type[Method]) -> type[Method]:
    if cls.name in METHODS and type(METHODS[cls.name]) is not cls:
        raise ValueError(f"two methods are named {cls.name!r}")
    METHODS[cls.name] = cls()
    return cls


def _load_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name not in _SHARED and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise HubError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")
    return METHODS[name]


def method_for_config(config: dict[str, Any]) -> Method:
    for method in METHODS.values():
        if method.peft_type == config.get("peft_type"):
            return method
    raise ModuleFolderError(f"peft_type {config.get('peft_type')!r} is not supported; use one of {', '.join(METHODS)}")


_load_all()

__all__ = ["CONFIG_FILE", "METHODS", "WEIGHTS_FILE", "Method", "Option", "get_method", "method_for_config", "read_config", "register_method"]

"""PET methods behind one contract (see base.Method), looked up by name or by a folder's peft_type."""

from __future__ import annotations

from typing import Any

from hub.errors import HubError, ModuleFolderError
from hub.methods.base import CONFIG_FILE, WEIGHTS_FILE, Method, read_config
from hub.methods.bottleneck import BottleneckMethod
from hub.methods.peft_methods import IA3Method, LoraMethod, PrefixMethod, PromptTuningMethod

METHODS: dict[str, Method] = {method.name: method for method in (LoraMethod(), PrefixMethod(), PromptTuningMethod(), IA3Method(), BottleneckMethod())}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise HubError(f"unknown method {name!r}; use one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_for_config(config: dict[str, Any]) -> Method:
    for method in METHODS.values():
        if method.peft_type == config.get("peft_type"):
            return method
    raise ModuleFolderError(f"peft_type {config.get('peft_type')!r} is not supported; use one of {', '.join(sorted(METHODS))}")


__all__ = ["CONFIG_FILE", "METHODS", "WEIGHTS_FILE", "Method", "get_method", "method_for_config", "read_config"]

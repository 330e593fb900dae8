"""The contract every PET method meets, PEFT-backed or the project's own.

A module leaves a model as a flat `{name: tensor}` dict plus a JSON config and
goes back in the same way; on disk it is a folder of `adapter_config.json` and
`adapter_model.safetensors` (the layout PEFT's `save_pretrained` writes).

A method's hyperparameters are its *options* (LoRA's `r`, the adapter's
`adapter_size`): typed, listed by `options()`, and kept apart from the call
options of `ensemble`/`train` so that a misspelt one is an error, not a silent default.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from hub.backbones import BaseModelRef
from hub.errors import HubError, ModuleFolderError
from hub.folders import PICKLE_FILES, WEIGHTS_FILE, read_config, write_config

SCALARS: dict[Any, type] = {int: int, float: float, bool: bool, str: str}
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


@dataclass(frozen=True)
class Option:
    """One hyperparameter of a method: its name and type (a scalar type, or any other annotation)."""

    name: str
    type: Any

    def parse(self, method: str, raw: object) -> object:
        """`raw` as this option's value; a string (from `--method-option KEY=VALUE`) is converted to the type."""
        scalar = SCALARS.get(self.type)
        if not isinstance(raw, str) or scalar is str:
            if scalar is not None and not _is_a(raw, scalar):
                raise HubError(f"{method} option {self.name} takes {scalar.__name__}, got {raw!r}")
            return raw
        if scalar is bool:
            if raw.lower() not in TRUE + FALSE:
                raise HubError(f"{method} option {self.name} takes true or false, got {raw!r}")
            return raw.lower() in TRUE
        if scalar is not None:
            try:
                return scalar(raw)
            except ValueError:
                raise HubError(f"{method} option {self.name} takes {scalar.__name__}, got {raw!r}") from None
        # Lists and mappings come as JSON (e.g. target_modules='["query","value"]'); anything else stays a string.
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


def _is_a(value: object, scalar: type) -> bool:
    if scalar is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if scalar is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, scalar)


class Method(ABC):
    """One PET method: its options and config, attaching it to a backbone, moving its tensors in and out."""

    name: ClassVar[str]
    peft_type: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def options(self) -> dict[str, Option]:
        """The hyperparameters a user may set, by name."""

    def parse_options(self, raw: Mapping[str, object] | None) -> dict[str, Any]:
        """Check option names and convert values; an unknown name is an error naming the valid ones."""
        known = self.options()
        parsed = {}
        for key, value in (raw or {}).items():
            if key not in known:
                raise HubError(f"{self.name} has no option {key!r}; its options are {', '.join(sorted(known))}")
            parsed[key] = known[key].parse(self.name, value)
        return parsed

    @abstractmethod
    def default_config(self, ref: BaseModelRef, options: Mapping[str, object] | None = None) -> dict[str, Any]:
        """The method's config for this backbone: the paper's defaults, with `options` (checked) on top."""

    @abstractmethod
    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        """Wrap a freshly loaded backbone so that only the module's parameters train."""

    def attached_config(self, model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
        """The config as it stands once attached to `model` (what a saved folder should hold)."""
        return config

    @abstractmethod
    def get_tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The module's tensors under their saved names (detached copies)."""

    @abstractmethod
    def live_parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """Saved name -> the live parameter that holds it, so that switching candidates is a plain copy into existing storage."""

    def fitting_parameters(self, model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> dict[str, nn.Parameter]:
        """`live_parameters`, once every name and shape of `tensors` is checked to match them."""
        live = self.live_parameters(model)
        missing = sorted(set(live) - set(tensors))
        unexpected = sorted(set(tensors) - set(live))
        if missing or unexpected:
            raise ModuleFolderError(f"module tensors do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(live[name].shape):
                raise ModuleFolderError(f"tensor {name} has shape {tuple(tensor.shape)}, the model expects {tuple(live[name].shape)}")
        return live

    def set_tensors(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        """Copy tensors into the live module in place; every name and shape must match."""
        live = self.fitting_parameters(model, tensors)
        with torch.no_grad():
            for name, tensor in tensors.items():
                live[name].copy_(tensor)

    @abstractmethod
    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Raise ModuleFolderError when the config and the weights disagree."""

    def read_folder(self, folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        config = read_config(folder)
        tensors = read_weights(folder)
        self.check_config(config, tensors)
        return config, tensors

    def write_folder(self, folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], base_model_path: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_config(folder, config, base_model_path)
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(folder / WEIGHTS_FILE))


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Load the module's safetensors; a pickle-only checkpoint is refused, never opened."""
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        pickled = [name for name in PICKLE_FILES if (folder / name).exists()]
        if pickled:
            raise ModuleFolderError(
                f"{folder / pickled[0]} is a pickle checkpoint, which deltahub never loads; re-save it with save_pretrained(safe_serialization=True)"
            )
        raise ModuleFolderError(f"{folder} has no {WEIGHTS_FILE}; pass the folder that save_pretrained wrote")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ModuleFolderError(f"cannot read {path}: {error}") from None
    if not tensors:
        raise ModuleFolderError(f"{path} holds no tensors")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModuleFolderError(f"{path}: tensor {name} holds NaN or Inf; retrain or fix the module before pushing")
    return tensors

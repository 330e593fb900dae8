"""The contract every PET method meets, PEFT-backed or the project's own.

A module leaves a model as a flat `{name: tensor}` dict plus a JSON config and
goes back in the same way; on disk it is a folder of `adapter_config.json` and
`adapter_model.safetensors` (the layout PEFT's `save_pretrained` writes).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from hub.backbones import BaseModelRef
from hub.errors import ModuleFolderError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLE_FILES = ("adapter_model.bin", "pytorch_model.bin", "adapter_model.pt")


class Method(ABC):
    """One PET method: build its config, attach it to a backbone, move its tensors in and out."""

    name: ClassVar[str]
    peft_type: ClassVar[str]

    @abstractmethod
    def default_config(self, ref: BaseModelRef, **overrides: Any) -> dict[str, Any]:
        """The method's config for this backbone, paper defaults unless overridden."""

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
    def set_tensors(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        """Copy tensors into the live module in place; every name and shape must match."""

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
        (folder / CONFIG_FILE).write_text(json.dumps({**config, "base_model_name_or_path": base_model_path}, indent=2, sort_keys=True) + "\n")
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(folder / WEIGHTS_FILE))


def read_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise ModuleFolderError(f"module folder {folder} does not exist; pass the folder that save_pretrained wrote")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise ModuleFolderError(f"{folder} has no {CONFIG_FILE}; pass the folder that save_pretrained wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModuleFolderError(f"cannot read {folder / CONFIG_FILE}: {error}") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ModuleFolderError(f"{folder / CONFIG_FILE} has no peft_type; it is not a module config")
    return config


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


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not math.isfinite(float(tensor.float().abs().sum())):
            raise ModuleFolderError(f"{what}: tensor {name} holds NaN or Inf")

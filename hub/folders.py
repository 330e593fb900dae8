"""A module folder on disk, in the layout PEFT's `save_pretrained` writes: its file names and its config.

Nothing here needs torch or PEFT, so writing an export and listing the folders an import will read
load no model library; reading the weights (hub.methods) does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.errors import ModuleFolderError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLE_FILES = ("adapter_model.bin", "pytorch_model.bin", "adapter_model.pt")
# The peft_type of deltahub's own bottleneck adapters (hub.methods.bottleneck), which PEFT cannot load.
BOTTLENECK_TYPE = "BOTTLENECK"


def peft_loads(config: dict[str, Any]) -> bool:
    """Whether `PeftModel.from_pretrained` loads a folder with this config (every method but the bottleneck adapter)."""
    return config.get("peft_type") != BOTTLENECK_TYPE


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


def trainable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with PEFT's `inference_mode` off, where it has one.

    PEFT's save_pretrained always records `inference_mode: true`; a registry module is a starting point
    for training (a composed init is nothing else), and a loader that honours the flag
    (`get_peft_model(model, PeftConfig.from_pretrained(folder))`) would freeze it.
    """
    return {**config, "inference_mode": False} if "inference_mode" in config else dict(config)


def write_config(folder: Path, config: dict[str, Any], base_model_path: str) -> None:
    """Write adapter_config.json (the folder must exist): the config, trainable, with the base model PEFT loads it on."""
    text = json.dumps({**trainable_config(config), "base_model_name_or_path": base_model_path}, indent=2, sort_keys=True)
    (folder / CONFIG_FILE).write_text(text + "\n")

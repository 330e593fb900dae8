"""LoRA (Hu et al., 2021), PEFT's implementation at the paper's size."""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig

from hub.errors import ModuleFolderError
from hub.methods import register_method
from hub.methods.peft_method import PeftMethod


@register_method
class LoraMethod(PeftMethod):
    name = "lora"
    peft_type = "LORA"
    summary = "low-rank updates of the attention and feed-forward weights"
    config_class = LoraConfig
    defaults = {"r": 10, "lora_alpha": 16, "lora_dropout": 0.0}  # the paper's LoRA size

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().check_config(config, tensors)
        rank = int(config.get("r", 8))
        patterns = config.get("rank_pattern") or {}
        targets = config.get("target_modules")
        for name, tensor in tensors.items():
            if ".lora_A." in name or ".lora_B." in name:
                module_path = name.split(".lora_")[0]
                expected = next((int(r) for key, r in patterns.items() if module_path.endswith(key)), rank)
                actual = tensor.shape[0] if ".lora_A." in name else tensor.shape[1]
                if actual != expected:
                    raise ModuleFolderError(f"config says LoRA rank {expected} but {name} has rank {actual}; the config and weights disagree")
                if isinstance(targets, list) and targets and module_path.rsplit(".", 1)[-1] not in targets:
                    raise ModuleFolderError(
                        f"{name} adapts {module_path.rsplit('.', 1)[-1]!r}, which is not in the config's target_modules {targets}; "
                        "the config and weights disagree"
                    )
        if not any(".lora_A." in name for name in tensors):
            raise ModuleFolderError("the weights hold no lora_A tensors but the config is LoRA; the config and weights disagree")

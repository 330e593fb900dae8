"""Prefix tuning (Li & Liang, 2021), PEFT's implementation."""

from __future__ import annotations

from typing import Any

import torch
from peft import PrefixTuningConfig

from hub.errors import ModuleFolderError
from hub.methods import register_method
from hub.methods.base import Option
from hub.methods.peft_method import PeftMethod

# A projected prefix is saved as its MLP's output, which PEFT cannot load back into a trainable model.
UNSUPPORTED = ("prefix_projection", "encoder_hidden_size")


@register_method
class PrefixMethod(PeftMethod):
    name = "prefix"
    peft_type = "PREFIX_TUNING"
    summary = "trained keys and values prepended to every attention layer"
    config_class = PrefixTuningConfig
    # The paper uses 120 virtual tokens on T5-base; 20 keep CPU training of MiniLM affordable.
    defaults = {"num_virtual_tokens": 20}

    def options(self) -> dict[str, Option]:
        return {name: option for name, option in super().options().items() if name not in UNSUPPORTED}

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().check_config(config, tensors)
        prompt = tensors.get("prompt_embeddings")
        if prompt is None:
            raise ModuleFolderError(f"the weights hold no prompt_embeddings but the config is {self.peft_type}; the config and weights disagree")
        if prompt.shape[0] != self.prompt_rows(config):
            raise ModuleFolderError(
                f"config says {config.get('num_virtual_tokens')} virtual tokens but prompt_embeddings has {prompt.shape[0]} rows; "
                "the config and weights disagree"
            )

    def prompt_rows(self, config: dict[str, Any]) -> int:
        # One prefix (its keys and values for every layer) a virtual token, shared by encoder and decoder.
        return int(config.get("num_virtual_tokens", 0))

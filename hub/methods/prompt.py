"""Prompt tuning (Lester et al., 2021), PEFT's implementation."""

from __future__ import annotations

from typing import Any

from peft import PromptTuningConfig

from hub.methods import register_method
from hub.methods.prefix import PrefixMethod


@register_method
class PromptTuningMethod(PrefixMethod):
    name = "prompt"
    peft_type = "PROMPT_TUNING"
    summary = "trained input embeddings prepended to the input"
    config_class = PromptTuningConfig

    def prompt_rows(self, config: dict[str, Any]) -> int:
        # Prompt tuning keeps separate virtual tokens for the encoder and the decoder of a seq2seq model.
        return int(config.get("num_virtual_tokens", 0)) * int(config.get("num_transformer_submodules") or 1)

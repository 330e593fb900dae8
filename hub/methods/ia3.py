"""IA3 (Liu et al., 2022): learned rescaling of keys, values and feed-forward activations, PEFT's implementation."""

from __future__ import annotations

from peft import IA3Config

from hub.methods import register_method
from hub.methods.peft_method import PeftMethod


@register_method
class IA3Method(PeftMethod):
    name = "ia3"
    peft_type = "IA3"
    summary = "learned vectors rescaling keys, values and feed-forward activations"
    config_class = IA3Config

"""Formulations: how each backbone kind maps a task onto its shared output space."""

from __future__ import annotations

from hub.backbones import BaseModelRef, load_tokenizer
from hub.errors import HubError
from hub.formulations.base import Batch, Formulation
from hub.formulations.cross_encoder import CrossEncoderFormulation
from hub.formulations.text_to_text import CausalFormulation, Seq2SeqFormulation

FORMULATIONS: dict[str, type[Formulation]] = {"cross-encoder": CrossEncoderFormulation, "seq2seq": Seq2SeqFormulation, "causal": CausalFormulation}


def formulation_for(ref: BaseModelRef, max_length: int = 128) -> Formulation:
    if ref.kind not in FORMULATIONS:
        raise HubError(f"backbone kind {ref.kind!r} has no formulation yet; use one of {', '.join(sorted(FORMULATIONS))}")
    return FORMULATIONS[ref.kind](load_tokenizer(ref), max_length=max_length)


__all__ = ["Batch", "FORMULATIONS", "Formulation", "formulation_for"]

"""Formulations: how each backbone family maps a task onto its shared output space (see hub.families)."""

from __future__ import annotations

from hub.formulations.base import Batch, Formulation
from hub.formulations.cross_encoder import CrossEncoderFormulation
from hub.formulations.text_to_text import CausalFormulation, Seq2SeqFormulation

__all__ = ["Batch", "CausalFormulation", "CrossEncoderFormulation", "Formulation", "Seq2SeqFormulation"]

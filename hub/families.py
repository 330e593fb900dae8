"""Backbone families: what kind of model a base model is, and everything that follows from it.

A family fixes the shared output space (docs/concepts.md, "Family"): `cross-encoder` (an encoder
scoring each (input, candidate) pair with one logit) or `seq2seq` / `causal`
(text-to-text, scored per answer token). Each family names, in one record, the
transformers class that loads it, the PEFT task type its modules declare, the
formulation that maps tasks onto its outputs, and the fresh heads that train with
a module. Adding a family is adding one `register_family(Family(...))` here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.errors import HubError

if TYPE_CHECKING:
    from hub.formulations import Formulation


@dataclass(frozen=True)
class Family:
    name: str
    task_type: str  # PEFT's TaskType value, written into every module config of this family
    auto_model: str  # the transformers Auto class that loads such a base model
    # The class in hub.formulations, imported on first use: it needs torch, and a model card needs only the names here.
    formulation_name: str
    recognizes: Callable[[Mapping[str, Any]], bool] = field(compare=False)  # from a model folder's config.json
    load_options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    heads: tuple[str, ...] = ()  # freshly initialised heads that train and are saved with the module

    @property
    def formulation(self) -> type[Formulation]:
        return getattr(importlib.import_module("hub.formulations"), self.formulation_name)


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"two backbone families are named {family.name!r}")
    FAMILIES[family.name] = family
    return family


def family_named(name: str) -> Family:
    if name not in FAMILIES:
        raise HubError(f"unknown backbone family {name!r}; use one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of_task_type(task_type: object) -> Family | None:
    """The family whose modules declare this PEFT task type (None: not declared or unknown)."""
    return next((family for family in FAMILIES.values() if family.task_type == task_type), None)


def infer_family(config: Mapping[str, Any]) -> Family:
    """The first registered family that recognizes a model folder's config.json."""
    return next(family for family in FAMILIES.values() if family.recognizes(config))


def _is_causal(config: Mapping[str, Any]) -> bool:
    return any(arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in config.get("architectures") or [])


# Order matters: the cross-encoder recognizes every encoder, so it is asked last.
SEQ2SEQ = register_family(
    Family("seq2seq", "SEQ_2_SEQ_LM", "AutoModelForSeq2SeqLM", "Seq2SeqFormulation", recognizes=lambda config: bool(config.get("is_encoder_decoder")))
)
CAUSAL = register_family(Family("causal", "CAUSAL_LM", "AutoModelForCausalLM", "CausalFormulation", recognizes=_is_causal))
CROSS_ENCODER = register_family(
    Family(
        "cross-encoder",
        "SEQ_CLS",
        "AutoModelForSequenceClassification",
        "CrossEncoderFormulation",
        recognizes=lambda config: True,
        load_options={"num_labels": 1},
        # PEFT trains a SEQ_CLS model's fresh head with the module (its modules_to_save); so do bottleneck adapters.
        heads=("classifier", "score"),
    )
)

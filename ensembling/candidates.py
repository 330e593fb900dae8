"""What ensembling needs from the world: candidates (modules to score) and an evaluator.

`ensembling` never imports `hub`. It declares here the small interface it needs
to evaluate a candidate on the target task; `hub.evaluation` implements it for
Hugging Face models (a PET method attached to a live backbone + a formulation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Rows:
    """Predictions on the target's scoring examples, in the shared output space.

    `log_probs[r]` is a distribution over row r's candidates (padding is -inf) and
    `gold[r]` the index of its gold answer: one row per example (cross-encoder) or
    one row per answer token over the vocabulary (text-to-text).
    """

    log_probs: torch.Tensor
    gold: torch.Tensor


@dataclass(frozen=True)
class Candidate:
    """A source module: who it is (for provenance and messages) and its tensors."""

    id: int
    task: str
    category: str
    digest: str
    tensors: Tensors
    base_model: str = ""
    metadata: Mapping[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"module {self.id} ({self.task})"


@dataclass(frozen=True)
class Target:
    """The new task: what strategies may read about it besides its examples."""

    task: str
    category: str
    fingerprint: str = ""


@runtime_checkable
class Evaluator(Protocol):
    """A live model with a module slot, bound to the target task's data.

    The base model is loaded once; `apply` switches candidates by copying their
    tensors into the live module parameters. Every method that trains leaves the
    live module in an unspecified state: call `apply` before reading predictions.
    """

    def default_tensors(self) -> dict[str, torch.Tensor]:
        """The method's default initialization (what `random` composes)."""

    def apply(self, tensors: Tensors) -> None:
        """Load a module's tensors into the live model, in place."""

    def rows(self) -> Rows:
        """Predictions of the applied module on the target's scoring examples (no gradients)."""

    def gradient_norms(self) -> list[float]:
        """‖∇θ L(θ; batch)‖₂ of the applied module, one per scoring batch (θ: the module's parameters)."""

    def train_reference(self, steps: int, seed: int) -> dict[str, torch.Tensor]:
        """A module briefly trained on the target's train examples from the default init."""

    def finetune(self, tensors: Tensors, steps: int, seed: int) -> dict[str, torch.Tensor]:
        """`tensors` tuned on the target's train examples for a fixed number of steps."""

    def dev_score(self) -> float:
        """Accuracy of the applied module on the target's dev examples."""

"""The contract of a formulation: how examples become model inputs, a loss and predictions.

Every strategy reads predictions as rows of log-probabilities over one shared
output space with a gold index per row: a row per example over its candidates
(cross-encoder), or a row per answer token over the vocabulary (text-to-text).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ensembling.candidates import Rows
from hub.datasets import Example


@dataclass
class Batch:
    """Tokenized model inputs for a few examples, plus what is needed to read the outputs."""

    inputs: dict[str, torch.Tensor]
    extras: dict[str, torch.Tensor]
    size: int

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            inputs={key: value.to(device) for key, value in self.inputs.items()},
            extras={key: value.to(device) for key, value in self.extras.items()},
            size=self.size,
        )


class Formulation(ABC):
    """Turns examples into batches and model outputs into a loss, predictions and choices."""

    def __init__(self, tokenizer, max_length: int = 128) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    @abstractmethod
    def collate(self, examples: Sequence[Example]) -> Batch:
        """Tokenize a list of examples into one batch."""

    @abstractmethod
    def predictions(self, model: nn.Module, batch: Batch) -> Rows:
        """Rows of log-probabilities with their gold indices (differentiable)."""

    @abstractmethod
    def choose(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The index of the predicted candidate of each example."""

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        predictions = self.predictions(model, batch)
        return nn.functional.nll_loss(predictions.log_probs, predictions.gold)

    def choose_with_loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen candidates and the batch's mean loss (formulations that can share one forward do)."""
        return self.choose(model, batch), self.loss(model, batch)

    def batches(self, examples: Sequence[Example], batch_size: int) -> list[Batch]:
        return [self.collate(examples[start : start + batch_size]) for start in range(0, len(examples), batch_size)]

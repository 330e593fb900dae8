"""Encoder backbones as cross-encoders: one logit per (input, candidate), softmax over a task's candidates.

The one-logit head belongs to the module, so modules of any tasks share this output space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ensembling.candidates import Rows
from hub.datasets import Example
from hub.formulations.base import Batch, Formulation


class CrossEncoderFormulation(Formulation):
    def collate(self, examples: Sequence[Example]) -> Batch:
        inputs = [example.input_text for example in examples for _ in example.choices]
        candidates = [choice for example in examples for choice in example.choices]
        owner = [index for index, example in enumerate(examples) for _ in example.choices]
        position = [slot for example in examples for slot in range(len(example.choices))]
        encoded = self.tokenizer(inputs, candidates, truncation="only_first", max_length=self.max_length, padding=True, return_tensors="pt")
        return Batch(
            inputs=dict(encoded),
            extras={
                "owner": torch.tensor(owner),
                "position": torch.tensor(position),
                "gold": torch.tensor([example.label for example in examples]),
                "width": torch.tensor(max(len(example.choices) for example in examples)),
            },
            size=len(examples),
        )

    def predictions(self, model: nn.Module, batch: Batch) -> Rows:
        logits = model(**batch.inputs).logits.squeeze(-1)
        width = int(batch.extras["width"])
        # Examples may have different numbers of candidates: pad with -inf so padding gets zero probability.
        grid = logits.new_full((batch.size, width), float("-inf"))
        grid = grid.index_put((batch.extras["owner"], batch.extras["position"]), logits)
        return Rows(log_probs=torch.log_softmax(grid.float(), dim=-1), gold=batch.extras["gold"])

    def choose(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.predictions(model, batch).log_probs.argmax(dim=-1)

    def choose_with_loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        predictions = self.predictions(model, batch)
        return predictions.log_probs.argmax(dim=-1), nn.functional.nll_loss(predictions.log_probs, predictions.gold)

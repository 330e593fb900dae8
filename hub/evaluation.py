"""The hub side of `ensembling.candidates.Evaluator`: candidates evaluated on a live Hugging Face model.

The base model is loaded (deep-copied from the Hub's cache) and the method attached
once; each candidate is switched in with `method.set_tensors`, an in-place copy into
the live module parameters. The target's scoring examples are tokenized once,
sorted by length so batches carry little padding, and run under
`torch.inference_mode()`; only `gradient_norms` and the short tuning runs
(`train_reference`, `finetune`) build graphs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ensembling.candidates import Rows
from ensembling.errors import EnsemblingError
from hub.datasets import Example
from hub.formulations import Batch, Formulation
from hub.methods import Method
from hub.training import seed_everything

# Examples per scoring forward (throughput only; scores do not depend on it). On CPU the
# forward is compute-bound and small length-sorted batches pad least: 8 measured ~25%
# faster than 32 for MiniLM on 2 cores. Accelerators want the larger batch.
CPU_SCORE_BATCH_SIZE = 8
ACCELERATOR_SCORE_BATCH_SIZE = 32
GRAD_BATCH_SIZE = 8  # examples per batch for grand (the paper's batch size)
TRAIN_BATCH_SIZE = 8
LEARNING_RATE = 5e-4


def by_length(examples: Sequence[Example]) -> list[Example]:
    """Examples ordered by text length (stable), so each batch pads to a similar length."""
    return sorted(examples, key=lambda example: len(example.input_text) + max(len(choice) for choice in example.choices))


class ModelEvaluator:
    """Implements `ensembling.candidates.Evaluator` for a method attached to a live backbone."""

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        formulation: Formulation,
        score_examples: Sequence[Example],
        *,
        train_examples: Sequence[Example] = (),
        dev_examples: Sequence[Example] = (),
        device: torch.device | str = "cpu",
        batch_size: int | None = None,
        grad_batch_size: int = GRAD_BATCH_SIZE,
        train_batch_size: int = TRAIN_BATCH_SIZE,
        lr: float = LEARNING_RATE,
    ) -> None:
        self.device = torch.device(device)
        if batch_size is None:
            batch_size = CPU_SCORE_BATCH_SIZE if self.device.type == "cpu" else ACCELERATOR_SCORE_BATCH_SIZE
        self.model = model.to(self.device)
        self.model.eval()
        self.method = method
        self.formulation = formulation
        self._default = {name: tensor.cpu() for name, tensor in method.get_tensors(self.model).items()}
        self._parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        ordered = by_length(score_examples)
        self._score_batches = self._collate(ordered, batch_size)
        self._grad_batches = self._collate(ordered, grad_batch_size)
        self._train_examples = list(train_examples)
        self._dev_batches = self._collate(by_length(dev_examples), batch_size)
        self._train_batch_size = train_batch_size
        self._lr = lr

    def _collate(self, examples: Sequence[Example], size: int) -> list[Batch]:
        return [batch.to(self.device) for batch in self.formulation.batches(list(examples), size)] if examples else []

    def default_tensors(self) -> dict[str, torch.Tensor]:
        return {name: tensor.clone() for name, tensor in self._default.items()}

    def apply(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.method.set_tensors(self.model, dict(tensors))

    def rows(self) -> Rows:
        self.model.eval()
        with torch.inference_mode():
            parts = [self.formulation.predictions(self.model, batch) for batch in self._score_batches]
        width = max(part.log_probs.shape[1] for part in parts)
        log_probs = torch.cat([_pad(part.log_probs.float(), width) for part in parts]).cpu()
        gold = torch.cat([part.gold for part in parts]).cpu()
        return Rows(log_probs, gold)

    def gradient_norms(self) -> list[float]:
        self.model.eval()  # no dropout: the gradient of the source as it is
        norms = []
        for batch in self._grad_batches:
            for parameter in self._parameters:
                parameter.grad = None
            with torch.enable_grad():
                loss = self.formulation.loss(self.model, batch)
                gradients = torch.autograd.grad(loss, self._parameters, allow_unused=True)
            norms.append(float(torch.sqrt(sum((g.double().pow(2).sum() for g in gradients if g is not None), torch.zeros((), dtype=torch.float64)))))
        return norms

    def train_reference(self, steps: int, seed: int) -> dict[str, torch.Tensor]:
        return self.finetune(self._default, steps, seed)

    def finetune(self, tensors: Mapping[str, torch.Tensor], steps: int, seed: int) -> dict[str, torch.Tensor]:
        """AdamW (the paper's lr 5e-4, batch 8) for `steps` steps over the shuffled train examples."""
        if not self._train_examples:
            raise EnsemblingError("the target dataset has no train examples to tune on; add a train split")
        self.apply(tensors)
        seed_everything(seed)
        order = random.Random(seed)
        optimizer = torch.optim.AdamW(self._parameters, lr=self._lr)
        self.model.train()
        done = 0
        with torch.enable_grad():
            while done < steps:
                shuffled = list(self._train_examples)
                order.shuffle(shuffled)
                for start in range(0, len(shuffled), self._train_batch_size):
                    batch = self.formulation.collate(shuffled[start : start + self._train_batch_size]).to(self.device)
                    loss = self.formulation.loss(self.model, batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    done += 1
                    if done >= steps:
                        break
        self.model.eval()
        for parameter in self._parameters:
            parameter.grad = None
        return {name: tensor.cpu() for name, tensor in self.method.get_tensors(self.model).items()}

    def dev_score(self) -> float:
        if not self._dev_batches:
            raise EnsemblingError("the target dataset has no dev examples to score on; add a dev split")
        self.model.eval()
        correct = total = 0
        with torch.inference_mode():
            for batch in self._dev_batches:
                chosen = self.formulation.choose(self.model, batch)
                correct += int((chosen == batch.extras["gold"]).sum())
                total += batch.size
        return correct / total


def _pad(log_probs: torch.Tensor, width: int) -> torch.Tensor:
    if log_probs.shape[1] == width:
        return log_probs
    padding = log_probs.new_full((log_probs.shape[0], width - log_probs.shape[1]), float("-inf"))
    return torch.cat([log_probs, padding], dim=1)

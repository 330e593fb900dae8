"""The hub side of `ensembling.candidates.Evaluator`: candidates evaluated on a live Hugging Face model.

The base model is loaded (deep-copied from the Hub's cache) and the method attached
once; each candidate is switched in with `method.set_tensors`, an in-place copy into
the live module parameters. The target's scoring examples are tokenized once,
sorted by length so batches carry little padding, and run under
`torch.inference_mode()`. Tuning (θ_t, and each source for euclidean and performance)
is `hub.training.train` on the target's k-shot train split with early stopping on its
k-shot dev split, under the same `TrainConfig` the target itself is trained with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cached_property

import torch
from torch import nn

from ensembling.candidates import Candidate, Rows, Tuned
from ensembling.errors import EnsemblingError
from hub.datasets import Example
from hub.formulations import Batch, Formulation
from hub.methods import Method
from hub.training import TrainConfig, evaluate, train

# Examples per scoring forward (throughput only; scores do not depend on it). On CPU the
# forward is compute-bound and small length-sorted batches pad least: 8 measured ~25%
# faster than 32 for MiniLM on 2 cores. Accelerators want the larger batch.
CPU_SCORE_BATCH_SIZE = 8
ACCELERATOR_SCORE_BATCH_SIZE = 32


def by_length(examples: Sequence[Example]) -> list[Example]:
    """Examples ordered by text length (stable), so each batch pads to a similar length."""
    return sorted(examples, key=lambda example: len(example.input_text) + max(len(choice) for choice in example.choices))


class ModelEvaluator:
    """Implements `ensembling.candidates.Evaluator` for a method attached to a live backbone.

    `tuning` is the training budget of θ_t and of tuned sources (its `max_steps` is replaced by
    the strategy's cap); `reference`, when given, is θ_t already trained under that budget.
    """

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
        tuning: TrainConfig | None = None,
        reference: Tuned | None = None,
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
        # grand's gradient is taken on batches of the scoring-batch size: the whole scoring batch (paper).
        self._grad_batches = self._collate(ordered, max(len(ordered), 1))
        self._train_examples = tuple(train_examples)
        self._dev_examples = tuple(dev_examples)
        self._score_batch_size = batch_size
        self._tuning = dataclasses.replace(tuning or TrainConfig(), device=str(self.device), progress=False)
        self._reference = reference
        self._predictions: dict[str, Rows] = {}

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

    def predict(self, candidate: Candidate) -> Rows:
        # Keyed by the blob digest: the same stored tensors give the same rows on the same examples.
        if candidate.digest not in self._predictions:
            self.apply(candidate.tensors)
            self._predictions[candidate.digest] = self.rows()
        return self._predictions[candidate.digest]

    @cached_property
    def _train_batches(self) -> list[Batch]:
        # Tokenized on first use: only a strategy that fits weights to the train loss reads it (many times per target).
        return self._collate(by_length(self._train_examples), self._score_batch_size)

    def train_loss(self) -> float:
        if not self._train_examples:
            raise EnsemblingError("the target dataset has no train examples to measure a loss on; add a train split")
        self.model.eval()
        total, rows = 0.0, 0
        with torch.inference_mode():
            for batch in self._train_batches:
                part = self.formulation.predictions(self.model, batch)
                total += float(nn.functional.nll_loss(part.log_probs.float(), part.gold, reduction="sum"))
                rows += int(part.gold.numel())
        return total / rows

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

    def use_reference(self, reference: Tuned) -> None:
        """θ_t trained elsewhere under the same budget (the benchmark's `random` arm), instead of training it here."""
        self._reference = reference

    def reference(self, max_steps: int, seed: int) -> Tuned:
        if self._reference is None:
            self._reference = self.finetune(self._default, max_steps, seed)
        return self._reference

    def finetune(self, tensors: Mapping[str, torch.Tensor], max_steps: int, seed: int) -> Tuned:
        if not self._train_examples:
            raise EnsemblingError("the target dataset has no train examples to tune on; add a train split")
        if not self._dev_examples:
            raise EnsemblingError("the target dataset has no dev examples to keep the best tuning checkpoint by; add a dev split")
        self.apply(tensors)
        config = dataclasses.replace(self._tuning, seed=seed, max_steps=max_steps, epochs=max_steps)
        result = train(self.model, self.method, self.formulation, self._train_examples, self._dev_examples, config)
        for parameter in self._parameters:
            parameter.grad = None
        tuned = {name: tensor.cpu() for name, tensor in self.method.get_tensors(self.model).items()}
        return Tuned(tuned, result.steps, result.best_dev)

    def dev_score(self) -> float:
        if not self._dev_examples:
            raise EnsemblingError("the target dataset has no dev examples to score on; add a dev split")
        return evaluate(self.model, self.formulation, self._dev_examples, self._score_batch_size, self.device)


def _pad(log_probs: torch.Tensor, width: int) -> torch.Tensor:
    if log_probs.shape[1] == width:
        return log_probs
    padding = log_probs.new_full((log_probs.shape[0], width - log_probs.shape[1]), float("-inf"))
    return torch.cat([log_probs, padding], dim=1)

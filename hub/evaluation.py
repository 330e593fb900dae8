"""The hub side of `ensembling.candidates.Evaluator`: candidates evaluated on a live Hugging Face model.

The base model is loaded (deep-copied from the Hub's cache) and the method attached
once; each candidate is switched in with `method.set_tensors`, an in-place copy into
the live module parameters. The target's scoring examples are tokenized once,
sorted by length so batches carry little padding, and run under
`torch.inference_mode()`. `predict_many` can score a group of candidates in one forward
per scoring batch instead: `torch.func.vmap` over `torch.func.functional_call`, the
candidates' tensors stacked along the vmapped dimension in place of the live module's.
Tuning (θ_t, each source for euclidean and performance, auto's cross-validation) is
`hub.training.train` on the target's k-shot train split with early stopping on its k-shot
dev split, under the same `TrainConfig` the target itself is trained with.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from functools import cached_property

import torch
from torch import nn

from ensembling.candidates import Candidate, Rows, Tuned, Validation
from ensembling.errors import EnsemblingError
from hub.datasets import Example, deterministic_sample
from hub.formulations import Batch, Formulation
from hub.methods import Method
from hub.training import TrainConfig, measure, train

# Examples per scoring forward (throughput only; scores do not depend on it). On CPU the
# forward is compute-bound and small length-sorted batches pad least: 8 measured ~25%
# faster than 32 for MiniLM on 2 cores. Accelerators want the larger batch.
CPU_SCORE_BATCH_SIZE = 8
ACCELERATOR_SCORE_BATCH_SIZE = 32
# Share of the free CUDA memory a batched group of candidates may take: the rest is headroom for the allocator
# (vmap's fallbacks, fragmentation) and for whatever else runs on the device.
FREE_MEMORY_SHARE = 0.5


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
        default: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.device = torch.device(device)
        if batch_size is None:
            batch_size = CPU_SCORE_BATCH_SIZE if self.device.type == "cpu" else ACCELERATOR_SCORE_BATCH_SIZE
        self.model = model.to(self.device)
        self.model.eval()
        self.method = method
        self.formulation = formulation
        # `default`: the default init, when the live module may hold something else now (a fold's view).
        self._default = {name: tensor.cpu() for name, tensor in (default if default is not None else method.get_tensors(self.model)).items()}
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
        # What each cached prediction cost, and the sum of those costs served again from the cache: a caller that
        # shares one evaluator across strategies charges each the scoring it reused, as if it had run alone.
        self._seconds: dict[str, float] = {}
        self.reused_s = 0.0
        self._scoring = _Scoring(self.model, formulation)

    def _collate(self, examples: Sequence[Example], size: int) -> list[Batch]:
        return [batch.to(self.device) for batch in self.formulation.batches(list(examples), size)] if examples else []

    def default_tensors(self) -> dict[str, torch.Tensor]:
        return {name: tensor.clone() for name, tensor in self._default.items()}

    def apply(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.method.set_tensors(self.model, dict(tensors))

    def rows(self) -> Rows:
        self.model.eval()
        with torch.inference_mode():
            return _joined([self.formulation.predictions(self.model, batch) for batch in self._score_batches])

    def predict(self, candidate: Candidate) -> Rows:
        # Keyed by the blob digest: the same stored tensors give the same rows on the same examples.
        if candidate.digest in self._predictions:
            self.reused_s += self._seconds[candidate.digest]
        else:
            started = time.perf_counter()
            self.apply(candidate.tensors)
            self._predictions[candidate.digest] = self.rows()
            self._seconds[candidate.digest] = time.perf_counter() - started
        return self._predictions[candidate.digest]

    def predict_many(self, candidates: Sequence[Candidate], group_size: int | None = None) -> list[Rows]:
        """`predict` of each candidate, `group_size` candidates per forward (None: see `_group_size`).

        No method falls back to one at a time: every registered method batches on MiniLM, T5 and GPT-2
        wherever it runs at all (tests/test_batched_scoring.py). A batched group leaves the live module
        as it was; a group of one is `predict`, which applies the candidate.
        """
        pending = list({candidate.digest: candidate for candidate in candidates if candidate.digest not in self._predictions}.values())
        self.reused_s += sum(self._seconds[digest] for digest in {candidate.digest for candidate in candidates} if digest in self._predictions)
        size = self._group_size(pending) if group_size is None else group_size
        if size < 1:
            raise ValueError(f"group_size must be at least 1, not {size}")
        for start in range(0, len(pending), size):
            # (sizing a group on CUDA scores the first candidate, which is then cached)
            group = [candidate for candidate in pending[start : start + size] if candidate.digest not in self._predictions]
            if len(group) == 1:
                self.predict(group[0])
            elif group:
                started = time.perf_counter()
                self._predictions.update(zip((candidate.digest for candidate in group), self._group_rows(group), strict=True))
                self._seconds.update(dict.fromkeys((candidate.digest for candidate in group), (time.perf_counter() - started) / len(group)))
        return [self._predictions[candidate.digest] for candidate in candidates]

    def _group_size(self, pending: Sequence[Candidate]) -> int:
        # On CPU the forward is compute-bound, so a group does the same arithmetic plus vmap's overhead (SDPA has no
        # CPU batching rule: attention runs candidate by candidate). MiniLM LoRA, 16 candidates, 64 examples, 1 thread
        # (benchmarks/scoring.py --batched): groups of 4-16 scored 0.29-0.42 candidates/s against 0.30-0.43 one at
        # a time, never faster, so one at a time stays the CPU default. Accelerators other than CUDA go one at a time
        # too: a group is sized by CUDA's free-memory query.
        if self.device.type != "cuda" or not pending:
            return 1
        # Scored alone, the first candidate measures what one candidate needs; a group needs about that many times
        # as much (its activations and outputs are the group's stacked along the vmapped dimension).
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self.predict(pending[0])
        needed = max(torch.cuda.max_memory_allocated(self.device) - before, 1)
        free, _ = torch.cuda.mem_get_info(self.device)
        return max(1, int(free * FREE_MEMORY_SHARE) // needed)

    def _group_rows(self, group: Sequence[Candidate]) -> list[Rows]:
        """The rows of each candidate of `group`, from one vmapped forward per scoring batch."""
        for candidate in group:  # refused as `apply` refuses it, before torch.stack fails on it less clearly
            self.method.fitting_parameters(self.model, candidate.tensors)
        stacked: dict[str, torch.Tensor] = {}
        for name, parameter in self.method.live_parameters(self.model).items():
            tensors = [candidate.tensors[name] for candidate in group]
            stacked[self._functional_names[name]] = torch.stack(tensors).to(device=parameter.device, dtype=parameter.dtype)

        def score(parameters: dict[str, torch.Tensor], batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.func.functional_call(self._scoring, parameters, (batch,))

        self.model.eval()
        parts: list[list[Rows]] = [[] for _ in group]
        with torch.inference_mode():
            for batch in self._score_batches:
                log_probs, gold = torch.func.vmap(score, in_dims=(0, None))(stacked, batch)
                for index, rows in enumerate(parts):
                    rows.append(Rows(log_probs[index], gold[index]))
        return [_joined(rows) for rows in parts]

    @cached_property
    def _functional_names(self) -> dict[str, str]:
        """Saved tensor name -> the name `functional_call` replaces in `_scoring` (of the live parameter holding it)."""
        names = {id(parameter): name for name, parameter in self._scoring.named_parameters(remove_duplicate=False)}
        return {name: names[id(parameter)] for name, parameter in self.method.live_parameters(self.model).items()}

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

    def holds_dev(self) -> bool:
        return bool(self._dev_examples)

    def dev_score(self) -> float:
        return self.dev_measure()[0]

    def dev_measure(self) -> tuple[float, float]:
        if not self._dev_examples:
            raise EnsemblingError("the target dataset has no dev examples to score on; add a dev split")
        score = measure(self.model, self.formulation, self._dev_examples, self._score_batch_size, self.device)
        return score.accuracy, score.loss

    @cached_property
    def _folds(self) -> list[tuple[tuple[Example, ...], tuple[Example, ...]]]:
        # Two folds, each part held out once: train/dev when both exist (the k-shot sample's halves),
        # else the train split halved per label, when every label has two examples to share out.
        if self._train_examples and self._dev_examples:
            return [(self._train_examples, self._dev_examples), (self._dev_examples, self._train_examples)]
        halves = halved_per_label(self._train_examples)
        return [] if halves is None else [halves, (halves[1], halves[0])]

    def cross_validation_folds(self) -> int:
        return len(self._folds)

    def fold(self, index: int) -> ModelEvaluator:
        """An evaluator on the same live model that knows only fold `index`'s training part.

        It scores, fits and tunes on that part alone (it is also its dev split), so an init built
        through it has never seen the part `validate` holds out.
        """
        fit, _held_out = self._folds[index]
        return ModelEvaluator(
            self.model,
            self.method,
            self.formulation,
            fit,
            train_examples=fit,
            dev_examples=fit,
            device=self.device,
            batch_size=self._score_batch_size,
            tuning=self._tuning,
            default=self._default,
        )

    def validate(self, index: int, tensors: Mapping[str, torch.Tensor], max_steps: int, seed: int) -> Validation:
        fit, held_out = self._folds[index]
        config = dataclasses.replace(self._tuning, seed=seed, max_steps=max_steps, epochs=max_steps)
        self.apply(tensors)
        result = train(self.model, self.method, self.formulation, fit, held_out, config)
        for parameter in self._parameters:
            parameter.grad = None
        kept = next(row for row in result.history if row["step"] == result.best_step)
        return Validation(result.best_dev, kept["dev_loss"], result.steps)


def halved_per_label(examples: Sequence[Example]) -> tuple[tuple[Example, ...], tuple[Example, ...]] | None:
    """Two disjoint parts holding every label, each example in one (by content hash); None if a label has one example."""
    by_label: dict[int, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    if not by_label or any(len(group) < 2 for group in by_label.values()):
        return None
    first: list[Example] = []
    second: list[Example] = []
    for label in sorted(by_label):
        ordered = deterministic_sample(by_label[label], len(by_label[label]))
        first += ordered[0::2]
        second += ordered[1::2]
    return tuple(first), tuple(second)


class _Scoring(nn.Module):
    """The formulation's predictions as a module's forward, so that `functional_call` swaps tensors in around all of it."""

    def __init__(self, model: nn.Module, formulation: Formulation) -> None:
        super().__init__()
        self.model = model
        self.formulation = formulation

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        part = self.formulation.predictions(self.model, batch)
        return part.log_probs, part.gold


def _joined(parts: Sequence[Rows]) -> Rows:
    """One scoring batch's rows after another, -inf padded to the widest."""
    width = max(part.log_probs.shape[1] for part in parts)
    log_probs = torch.cat([_pad(part.log_probs.float(), width) for part in parts]).cpu()
    gold = torch.cat([part.gold for part in parts]).cpu()
    return Rows(log_probs, gold)


def _pad(log_probs: torch.Tensor, width: int) -> torch.Tensor:
    if log_probs.shape[1] == width:
        return log_probs
    padding = log_probs.new_full((log_probs.shape[0], width - log_probs.shape[1]), float("-inf"))
    return torch.cat([log_probs, padding], dim=1)

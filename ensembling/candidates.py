"""What ensembling needs from the world: candidates (modules to score) and an evaluator.

`ensembling` never imports `hub`. It declares here the small interface it needs
to evaluate a candidate on the target task; `hub.evaluation` implements it for
Hugging Face models (a PET method attached to a live backbone + a formulation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


Tensors = Mapping[str, "torch.Tensor"]


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
    """A source module: who it is (for provenance and messages) and its tensors.

    `similarity`: the cosine of its dataset's embedding with the target's, filled by whoever
    builds the candidates when a strategy needs it (`Needs.SIMILARITY`); None otherwise.
    `dev_acc`: the accuracy its card records on its own task's dev split; None where none was recorded.
    """

    id: int
    task: str
    category: str
    digest: str
    tensors: Tensors
    base_model: str = ""
    metadata: Mapping[str, object] = field(default_factory=dict)
    similarity: float | None = None
    dev_acc: float | None = None

    @property
    def label(self) -> str:
        return f"module {self.id} ({self.task})"


@dataclass(frozen=True)
class Target:
    """The new task: what strategies may read about it besides its examples."""

    task: str
    category: str
    fingerprint: str = ""


@dataclass(frozen=True)
class Tuned:
    """A module tuned on the target's k-shot train split, kept at its best k-shot dev checkpoint."""

    tensors: Tensors
    steps: int  # optimizer steps taken (the budget spent, not the best checkpoint's step)
    dev: float  # k-shot dev accuracy of the kept checkpoint


@dataclass(frozen=True)
class Validation:
    """One cross-validation fold: an init tuned on one part of the target's k-shot data, scored on the other."""

    accuracy: float  # of the kept (best held-out) checkpoint
    loss: float  # its mean gold-answer loss on the held-out part
    steps: int  # optimizer steps taken


@runtime_checkable
class Evaluator(Protocol):
    """A live model with a module slot, bound to the target task's k-shot data.

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

    def predict(self, candidate: Candidate) -> Rows:
        """`rows()` of a candidate; the same candidate (by digest) is run once per evaluator."""

    def predict_many(self, candidates: Sequence[Candidate], group_size: int | None = None) -> list[Rows]:
        """`predict` of each candidate, scoring up to `group_size` of them in one forward (None: the evaluator's choice)."""

    def train_loss(self) -> float:
        """Mean cross-entropy of the applied module on the target's train examples (no gradients)."""

    def gradient_norms(self) -> list[float]:
        """‖∇θ L(θ; batch)‖₂ of the applied module, one per scoring batch (θ: the module's parameters)."""

    def reference(self, max_steps: int, seed: int) -> Tuned:
        """θ_t: the target's own module trained from the default init to its best dev checkpoint.

        Trained once per evaluator (or given by the caller, e.g. the benchmark's `random` arm).
        """

    def finetune(self, tensors: Tensors, max_steps: int, seed: int) -> Tuned:
        """`tensors` tuned on the target's train examples, kept at the best dev checkpoint within `max_steps`."""

    def holds_dev(self) -> bool:
        """Whether the target's data has a dev split (to keep checkpoints by and compare inits on)."""

    def dev_score(self) -> float:
        """Accuracy of the applied module on the target's dev examples."""

    def dev_measure(self) -> tuple[float, float]:
        """Accuracy and mean gold-answer loss of the applied module on the target's dev examples."""

    def cross_validation_folds(self) -> int:
        """How many folds the target's k-shot data gives (0: nothing can be held out)."""

    def fold(self, index: int) -> Evaluator:
        """An evaluator that knows only fold `index`'s training part: what it scores, fits and tunes on.

        An init built through it has not seen the part `validate(index, ...)` holds out.
        """

    def validate(self, index: int, tensors: Tensors, max_steps: int, seed: int) -> Validation:
        """`tensors` tuned on fold `index`'s training part within `max_steps`, kept and scored at its best held-out checkpoint."""

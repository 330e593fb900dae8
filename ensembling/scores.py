"""Score functions of the strategies: pure functions on tensors (see docs/strategies.md).

Rows are `log_probs [R, K]` (padding -inf, so its probability is 0) with `gold [R]`.
Sums run over the same rows for every candidate, so scores are comparable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ensembling.errors import EnsemblingError

if TYPE_CHECKING:
    import torch


def _checked(log_probs: torch.Tensor, gold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if log_probs.dim() != 2 or gold.dim() != 1 or log_probs.shape[0] != gold.shape[0]:
        raise EnsemblingError(f"predictions must be log_probs [R, K] with gold [R]; got {tuple(log_probs.shape)} and {tuple(gold.shape)}")
    if log_probs.shape[0] == 0:
        raise EnsemblingError("no prediction rows to score; the target needs labelled examples")
    return log_probs.double(), gold.long()


def _one_hot(gold: torch.Tensor, width: int) -> torch.Tensor:
    import torch

    return torch.nn.functional.one_hot(gold, width).double()


def loss_score(log_probs: torch.Tensor, gold: torch.Tensor) -> float:
    """Mean cross-entropy of the gold answers: -mean_r log p(gold_r)."""
    log_probs, gold = _checked(log_probs, gold)
    return float(-log_probs.gather(1, gold[:, None]).mean())


def kl_score(reference_log_probs: torch.Tensor, log_probs: torch.Tensor) -> float:
    """Σ_r KL(p_t(r) ‖ p_i(r)) with p_t the reference (target-trained) distribution."""
    import torch

    if reference_log_probs.shape != log_probs.shape:
        raise EnsemblingError(f"reference and candidate predictions differ in shape: {tuple(reference_log_probs.shape)} vs {tuple(log_probs.shape)}")
    reference, candidate = reference_log_probs.double(), log_probs.double()
    p_t = reference.exp()
    # Where p_t is 0 (padding) the term is 0 by convention, even where log p_i is -inf.
    terms = torch.where(p_t > 0, p_t * (reference - candidate), torch.zeros_like(p_t))
    return float(terms.sum())


def el2n_score(log_probs: torch.Tensor, gold: torch.Tensor) -> float:
    """Σ_r ‖p(r) − y(r)‖₂, the error L2 norm (y one-hot)."""
    log_probs, gold = _checked(log_probs, gold)
    return float((log_probs.exp() - _one_hot(gold, log_probs.shape[1])).norm(dim=1).sum())


def cos_score(log_probs: torch.Tensor, gold: torch.Tensor) -> float:
    """Σ_r cos(p(r), y(r)) = Σ_r p(gold_r) / ‖p(r)‖₂."""
    log_probs, gold = _checked(log_probs, gold)
    probs = log_probs.exp()
    return float((probs.gather(1, gold[:, None]).squeeze(1) / probs.norm(dim=1)).sum())


def grand_score(batch_gradient_norms: Iterable[float]) -> float:
    """Σ over a few batches of ‖∇θ L(θ_i; batch)‖₂."""
    norms = [float(norm) for norm in batch_gradient_norms]
    if not norms:
        raise EnsemblingError("grand needs at least one batch of target examples")
    return float(sum(norms))


def _same_keys(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor], what: str) -> list[str]:
    if set(first) != set(second):
        missing = sorted(set(first) ^ set(second))
        raise EnsemblingError(f"{what}: the modules do not share tensor {missing[0]}; they have different schemas")
    return sorted(first)


def weight_cos_score(reference: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> float:
    """Mean over tensors of cos(θ_t, θ_i) (a zero tensor has cosine 0 with anything)."""
    names = _same_keys(reference, tensors, "weight-cos")
    total = 0.0
    for name in names:
        a, b = reference[name].double().reshape(-1), tensors[name].double().reshape(-1)
        denominator = float(a.norm() * b.norm())
        total += float(a @ b) / denominator if denominator > 0 else 0.0
    return total / len(names)


def euclidean_score(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> float:
    """Σ over tensors of ‖θ_i'[t] − θ_i[t]‖₂ (the paper's code sums per-tensor norms)."""
    names = _same_keys(before, after, "euclidean")
    return math.fsum(float((after[name].double() - before[name].double()).norm()) for name in names)


def performance_score(tuned_dev: float, zero_shot_dev: float) -> float:
    """Dev score of θ_i' minus the zero-shot dev score of θ_i."""
    return float(tuned_dev) - float(zero_shot_dev)

"""Scores to weights: softmax(sign · s / τ), optional z-normalization, optional top-k."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ensembling.errors import EnsemblingError

if TYPE_CHECKING:
    pass


def check_temperature(temperature: float) -> float:
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise EnsemblingError(f"--temperature must be a positive number, got {temperature}")
    return float(temperature)


def check_top_k(top_k: int | None) -> int | None:
    if top_k is not None and top_k < 1:
        raise EnsemblingError(f"--top-k must be at least 1, got {top_k}")
    return top_k


def znormalize(scores: Sequence[float]) -> list[float]:
    """(s − mean) / std; all-equal scores become zeros."""
    import torch

    values = torch.tensor(list(scores), dtype=torch.float64)
    std = float(values.std(unbiased=False)) if len(values) > 1 else 0.0
    centred = values - values.mean()
    return (centred / std if std > 0 else torch.zeros_like(values)).tolist()


def scores_to_weights(scores: Sequence[float], *, sign: int, temperature: float, znorm: bool = False, top_k: int | None = None) -> list[float]:
    """Weights summing to one. Ties in top-k keep the earlier candidate (deterministic)."""
    import torch

    check_temperature(temperature)
    check_top_k(top_k)
    if sign not in (1, -1):
        raise EnsemblingError(f"a strategy's sign must be +1 or -1, got {sign}")
    if not scores:
        raise EnsemblingError("no candidates to weight")
    for index, score in enumerate(scores):
        if not math.isfinite(score):
            raise EnsemblingError(f"candidate {index} has a non-finite score ({score}); it cannot be weighted")
    values = znormalize(scores) if znorm else list(scores)
    logits = torch.tensor(values, dtype=torch.float64) * sign / temperature
    weights = torch.softmax(logits, dim=0)
    return keep_top_k(weights.tolist(), top_k)


def uniform_weights(count: int, top_k: int | None = None) -> list[float]:
    if count < 1:
        raise EnsemblingError("no candidates to weight")
    return keep_top_k([1.0 / count] * count, check_top_k(top_k))


def keep_top_k(weights: Sequence[float], top_k: int | None) -> list[float]:
    """Zero all but the k largest weights (earlier index first among ties) and renormalize."""
    if top_k is None or top_k >= len(weights):
        total = math.fsum(weights)
        return [weight / total for weight in weights]
    order = sorted(range(len(weights)), key=lambda index: (-weights[index], index))
    kept = set(order[:top_k])
    total = math.fsum(weights[index] for index in kept)
    if total <= 0:
        # Every kept weight underflowed: fall back to uniform over the kept ones.
        return [1.0 / top_k if index in kept else 0.0 for index in range(len(weights))]
    return [weights[index] / total if index in kept else 0.0 for index in range(len(weights))]

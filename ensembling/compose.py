"""Composition: θ_init = Σ_i w_i θ_i, tensor by tensor, for modules of one base model and schema."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ensembling.candidates import Candidate
from ensembling.errors import EnsemblingError

if TYPE_CHECKING:
    import torch

WEIGHT_SUM_TOLERANCE = 1e-6


def check_compatible(candidates: Sequence[Candidate]) -> None:
    """Refuse modules that do not share base model, tensor names, shapes and dtypes; name the difference."""
    if not candidates:
        raise EnsemblingError("nothing to compose: no source modules")
    first = candidates[0]
    for other in candidates[1:]:
        if other.base_model != first.base_model:
            raise EnsemblingError(
                f"{other.label} is for base model {other.base_model or '?'} but {first.label} is for {first.base_model or '?'}; "
                "only modules of one base model compose"
            )
        describe_mismatch(first.tensors, other.tensors, first.label, other.label)


def describe_mismatch(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor], first_name: str, second_name: str) -> None:
    missing = sorted(set(first) - set(second))
    extra = sorted(set(second) - set(first))
    if missing or extra:
        key, owner, lacker = (missing[0], first_name, second_name) if missing else (extra[0], second_name, first_name)
        raise EnsemblingError(f"tensor schemas differ: {owner} has tensor {key} but {lacker} does not; only modules of one schema compose")
    for key in sorted(first):
        a, b = first[key], second[key]
        if a.dim() != b.dim():
            raise EnsemblingError(f"tensor schemas differ at {key}: {first_name} has {a.dim()} dimensions, {second_name} has {b.dim()}")
        if tuple(a.shape) != tuple(b.shape):
            rank = _lora_rank_note(key, a, b)
            raise EnsemblingError(
                f"tensor schemas differ at {key}: shape {tuple(a.shape)} in {first_name} vs {tuple(b.shape)} in {second_name}{rank}; "
                "only modules of one schema compose"
            )
        if a.dtype != b.dtype:
            raise EnsemblingError(f"tensor schemas differ at {key}: dtype {a.dtype} in {first_name} vs {b.dtype} in {second_name}")


def _lora_rank_note(key: str, a: torch.Tensor, b: torch.Tensor) -> str:
    if ".lora_A." in key and a.dim() == 2:
        return f" (LoRA rank {a.shape[0]} vs {b.shape[0]})"
    if ".lora_B." in key and a.dim() == 2:
        return f" (LoRA rank {a.shape[1]} vs {b.shape[1]})"
    return ""


def compose(candidates: Sequence[Candidate], weights: Sequence[float], *, normalized: bool = True) -> dict[str, torch.Tensor]:
    """Σ_i w_i θ_i tensor by tensor (accumulated in float64, returned in the sources' dtype).

    Normalized weights (the default) must be non-negative and sum to one; with `normalized=False`
    they are any finite coefficients, negative ones included (LoraHub's fitted weights). Sources
    with weight 0 are skipped, so one source with weight 1 is reproduced exactly.
    """
    import torch

    if len(candidates) != len(weights):
        raise EnsemblingError(f"{len(candidates)} modules but {len(weights)} weights")
    check_compatible(candidates)
    if normalized:
        if any(not math.isfinite(weight) or weight < 0 for weight in weights):
            raise EnsemblingError("weights must be finite and non-negative")
        total = math.fsum(weights)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise EnsemblingError(f"weights sum to {total:.6g}, not 1; normalize them before composing")
    elif any(not math.isfinite(weight) for weight in weights):
        raise EnsemblingError("weights must be finite")
    used = [(candidate, weight) for candidate, weight in zip(candidates, weights) if weight != 0]
    composed: dict[str, torch.Tensor] = {}
    for key in sorted(candidates[0].tensors):
        reference = candidates[0].tensors[key]
        if not reference.is_floating_point():
            raise EnsemblingError(f"tensor {key} is {reference.dtype}; only floating-point modules compose")
        if len(used) == 1 and used[0][1] == 1.0:
            composed[key] = used[0][0].tensors[key].detach().clone()
            continue
        accumulator = torch.zeros(reference.shape, dtype=torch.float64)
        for candidate, weight in used:
            accumulator.add_(candidate.tensors[key].detach().to("cpu", torch.float64), alpha=weight)
        composed[key] = accumulator.to(reference.dtype)
    return composed

"""Composition: θ_init = Σ w_i θ_i tensor by tensor; weights sum to one; mismatches are refused by name."""

from __future__ import annotations

import pytest
import torch

from ensembling.candidates import Candidate
from ensembling.compose import compose
from ensembling.errors import EnsemblingError


def module(i: int, rank: int = 4, base: str = "minilm", seed: int | None = None, **extra: torch.Tensor) -> Candidate:
    generator = torch.Generator().manual_seed(seed if seed is not None else i)
    tensors = {
        "layer.0.query.lora_A.weight": torch.randn(rank, 8, generator=generator),
        "layer.0.query.lora_B.weight": torch.randn(8, rank, generator=generator),
        "classifier.bias": torch.randn(1, generator=generator),
        **extra,
    }
    return Candidate(i, f"task-{i}", "c", f"{i:064d}", tensors, base)


def test_weighted_sum_tensor_by_tensor():
    a, b = module(1), module(2)
    composed = compose([a, b], [0.25, 0.75])
    for key in a.tensors:
        assert torch.allclose(composed[key], 0.25 * a.tensors[key] + 0.75 * b.tensors[key], atol=1e-6)
        assert composed[key].dtype == a.tensors[key].dtype


def test_a_single_source_with_weight_one_is_reproduced_exactly():
    a, b, c = module(1), module(2), module(3)
    for sources, weights in (([a], [1.0]), ([b, a, c], [0.0, 1.0, 0.0])):
        composed = compose(sources, weights)
        assert set(composed) == set(a.tensors)
        for key, tensor in a.tensors.items():
            assert torch.equal(composed[key], tensor)


def test_uniform_weights_give_the_mean_and_the_result_does_not_alias_sources():
    sources = [module(i) for i in range(1, 5)]
    composed = compose(sources, [0.25] * 4)
    key = "classifier.bias"
    assert torch.allclose(composed[key], torch.stack([s.tensors[key] for s in sources]).mean(0), atol=1e-6)
    composed[key].add_(1.0)
    assert not torch.equal(composed[key], sources[0].tensors[key] + 0)  # sources untouched
    single = compose([sources[0]], [1.0])
    single[key].add_(1.0)
    assert not torch.equal(single[key], sources[0].tensors[key])


@pytest.mark.parametrize("weights", [[0.5, 0.6], [1.0, -0.0001], [float("nan"), 1.0]])
def test_weights_must_be_a_distribution(weights):
    with pytest.raises(EnsemblingError):
        compose([module(1), module(2)], weights)


def test_mismatched_rank_is_named():
    with pytest.raises(EnsemblingError, match=r"layer\.0\.query\.lora_A\.weight.*\(4, 8\).*\(8, 8\).*LoRA rank 4 vs 8"):
        compose([module(1, rank=4), module(2, rank=8)], [0.5, 0.5])


def test_mismatched_keys_are_named():
    extra = module(2, **{"layer.1.value.lora_A.weight": torch.zeros(4, 8)})
    with pytest.raises(EnsemblingError, match=r"module 2 \(task-2\) has tensor layer\.1\.value\.lora_A\.weight but module 1"):
        compose([module(1), extra], [0.5, 0.5])


def test_mismatched_dimensions_and_dtypes_are_named():
    flat = module(2)
    flat = Candidate(2, "task-2", "c", flat.digest, {**flat.tensors, "classifier.bias": torch.zeros(1, 1)}, "minilm")
    with pytest.raises(EnsemblingError, match=r"classifier\.bias: module 1 \(task-1\) has 1 dimensions, module 2 \(task-2\) has 2"):
        compose([module(1), flat], [0.5, 0.5])
    half = module(3)
    half = Candidate(3, "task-3", "c", half.digest, {k: v.half() for k, v in half.tensors.items()}, "minilm")
    with pytest.raises(EnsemblingError, match="dtype"):
        compose([module(1), half], [0.5, 0.5])


def test_mismatched_base_models_are_named():
    with pytest.raises(EnsemblingError, match="module 2 \\(task-2\\) is for base model other-bert but module 1 \\(task-1\\) is for minilm"):
        compose([module(1), module(2, base="other-bert")], [0.5, 0.5])

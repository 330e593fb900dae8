"""Dataset embeddings are deterministic and meaningful; parameter sketches track cosine similarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hub import Hub, load_dataset
from hub.embeddings import SKETCH_DIM, parameter_sketch


def test_dataset_embedding_is_deterministic_and_groups_related_tasks(session_hub: Hub, suite: Path) -> None:
    noun_a = load_dataset(suite / "wn-supersense-noun-a")
    first = session_hub.encoder.embed(noun_a)
    assert first.shape == (384,) and abs(float(np.linalg.norm(first)) - 1) < 1e-5
    assert np.array_equal(first, session_hub.encoder.embed(load_dataset(suite / "wn-supersense-noun-a")))
    related = session_hub.encoder.embed(load_dataset(suite / "wn-supersense-noun-b"))
    unrelated = session_hub.encoder.embed(load_dataset(suite / "wn-antonym-adv"))
    assert float(first @ related) > float(first @ unrelated)


def _module_pair(cosine: float, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two LoRA-shaped modules whose flattened cosine is `cosine` (up to sampling noise)."""
    shapes = {f"layer.{i}.lora_{ab}.weight": (10, 384) if ab == "A" else (384, 10) for i in range(6) for ab in "AB"}
    base = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    noise = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    other = {name: cosine * base[name] + (1 - cosine**2) ** 0.5 * noise[name] for name in shapes}
    return base, other


def _true_cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    x = torch.cat([a[name].reshape(-1) for name in sorted(a)])
    y = torch.cat([b[name].reshape(-1) for name in sorted(b)])
    return float(x @ y / (x.norm() * y.norm()))


def test_parameter_sketch_tracks_module_cosine() -> None:
    generator = torch.Generator().manual_seed(0)
    errors = []
    for target in np.linspace(-0.9, 0.9, 19):
        a, b = _module_pair(float(target), generator)
        sketched = float(parameter_sketch(a) @ parameter_sketch(b))
        errors.append(abs(sketched - _true_cosine(a, b)))
    # CountSketch's error is about (1 - cos^2) / sqrt(dim): ~0.044 at dim 512.
    assert max(errors) < 4 / np.sqrt(SKETCH_DIM)
    assert float(np.mean(errors)) < 1.5 / np.sqrt(SKETCH_DIM)


def test_parameter_sketch_is_a_function_of_the_module() -> None:
    generator = torch.Generator().manual_seed(1)
    a, _ = _module_pair(0.0, generator)
    assert np.array_equal(parameter_sketch(a), parameter_sketch({name: tensor.clone() for name, tensor in a.items()}))
    assert abs(float(parameter_sketch(a) @ parameter_sketch({k: 2 * v for k, v in a.items()})) - 1) < 1e-5

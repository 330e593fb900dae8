"""Layer-wise composition: the composed init in a chosen set of layers, the default init in the others.

The paper's module-importance analysis (Lv et al., 2023, §5) found that the layers do not carry
transfer equally; `--layers` lets a user compose only some of them. A tensor's layer is read
from its name, in the conventions of Hugging Face models: `layer.N` (BERT), `h.N` (GPT-2),
`block.N` (T5; each of its stacks counts its own blocks). Tensors outside the numbered layers
(a classification head) are composed with the chosen layers, since they read the last layer's output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ensembling.errors import EnsemblingError

if TYPE_CHECKING:
    import torch

UPPER = "upper"  # the upper half of the layers (the later ones, nearer the output)
LOWER = "lower"
_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def layer_of(name: str) -> int | None:
    """The index of the layer a tensor belongs to (the outermost numbered block in its name), or None."""
    match = _INDEX.search(name)
    return int(match.group(1)) if match else None


def depth(tensors: Mapping[str, torch.Tensor]) -> int:
    """How many layers a module's tensors span (0 when none is per layer: prefix and prompt tables)."""
    indices = [index for index in map(layer_of, tensors) if index is not None]
    return max(indices) + 1 if indices else 0


def parse_layers(spec: str, layers: int) -> frozenset[int]:
    """`upper`, `lower`, or indices and ranges such as `0,4-5`, checked against a module of `layers` layers."""
    if layers == 0:
        raise EnsemblingError(f"--layers {spec}: these modules have no per-layer tensors (a prefix or prompt table spans every layer at once); drop --layers")
    text = spec.strip().lower()
    if text == UPPER:
        return frozenset(range(layers // 2, layers))
    if text == LOWER:
        return frozenset(range(layers // 2))
    chosen: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            raise EnsemblingError(f"--layers {spec!r}: write {UPPER}, {LOWER}, or layer indices and ranges such as 0,4-5")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise EnsemblingError(f"--layers {spec!r}: range {part.strip()} runs backwards; write it low-high")
        chosen.update(range(first, last + 1))
    outside = sorted(index for index in chosen if index >= layers)
    if outside:
        raise EnsemblingError(f"--layers {spec}: layer {outside[0]} does not exist; these modules have layers 0-{layers - 1}")
    return frozenset(chosen)


def restrict(composed: Mapping[str, torch.Tensor], default: Mapping[str, torch.Tensor], spec: str) -> dict[str, torch.Tensor]:
    """`composed` in the layers `spec` names, `default` in the other layers; tensors outside the layers stay composed."""
    chosen = parse_layers(spec, depth(composed))
    kept = {}
    for name, tensor in composed.items():
        index = layer_of(name)
        kept[name] = tensor if index is None or index in chosen else default[name].to(tensor.dtype).clone()
    return kept

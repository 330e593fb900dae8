"""Modules as bytes: canonical safetensors serialization, tensor schemas and their hashes."""

from __future__ import annotations

import hashlib
import json

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

Schema = list[tuple[str, list[int], str]]


def to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """Canonical bytes: same names, shapes, dtypes and values give the same bytes (no metadata)."""
    return save_bytes({name: tensors[name].detach().cpu().contiguous() for name in sorted(tensors)})


def from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    return load_bytes(data)


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_schema(tensors: dict[str, torch.Tensor]) -> Schema:
    """The ordered (name, shape, dtype) list: two modules compose only if theirs match."""
    return [(name, list(tensors[name].shape), str(tensors[name].dtype).removeprefix("torch.")) for name in sorted(tensors)]


def schema_hash(schema: Schema) -> str:
    return hashlib.sha256(json.dumps([list(entry) for entry in schema]).encode()).hexdigest()

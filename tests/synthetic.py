"""Synthetic-but-real modules for the many-writer, crash and load tests.

A module here is a real PEFT LoRA state dict for a 2-layer MiniLM-sized encoder
(the names and shapes `peft` writes), filled with seeded random values and
serialized as safetensors; it goes through the real store code: blob store,
catalog rows, faiss indexes. Only the embeddings are synthetic (seeded unit
vectors), so no encoder has to be loaded and no torch import is needed: a
worker process starts in about a second.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from safetensors.numpy import save

from store.records import BaseModelInfo, DatasetInfo, NewModule, Provenance, SourceWeight, TaskInfo

HIDDEN = 384
RANK = 4
LAYERS = 2
DATASET_DIM = 384
SKETCH_DIM = 512
BASE = BaseModelInfo(name="sentence-transformers/all-MiniLM-L6-v2", family="cross-encoder", arch_hash="0" * 64)
TAGS = ("synthetic", "load")


def lora_tensors(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(LAYERS):
        for proj in ("query", "value"):
            prefix = f"base_model.model.bert.encoder.layer.{layer}.attention.self.{proj}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((RANK, HIDDEN)).astype(np.float32) * 0.02
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((HIDDEN, RANK)).astype(np.float32) * 0.02
    return tensors


def canonical_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    return save({name: np.ascontiguousarray(tensors[name]) for name in sorted(tensors)})


def schema_of(tensors: dict[str, np.ndarray]) -> list[list]:
    return [[name, list(tensors[name].shape), str(tensors[name].dtype)] for name in sorted(tensors)]


def unit(seed: int, dim: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def module(seed: int, task: str | None = None, tags: tuple[str, ...] = TAGS) -> tuple[bytes, NewModule, TaskInfo, DatasetInfo]:
    """Everything a push needs for module `seed`: its own dataset (fingerprint and embedding from the seed)."""
    tensors = lora_tensors(seed)
    data = canonical_bytes(tensors)
    schema = schema_of(tensors)
    new = NewModule(
        method="lora",
        config={"peft_type": "LORA", "r": RANK, "lora_alpha": 8, "target_modules": ["query", "value"], "task_type": "SEQ_CLS"},
        tensor_schema=schema,
        schema_hash=hashlib.sha256(json.dumps(schema).encode()).hexdigest(),
        num_params=sum(int(t.size) for t in tensors.values()),
        blob_digest=hashlib.sha256(data).hexdigest(),
        param_embedding=unit(seed * 2 + 1, SKETCH_DIM),
        metrics={"acc": float(seed % 100) / 100},
        tags=tags,
        created_by="synthetic",
    )
    name = task or f"synthetic-{seed}"
    task_info = TaskInfo(name=name, category=f"category-{seed % 3}", format="single", description="synthetic task", labels={"0": "no", "1": "yes"})
    dataset = DatasetInfo(
        fingerprint=hashlib.sha256(f"dataset-{seed}".encode()).hexdigest(), size=64, source="synthetic", embedding=unit(seed * 2, DATASET_DIM)
    )
    return data, new, task_info, dataset


def provenance(sources: list[tuple[int, str]]) -> Provenance:
    weights = np.full(len(sources), 1.0 / max(len(sources), 1))
    return Provenance(
        strategy="average", temperature=1.0, top_k=None, sources=tuple(SourceWeight(mid, digest, None, float(w)) for (mid, digest), w in zip(sources, weights))
    )


def push(registry, seed: int, **kwargs):
    """Push module `seed` through Registry.add_module; returns (record, created)."""
    data, new, task, dataset = module(seed, **{k: v for k, v in kwargs.items() if k in ("task", "tags")})
    return registry.add_module(data, new, task, dataset, BASE, kwargs.get("provenance"))

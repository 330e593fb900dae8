"""Dataset embeddings (sentence embeddings of examples) and parameter embeddings (sketches of modules)."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import torch

from hub.backbones import packaged_minilm_path, quiet_transformers
from hub.datasets import Dataset, deterministic_sample

DATASET_SAMPLE = 256
SKETCH_DIM = 512


class DatasetEncoder:
    """Embeds a dataset as the normalized mean of its examples' normalized sentence embeddings."""

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        quiet_transformers()
        self.model = SentenceTransformer(str(model_path or packaged_minilm_path()), device=device, local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())

    def embed(self, dataset: Dataset, sample: int = DATASET_SAMPLE) -> np.ndarray:
        """Deterministic for a dataset: the sample is chosen by content hash of the train examples."""
        examples = deterministic_sample(dataset.splits.get("train") or dataset.split("dev"), sample)
        texts = [f"{example.input_text} {example.answer_text}" for example in examples]
        vectors = self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return _normalized(vectors.mean(axis=0))


def parameter_sketch(tensors: dict[str, torch.Tensor], dim: int = SKETCH_DIM) -> np.ndarray:
    """A CountSketch of the flattened module, L2-normalized.

    Each coordinate goes to a seeded bucket with a seeded sign, so inner products
    (and cosines) between sketches estimate those between modules, at O(size) cost
    and no projection matrix. The seed depends only on each tensor's name and shape,
    so modules of one tensor schema share one sketch.
    """
    sketch = torch.zeros(dim, dtype=torch.float64)
    for name in sorted(tensors):
        values = tensors[name].detach().reshape(-1).to(torch.float64)
        buckets, signs = _hashing(name, tuple(tensors[name].shape), dim)
        sketch.index_add_(0, buckets, values * signs)
    return _normalized(sketch.numpy())


@lru_cache(maxsize=512)
def _hashing(name: str, shape: tuple[int, ...], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    seed = int.from_bytes(hashlib.sha256(f"{name}:{shape}:{dim}".encode()).digest()[:8], "little") & (2**63 - 1)
    generator = torch.Generator().manual_seed(seed)
    size = int(np.prod(shape)) if shape else 1
    buckets = torch.randint(0, dim, (size,), generator=generator)
    signs = torch.randint(0, 2, (size,), generator=generator).to(torch.float64) * 2 - 1
    return buckets, signs


def _normalized(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    return (vector / norm if norm > 0 else vector).astype(np.float32)

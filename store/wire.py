"""The catalog's records as JSON, for the registry server and its clients (store.remote).

Embeddings travel as lists of float32 values: a float32 printed by JSON and read back as
float32 is the same number, so a remote push indexes exactly what a local push would.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import numpy as np

from store.records import BaseModelInfo, DatasetInfo, ModuleRecord, NewModule, Provenance, SourceWeight, TaskInfo
from store.tokens import TokenRecord

_SHA256 = re.compile(r"[0-9a-f]{64}")


def vector_to_json(vector: np.ndarray) -> list[float]:
    return np.asarray(vector, dtype=np.float32).astype(float).tolist()


def vector_from_json(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def provenance_to_json(provenance: Provenance) -> dict[str, Any]:
    return {
        "strategy": provenance.strategy,
        "temperature": provenance.temperature,
        "top_k": provenance.top_k,
        "sources": [{"module_id": s.module_id, "digest": s.digest, "score": s.score, "weight": s.weight} for s in provenance.sources],
        "target_fingerprint": provenance.target_fingerprint,
        "chosen": provenance.chosen,
        "rationale": provenance.rationale,
        "layers": provenance.layers,
        "combine": provenance.combine,
    }


def provenance_from_json(data: dict[str, Any]) -> Provenance:
    sources = tuple(
        SourceWeight(int(s["module_id"]), str(s["digest"]), None if s["score"] is None else float(s["score"]), float(s["weight"])) for s in data["sources"]
    )
    return Provenance(
        strategy=str(data["strategy"]),
        temperature=float(data["temperature"]),
        top_k=None if data["top_k"] is None else int(data["top_k"]),
        sources=sources,
        target_fingerprint=str(data.get("target_fingerprint", "")),
        chosen=data.get("chosen"),
        rationale=str(data.get("rationale", "")),
        layers=data.get("layers"),
        combine=str(data.get("combine", "linear")),
    )


def record_to_json(record: ModuleRecord) -> dict[str, Any]:
    data = record.to_json()
    data["provenance"] = provenance_to_json(record.provenance) if record.provenance is not None else None
    return data


def record_from_json(data: dict[str, Any]) -> ModuleRecord:
    fields = dict(data)
    fields["created_at"] = datetime.fromisoformat(data["created_at"])
    fields["tags"] = tuple(data["tags"])
    fields["provenance"] = provenance_from_json(data["provenance"]) if data.get("provenance") is not None else None
    return ModuleRecord(**fields)


def push_to_json(module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None) -> dict[str, Any]:
    """What a client sends to register a module whose blob it has uploaded."""
    new = {
        "method": module.method,
        "config": module.config,
        "tensor_schema": module.tensor_schema,
        "schema_hash": module.schema_hash,
        "num_params": module.num_params,
        "blob_digest": module.blob_digest,
        "param_embedding": vector_to_json(module.param_embedding),
        "metrics": module.metrics,
        "tags": list(module.tags),
        "origin": module.origin,
        "created_by": module.created_by,
        "created_host": module.created_host,
        "source": module.source,
        "card": module.card,
    }
    return {
        "module": new,
        "task": task.to_json(),
        "dataset": None
        if dataset is None
        else {
            "fingerprint": dataset.fingerprint,
            "size": dataset.size,
            "source": dataset.source,
            "embedding": vector_to_json(dataset.embedding),
            "split_sizes": dict(dataset.split_sizes),
        },
        "base_model": {"name": base_model.name, "family": base_model.family, "arch_hash": base_model.arch_hash, "revision": base_model.revision},
        "provenance": provenance_to_json(provenance) if provenance is not None else None,
    }


def push_from_json(data: dict[str, Any]) -> tuple[NewModule, TaskInfo, DatasetInfo | None, BaseModelInfo, Provenance | None]:
    """The inverse of `push_to_json`; a missing or mistyped field raises KeyError, TypeError or ValueError.

    Digests and hashes must be 64 hex digits: the blob digest names a file, and the others name rows and indexes.
    """
    new = dict(data["module"])
    hashes = [new["blob_digest"], new["schema_hash"], *([data["dataset"]["fingerprint"]] if data["dataset"] is not None else [])]
    if not all(isinstance(value, str) and _SHA256.fullmatch(value) for value in hashes):
        raise ValueError("blob_digest, schema_hash and the dataset fingerprint must be sha256 hex digests")
    new["param_embedding"] = vector_from_json(new["param_embedding"])
    new["tags"] = tuple(str(tag) for tag in new["tags"])
    new["metrics"] = {str(key): float(value) for key, value in new["metrics"].items()}
    module = NewModule(**new)
    task = TaskInfo(**data["task"])
    dataset = data["dataset"]
    dataset_info = (
        None
        if dataset is None
        else DatasetInfo(
            str(dataset["fingerprint"]),
            int(dataset["size"]),
            str(dataset["source"]),
            vector_from_json(dataset["embedding"]),
            {str(split): int(count) for split, count in dataset.get("split_sizes", {}).items()},
        )
    )
    base = BaseModelInfo(**data["base_model"])
    provenance = provenance_from_json(data["provenance"]) if data.get("provenance") is not None else None
    return module, task, dataset_info, base, provenance


def token_from_json(data: dict[str, Any]) -> TokenRecord:
    """The inverse of `TokenRecord.to_json`."""

    def moment(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    created = datetime.fromisoformat(data["created_at"])
    return TokenRecord(int(data["id"]), str(data["name"]), str(data["scope"]), created, moment(data.get("revoked_at")), moment(data.get("last_used_at")))

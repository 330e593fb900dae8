"""Sources: one module per task, trained on its full train split to its best dev checkpoint."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from benchmarks.transferbench.settings import Settings


@dataclass(frozen=True)
class SourceInfo:
    task: str
    category: str
    method: str
    module_id: int
    dev_acc: float  # best dev accuracy (on up to `source_dev_cap` dev examples)
    chance: float  # 1 / number of candidates, averaged over the dev examples
    steps: int
    best_step: int
    seconds: float
    reused: bool

    @property
    def at_chance(self) -> bool:
        """Within 5 points of chance: its predictions carry next to no task signal."""
        return self.dev_acc < self.chance + 0.05


def chance_of(examples) -> float:
    return sum(1.0 / len(example.choices) for example in examples) / max(len(examples), 1)


def source_config(settings: Settings, seed: int = 0):
    """The sources' training budget: the full train split up to `source_max_steps`, best dev checkpoint, early stopping."""
    from hub.training import TrainConfig

    return TrainConfig(
        epochs=settings.source_max_steps, max_steps=settings.source_max_steps, eval_every=settings.source_eval_every, patience=settings.source_patience,
        lr=settings.source_lr, batch_size=settings.batch_size, seed=seed, device=settings.device, progress=False,
    )  # fmt: skip


def ensure_source(hub, data, method: str, settings: Settings, train_missing: bool = True) -> SourceInfo | None:
    """The task's source module from the registry (same budget tag and data), else trained and pushed
    (or None when `train_missing` is off)."""
    from hub.backbones import resolve_base_model
    from hub.datasets import deterministic_sample

    backbone = hub.backbone(resolve_base_model(settings.base_model))
    dev = deterministic_sample(data.split("dev"), settings.source_dev_cap)
    chance = chance_of(dev)
    found = [
        record
        for record in hub.list(task=data.card.name, method=method, base_model=settings.base_model)
        if record.origin == "trained"
        and settings.source_tag in record.tags
        and record.dataset_fingerprint == data.fingerprint
        and record.base_arch_hash == backbone.arch_hash
    ]
    if found:
        record = min(found, key=lambda record: record.id)
        metrics = record.metrics
        return SourceInfo(
            data.card.name, data.card.category, method, record.id, metrics.get("dev_acc", math.nan), chance,
            int(metrics.get("steps", 0)), int(metrics.get("best_step", 0)), metrics.get("train_s", 0.0), True,
        )  # fmt: skip
    if not train_missing:
        return None
    started = time.perf_counter()
    module = hub.new_module(settings.base_model, method)
    from hub.training import train

    result = train(module.model, module.method, module.formulation, data.split("train"), dev, source_config(settings))
    seconds = time.perf_counter() - started
    metrics = {"dev_acc": result.best_dev, "steps": result.steps, "best_step": result.best_step, "train_s": seconds}
    tensors = {key: value.cpu() for key, value in module.tensors().items()}
    record = hub.register(module.method, module.config, tensors, data, module.backbone, metrics=metrics, tags=(settings.source_tag, "transfer-benchmark"))
    return SourceInfo(data.card.name, data.card.category, method, record.id, result.best_dev, chance, result.steps, result.best_step, seconds, False)

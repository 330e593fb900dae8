"""Ensembles and transfer inits: from a target dataset to a registered, composed initialization.

Picks the candidates from the catalog (compatible with the base model and method,
never the target task's own), optionally narrows them with the dataset-embedding
index, builds a live `ModelEvaluator`, lets `ensembling` score, weight and
compose, and registers the result with its provenance. Every check that can fail
runs before anything is written, so a failed ensemble leaves the registry as it was.

Scoring data: the target's dev split (the paper scores with the few-shot dev data),
or its train split when it has no dev split; the first `score_examples` examples in
content-hash order (independent of file order). The strategies that train
(kl and weight-cos for the reference θ_t, euclidean and performance per source)
tune on the train split; performance measures accuracy on the dev split.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ensembling.candidates import Candidate, Target
from ensembling.ensemble import Ensemble, Options, resolve, run
from ensembling.errors import EnsemblingError
from ensembling.strategies.base import REFERENCE_STEPS, TUNE_STEPS
from hub.backbones import resolve_base_model
from hub.datasets import Dataset, Example, deterministic_sample, load_dataset
from hub.evaluation import ModelEvaluator
from hub.formulations import formulation_for
from hub.methods import Method, get_method
from hub.training import resolve_device, seed_everything
from store.catalog import ModuleRecord, Provenance, SourceWeight
from store.errors import BlobCorrupt

if TYPE_CHECKING:
    from hub.api import Hub, TrainableModule, _Backbone

SCORE_EXAMPLES = 50  # the paper scores with one dev batch of about 50 examples
# Config keys that do not change what a module computes.
VOLATILE_CONFIG_KEYS = {"base_model_name_or_path", "revision", "inference_mode", "peft_version", "auto_mapping"}


@dataclass(frozen=True)
class SourceRow:
    module_id: int
    task: str
    category: str
    score: float | None
    weight: float


@dataclass
class TransferResult:
    """An ensemble for a target: per-source scores and weights, the composed module and its provenance."""

    strategy: str
    temperature: float
    top_k: int | None
    method: Method
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    sources: list[SourceRow]
    provenance: Provenance
    base_model: str
    target: str
    record: ModuleRecord | None = None
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def weights(self) -> dict[int, float]:
        return {row.module_id: row.weight for row in self.sources}

    @property
    def scores(self) -> dict[int, float | None]:
        return {row.module_id: row.score for row in self.sources}

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the init as a module folder (PEFT layout, or the method's own format)."""
        target = Path(folder)
        self.method.write_folder(target, self.config, self.tensors, self.base_model)
        return target


def ensemble(
    hub: Hub,
    dataset: Dataset | str | os.PathLike[str],
    *,
    base_model: str | os.PathLike[str] | None = None,
    method: str = "lora",
    strategy: str = "el2n",
    top_k: int | None = None,
    temperature: float | None = None,
    znorm: bool | None = None,
    candidates: int | None = None,
    score_examples: int = SCORE_EXAMPLES,
    reference_steps: int = REFERENCE_STEPS,
    tune_steps: int = TUNE_STEPS,
    seed: int = 0,
    skip_corrupt: bool = False,
    register: bool = True,
    device: str = "cpu",
    progress: Callable[[int, int, Candidate], None] | None = None,
    **method_config: Any,
) -> TransferResult:
    """Score the compatible modules on the target, weight them, compose and (by default) register the init."""
    options = Options(temperature, top_k, znorm, seed, reference_steps, tune_steps)
    chosen, used_temperature, _ = resolve(strategy, options)
    if candidates is not None and candidates < 1:
        raise EnsemblingError(f"--candidates must be at least 1, got {candidates}")
    if score_examples < 1:
        raise EnsemblingError(f"--score-examples must be at least 1, got {score_examples}")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    # Only strategies that score read the scoring batch; the baselines need no target examples.
    scoring = scoring_examples(data, score_examples) if chosen.transfer and not chosen.uniform else []
    train_examples = data.splits.get("train", ())
    dev_examples = data.splits.get("dev", ())
    if chosen.name in ("kl", "weight-cos", "euclidean", "performance") and not train_examples:
        raise EnsemblingError(f"strategy {chosen.name} tunes on the target's train split, but {data.card.name!r} has none; add train.jsonl")
    if chosen.name == "performance" and not dev_examples:
        raise EnsemblingError(f"strategy performance scores on the target's dev split, but {data.card.name!r} has none; add dev.jsonl")
    method_obj = get_method(method)
    backbone = hub.backbone(resolve_base_model(base_model))
    target = Target(data.card.name, data.card.category, data.fingerprint)

    records = compatible_records(hub, data, backbone, method_obj, candidates)
    config, records = choose_group(records, method_obj, backbone, method_config)
    if chosen.transfer and not records:
        raise EnsemblingError(
            f"no compatible candidates: the registry has no trained {method} modules on {backbone.ref.name} "
            f"(other than {data.card.name}'s own){_config_note(method_config)}; push some or choose another --method/--base-model"
        )
    light = [Candidate(r.id, r.task, r.category, r.blob_digest, {}, f"{r.base_model}@{r.base_arch_hash[:12]}", {"fingerprint": r.dataset_fingerprint}) for r in records]
    selected = chosen.select(light, target) if chosen.transfer else []
    loaded, skipped = load_candidates(hub, selected, skip_corrupt)
    if chosen.transfer and not loaded:
        raise EnsemblingError("every candidate's blob failed its digest check; nothing is left to ensemble")

    evaluator = None
    if chosen.needs_model:
        evaluator = build_evaluator(hub, backbone, method_obj, config, scoring, train_examples, dev_examples, device, seed)
    result: Ensemble = run(chosen, loaded, target, evaluator, options, progress)

    by_id = {record.id: record for record in records}
    rows = [SourceRow(s.candidate.id, s.candidate.task, s.candidate.category, s.score, s.weight) for s in result.sources]
    provenance = Provenance(
        strategy=result.strategy,
        temperature=used_temperature,
        top_k=top_k,
        sources=tuple(SourceWeight(s.candidate.id, by_id[s.candidate.id].blob_digest, s.score, s.weight) for s in result.sources),
        target_fingerprint=data.fingerprint,
    )
    outcome = TransferResult(
        strategy=result.strategy,
        temperature=used_temperature,
        top_k=top_k,
        method=method_obj,
        config=config,
        tensors=result.tensors,
        sources=rows,
        provenance=provenance,
        base_model=backbone.ref.name,
        target=data.card.name,
        skipped=tuple(skipped),
        seconds=result.seconds,
    )
    if register:
        outcome.record = hub.register(
            method_obj, config, result.tensors, data, backbone, kind="ensemble", provenance=provenance, tags=(f"init:{result.strategy}",)
        )
    return outcome


def transfer_init(hub: Hub, base_model: str | os.PathLike[str] | None, dataset: Dataset | str | os.PathLike[str], **options: Any) -> TrainableModule:
    """A trainable model (a PeftModel for PEFT methods) holding the ensemble's init; `random` holds the default init."""
    from hub.api import TrainableModule

    result = ensemble(hub, dataset, base_model=base_model, **options)
    backbone = hub.backbone(resolve_base_model(base_model))
    seed_everything(int(options.get("seed", 0)))
    model = result.method.attach(copy.deepcopy(backbone.model), result.config)
    result.method.set_tensors(model, result.tensors)
    origin = result.provenance if result.provenance.sources else None
    return TrainableModule(model, result.method, result.config, formulation_for(backbone.ref), backbone, origin, result)


def scoring_examples(data: Dataset, count: int) -> list[Example]:
    """One batch of labelled target examples: the dev split (paper), else train; refuse fewer than `count`."""
    split = "dev" if data.splits.get("dev") else "train"
    examples = list(data.splits.get(split, ()))
    labelled = [example for example in examples if len(example.choices) >= 2 and 0 <= example.label < len(example.choices)]
    if not labelled:
        raise EnsemblingError(f"dataset {data.card.name!r} has no labelled examples in its {split} split; scoring needs gold answers")
    if len(labelled) < count:
        raise EnsemblingError(
            f"dataset {data.card.name!r} has {len(labelled)} labelled {split} examples, fewer than one scoring batch of {count}; "
            "add examples or lower --score-examples"
        )
    return deterministic_sample(labelled, count)


def compatible_records(hub: Hub, data: Dataset, backbone: _Backbone, method: Method, candidates: int | None) -> list[ModuleRecord]:
    """Trained modules of this base model and method, never the target task's own; narrowed by the index when asked."""

    def usable(record: ModuleRecord) -> bool:
        return (
            record.kind == "trained"
            and record.base_arch_hash == backbone.arch_hash
            and record.task != data.card.name
            and record.dataset_fingerprint != data.fingerprint
        )

    records = [record for record in hub.registry.catalog.list_modules(base_model=backbone.ref.name, method=method.name) if usable(record)]
    if candidates is None or len(records) <= candidates:
        return records
    excluded = len(hub.registry.catalog.list_modules(base_model=backbone.ref.name, method=method.name)) - len(records)
    hits = hub.search(data, top_k=candidates + excluded, base_model=backbone.ref.name, method=method.name)
    return [hit.module for hit in hits if usable(hit.module)][:candidates]


def config_key(config: dict[str, Any]) -> str:
    return json.dumps({key: value for key, value in config.items() if key not in VOLATILE_CONFIG_KEYS}, sort_keys=True, default=str)


def choose_group(records: list[ModuleRecord], method: Method, backbone: _Backbone, overrides: dict[str, Any]) -> tuple[dict[str, Any], list[ModuleRecord]]:
    """Modules compose only with the same tensor schema and config: pick that group.

    With config overrides (e.g. r=4), the group whose config has them; otherwise the
    largest group (ties: the one holding the oldest module). No records: the method's default config.
    """
    groups: dict[tuple[str, str], list[ModuleRecord]] = {}
    for record in records:
        if all(record.config.get(key) == value for key, value in overrides.items()):
            groups.setdefault((record.schema_hash, config_key(record.config)), []).append(record)
    if not groups:
        config = method.default_config(backbone.ref, **overrides)
        return config, []
    best = max(groups.values(), key=lambda group: (len(group), -min(record.id for record in group)))
    return dict(best[0].config), best


def _config_note(overrides: dict[str, Any]) -> str:
    return f" with {', '.join(f'{key}={value}' for key, value in overrides.items())}" if overrides else ""


def load_candidates(hub: Hub, candidates: Iterable[Candidate], skip_corrupt: bool) -> tuple[list[Candidate], list[str]]:
    """Read each candidate's blob (its digest is verified); a corrupt one stops the run unless skipped explicitly."""
    loaded, skipped = [], []
    for candidate in candidates:
        try:
            tensors = from_blob(hub, candidate)
        except BlobCorrupt as error:
            if not skip_corrupt:
                raise EnsemblingError(f"candidate {candidate.label}: {error}; pass --skip-corrupt to ensemble without it") from None
            skipped.append(f"{candidate.label}: {error}")
            continue
        loaded.append(replace(candidate, tensors=tensors))
    return loaded, skipped


def from_blob(hub: Hub, candidate: Candidate) -> dict[str, torch.Tensor]:
    from store.tensors import from_bytes

    return from_bytes(hub.registry.blobs.get(candidate.digest, owner=candidate.label))


def build_evaluator(hub, backbone, method: Method, config, scoring, train_examples, dev_examples, device: str, seed: int) -> ModelEvaluator:
    """Attach the method once to a copy of the base model; the default init is seeded, so repeatable."""
    seed_everything(seed)
    model = method.attach(copy.deepcopy(backbone.model), config)
    return ModelEvaluator(
        model,
        method,
        formulation_for(backbone.ref),
        scoring,
        train_examples=train_examples,
        dev_examples=dev_examples,
        device=resolve_device(device),
    )


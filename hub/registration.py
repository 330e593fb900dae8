"""Registration: a module folder or a module's tensors checked against their base model and written to the registry.

`push` reads a PEFT module folder (its config, weights and model card), works out what describes it
(a dataset, or a task and category) and checks that it fits its base model; `register` writes checked
tensors: the blob first, then the row, so a visible row always has its blob. `Hub.push`, `Hub.pull`,
`Hub.train(push=True)`, the bulk import (hub/bulk_import.py) and registered ensembles all end here.
"""

from __future__ import annotations

import getpass
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from hub.backbones import BaseModelRef, resolve_base_model
from hub.cards import read_card
from hub.datasets import Dataset, load_dataset
from hub.embeddings import parameter_sketch
from hub.errors import BaseModelMismatch, HubError
from hub.families import family_of_task_type
from hub.folders import trainable_config
from hub.methods import Method, method_for_config, read_config
from hub.trainable import Backbone
from store.backend import RegistryBackend
from store.module_query import ModuleQuery
from store.records import UNKNOWN_FORMAT, BaseModelInfo, DatasetInfo, ModuleRecord, NewModule, Provenance, TaskInfo, check_name
from store.tensors import digest_of, schema_hash, tensor_schema, to_bytes


@dataclass
class Registration:
    """Pushes and registers modules into one registry, from the narrow parts of it they need.

    `Hub.registration` builds one from its registry, backbone cache and dataset embedding; it keeps the
    tensor shapes each method builds on each base model, since finding them costs a model copy.
    """

    registry: RegistryBackend
    backbones: Callable[[BaseModelRef], Backbone]
    dataset_embedding: Callable[[Dataset], np.ndarray]
    _expected: dict[tuple[str, str, str, str], dict[str, tuple[int, ...]]] = field(default_factory=dict)

    def push(
        self,
        folder: str | os.PathLike[str],
        dataset: Dataset | str | os.PathLike[str] | None = None,
        *,
        task: str | None = None,
        category: str | None = None,
        base_model: str | os.PathLike[str] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Iterable[str] = (),
        created_by: str | None = None,
        source: str = "",
    ) -> ModuleRecord:
        """Read a module folder, describe it, check it fits its base model and register it; the arguments and what is written are `Hub.push`'s.

        The same weights on the same base model (and revision) are the module already holding them, which comes back unchanged.
        """
        if dataset is not None and (task is not None or category is not None):
            raise HubError("--task/--category describe a module pushed without --dataset; the dataset's task.json already names its task and category")
        folder = Path(folder)
        method = method_for_config(read_config(folder))
        card = read_card(folder)
        origin = card.origin or "trained"
        if origin == "ensemble" and dataset is None:
            raise HubError(
                f"{folder} is a composed init (strategy {card.provenance.strategy}) and the registry keeps its provenance with its target dataset; "
                "pass --dataset TARGET_DIR, the dataset it was composed for"
            )
        described_as = (task or card.task, category or card.category)
        for kind, name in zip(("task", "category"), described_as, strict=True):
            if dataset is None and name is not None:
                check_name(kind, name)  # bad input is refused whether or not the weights are registered
        config, tensors = method.read_folder(folder)
        ref = resolve_base_model(base_model if base_model is not None else config.get("base_model_name_or_path"), family_of_task_type(config.get("task_type")))
        if dataset is None:
            # The same weights on this base model are that module, whatever describes them (the store would return it too):
            # pushing them again needs no task, so a second import of cards without one says "already there".
            held = self._holding(digest_of(to_bytes(tensors)), ref)
            if held is not None:
                return held
        described = _described_task(folder, *described_as) if dataset is None else None
        data = described if described is not None else dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
        backbone = self.backbones(ref)
        self.check_fits(method, config, tensors, backbone)
        merged_metrics = {**card.metrics, **(metrics or {})}
        merged_tags = tuple(dict.fromkeys((*card.tags, *tags)))
        # Without a dataset there is no row to keep a provenance with (only a trained module's init gets here).
        provenance = self._sources_here(card.provenance, ref.name) if card.provenance is not None and described is None else None
        return self.register(
            method, config, tensors, data, backbone,
            metrics=merged_metrics, tags=merged_tags, created_by=created_by, origin=origin, provenance=provenance, source=source, card=card.text,
        )  # fmt: skip

    def _holding(self, digest: str, ref: BaseModelRef) -> ModuleRecord | None:
        """The oldest module holding these weights on this base model (and revision), if any."""
        held = [
            record
            for record in self.registry.catalog.list_modules(ModuleQuery(base_model=ref.name))
            if record.blob_digest == digest and record.base_revision == (ref.revision or "")
        ]
        return min(held, key=lambda record: record.id, default=None)

    def _sources_here(self, provenance: Provenance, base_model: str) -> Provenance:
        """A card's provenance with each source's module id in this registry: the first module on `base_model` holding its digest, else 0."""
        digests = {source.digest for source in provenance.sources}
        held: dict[str, int] = {}
        for record in self.registry.catalog.list_modules(ModuleQuery(base_model=base_model)):
            if record.blob_digest in digests:
                held.setdefault(record.blob_digest, record.id)
        return replace(provenance, sources=tuple(replace(source, module_id=held.get(source.digest, 0)) for source in provenance.sources))

    def register(
        self,
        method: Method,
        config: dict,
        tensors: dict[str, torch.Tensor],
        dataset: Dataset | TaskInfo,
        backbone: Backbone,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Iterable[str] = (),
        created_by: str | None = None,
        origin: str = "trained",
        provenance: Provenance | None = None,
        source: str = "",
        card: str = "",
    ) -> ModuleRecord:
        """Store checked tensors as a module: blob first, then the row, so a visible row always has its blob (`Hub.register` lists the arguments).

        Stored trainable (PEFT's `inference_mode` off); the same weights on the same base model and dataset return the module holding them.
        """
        for key, value in (metrics or {}).items():
            if not math.isfinite(float(value)):
                # As a card's metrics are checked: a NaN would sort arbitrarily wherever modules are ranked by a metric.
                raise HubError(f"metric {key} is {value}, not a finite number; register the module with finite metrics or without it")
        data = to_bytes(tensors)
        digest = digest_of(data)
        schema = tensor_schema(tensors)
        if isinstance(dataset, Dataset):
            task, info = dataset.card, DatasetInfo(dataset.fingerprint, dataset.size, dataset.source, self.dataset_embedding(dataset), dataset.split_sizes)
        else:
            task, info = dataset, None
        sketch = parameter_sketch(tensors)
        # Stored trainable: a registry module is where a training starts (a composed init is nothing else).
        stored_config = trainable_config({key: value for key, value in config.items() if key != "base_model_name_or_path"})
        record, _created = self.registry.add_module(
            data,
            NewModule(
                method=method.name,
                config=stored_config,
                tensor_schema=schema,
                schema_hash=schema_hash(schema),
                num_params=sum(tensor.numel() for tensor in tensors.values()),
                blob_digest=digest,
                param_embedding=sketch,
                metrics={key: float(value) for key, value in (metrics or {}).items()},
                tags=tuple(tags),
                origin=origin,
                created_by=created_by or _user(),
                source=source,
                card=card,
            ),
            task,
            info,
            BaseModelInfo(backbone.ref.name, backbone.ref.family.name, backbone.arch_hash, backbone.ref.revision or ""),
            provenance,
        )
        return record

    def check_fits(self, method: Method, config: dict, tensors: dict[str, torch.Tensor], backbone: Backbone) -> None:
        """Refuse (BaseModelMismatch) `tensors` that are not exactly the names and shapes `method` with `config` builds on `backbone`. Writes nothing."""
        expected = self._expected_shapes(method, config, backbone)
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            name = (missing or unexpected)[0]
            what = "lacks" if missing else "has unexpected"
            raise BaseModelMismatch(f"the module {what} tensor {name} for base model {backbone.ref.name}; push it with the base model it was trained on")
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != expected[name]:
                raise BaseModelMismatch(
                    f"tensor {name} has shape {tuple(tensor.shape)} but base model {backbone.ref.name} needs {expected[name]}; "
                    "push it with the base model it was trained on"
                )

    def _expected_shapes(self, method: Method, config: dict, backbone: Backbone) -> dict[str, tuple[int, ...]]:
        """The tensor names and shapes the method builds on this backbone, once per config (attaching costs a model copy)."""
        key = (str(backbone.ref.path), backbone.ref.family.name, method.name, json.dumps(config, sort_keys=True, default=str))
        if key not in self._expected:
            try:
                tensors = method.get_tensors(backbone.attach(method, config))
            except (ValueError, KeyError, RuntimeError) as error:
                raise BaseModelMismatch(f"the module does not fit base model {backbone.ref.name}: {str(error).splitlines()[0]}") from None
            self._expected[key] = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
        return self._expected[key]


def _described_task(folder: Path, task: str | None, category: str | None) -> TaskInfo:
    """The task of a module pushed without a dataset, from --task/--category or its model card; both are needed."""
    if not task or not category:
        missing = "task" if not task else "category"
        raise HubError(
            f"{folder} is pushed without --dataset, but neither --{missing} nor its model card (README.md) names its {missing}; "
            f"pass --dataset DATASET_DIR or --task NAME --category NAME, or add them to the card (datasets: [NAME], deltahub: {{category: NAME}})"
        )
    return TaskInfo(task, category, UNKNOWN_FORMAT)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""

"""`Hub`: the Python API of deltahub. The CLI is a thin layer over it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from hub.datasets import Dataset, load_dataset
from hub.errors import HubError
from hub.search import SearchHit
from hub.strategies import DEFAULT_COMBINE
from hub.transfer_options import TransferOptions
from store.backend import RegistryBackend
from store.blobs import GC_GRACE_S, GcReport
from store.maintenance import CopyReport, VerifyReport, collect_garbage, copy_blobs
from store.maintenance import verify as verify_registry
from store.module_query import ModuleQuery
from store.records import ModuleRecord, Provenance, SourceWeight, TaskInfo
from store.registry import Registry, open_registry, resolve_location, upgrade_registry

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ensembling.candidates import Candidate
    from hub.backbones import BaseModelRef
    from hub.bulk_import import ImportOutcome
    from hub.embeddings import DatasetEncoder
    from hub.methods import Method
    from hub.registration import Registration
    from hub.trainable import Backbone, TrainableModule
    from hub.training import TrainConfig, TrainResult
    from hub.transfer import TransferResult, TransferService


class Hub:
    """A registry of modules and the one facade over it: push, pull, import, search, list, show, remove, export,
    publish; ensemble and transfer inits; train; verify and gc.

    `Hub(registry, blobs)` opens a registry: a directory (an SQLite file and blobs in it), a database URL
    (PostgreSQL, with `blobs` the shared blob directory) or a server's http(s) URL; None is
    ADAPTERS_REGISTRY, else the user data directory. Use it as a context manager, or `close()` it.
    """

    def __init__(self, registry: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        """`create`: make the registry when it does not exist yet; with False, a missing one is an error and nothing
        is written (the CLI's verbs that add no module open it so)."""
        self.registry: RegistryBackend = open_registry(registry, blobs, create)
        self._encoder: DatasetEncoder | None = None
        self._backbones: dict[tuple[str, str], Backbone] = {}

    def close(self) -> None:
        """Close the registry (its database connections and index files). Writes nothing."""
        self.registry.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @staticmethod
    def upgrade(registry: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
        """Create or upgrade a registry's schema to the newest migration; (revision before, revision after).

        `registry`, `blobs`: as for `Hub`. Writes: the schema (Alembic migrations), creating the registry when new.
        """
        return upgrade_registry(resolve_location(registry, blobs))

    @property
    def encoder(self) -> DatasetEncoder:
        """The dataset encoder (the packaged MiniLM), loaded on first use and kept. Writes nothing."""
        from hub.embeddings import DatasetEncoder

        if self._encoder is None:
            self._encoder = DatasetEncoder()
        return self._encoder

    def backbone(self, ref: BaseModelRef) -> Backbone:
        """The base model `ref` names, loaded once per Hub and kept. Writes nothing."""
        from hub.backbones import architecture_hash, load_base_model
        from hub.trainable import Backbone

        key = (str(ref.path), ref.family.name)
        if key not in self._backbones:
            model = load_base_model(ref)
            self._backbones[key] = Backbone(ref, model, architecture_hash(model))
        return self._backbones[key]

    @cached_property
    def registration(self) -> Registration:
        """Pushes and registers modules into this registry (see hub.registration); made once per Hub, as it keeps what it measured."""
        from hub.registration import Registration

        return Registration(self.registry, self.backbone, self.dataset_embedding)

    def new_module(
        self,
        base_model: str | os.PathLike[str] | None = None,
        method: str = "lora",
        method_options: Mapping[str, object] | None = None,
        seed: int = 0,
    ) -> TrainableModule:
        """A fresh module on a copy of the base model: the method's default init under `seed`.

        The same init as `transfer_init(dataset, TransferOptions(strategy="random", seed=seed))`.
        - `base_model`: 'minilm' (the default), a local model folder or a cached Hub id ORG/NAME[@REVISION].
        - `method`: the PET method (lora, prefix, prompt, ia3, adapter).
        - `method_options`: its hyperparameters (e.g. {"r": 4}).
        - `seed`: the seed of the default init.
        Writes nothing.
        """
        from hub.backbones import formulation_for, resolve_base_model
        from hub.methods import get_method
        from hub.trainable import TrainableModule

        chosen = get_method(method)
        backbone = self.backbone(resolve_base_model(base_model))
        config = chosen.default_config(backbone.ref, method_options)
        model = backbone.default_init(chosen, config, seed)
        return TrainableModule(model, chosen, chosen.attached_config(model, config), formulation_for(backbone.ref), backbone)

    def train(
        self,
        module: TrainableModule,
        dataset: Dataset | str | os.PathLike[str],
        config: TrainConfig | None = None,
        *,
        push: bool = False,
        tags: Iterable[str] = (),
    ) -> TrainResult:
        """Train `module` on the train split keeping the best dev checkpoint, and report dev and test accuracy.

        - `module`: from `new_module`, `transfer_init`, `init_module` or `load_module` (trained in place).
        - `dataset`: a Dataset or a dataset folder (train split; dev for early stopping; test scored at the end).
        - `config`: epochs, step caps, learning rate, batch size, patience, seed, device (default: `TrainConfig()`).
        - `push`: register the trained module, with its dev/test accuracy as metrics and its init's provenance.
        - `tags`: tags of the pushed module.
        Writes: with `push`, one module row and its blob; nothing when training fails or is interrupted.
        """
        from hub.training import TrainConfig, train

        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
        result = train(
            module.model,
            module.method,
            module.formulation,
            data.split("train"),
            data.splits.get("dev", ()),
            config or TrainConfig(),
            data.splits.get("test", ()),
        )
        # Under `accelerate launch` every process trains the same module; one registers it.
        if push and result.main_process:
            metrics = {"dev_acc": result.best_dev, **({"test_acc": result.test} if result.test is not None else {})}
            tensors = {name: tensor.cpu() for name, tensor in module.tensors().items()}
            record = self.register(module.method, module.config, tensors, data, module.backbone, metrics=metrics, tags=tags, provenance=module.origin)
            result.module_id = record.id
        return result

    def dataset_embedding(self, dataset: Dataset) -> np.ndarray:
        """`dataset`'s embedding: the registry's, when a dataset of the same fingerprint is registered, else computed. Writes nothing."""
        known = self.registry.catalog.dataset_embedding(dataset.fingerprint)
        return known if known is not None else self.encoder.embed(dataset)

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
        """Register a module folder (PEFT layout) trained on `dataset`; pushing it again returns the same module.

        A model card in the folder (README.md, as `export` writes it) gives tags and metrics; `tags` are
        added to the card's and `metrics` override the card's values of the same name. Without a
        dataset, the module's task and category come from `task`/`category`, else from its card; it
        then has no dataset embedding (dataset search leaves it out; parameter search and ensembles keep it).
        `source` says where the folder came from (e.g. hf://ORG/NAME@SHA); `created_by` names who pushed it
        (default: the user name); `base_model` overrides the config's.

        A card that declares the module a composed init (`deltahub: {origin: ensemble, provenance: ...}`, as
        `export` writes it) registers it as one, with its provenance: strategy, temperature, top-k, chosen,
        rationale, layers and each source's score and weight. Sources are named by blob digest in the card
        and become the modules of this registry holding those weights (on the same base model); a source
        this registry does not hold is recorded by its digest alone, with module id 0 (as a removed source
        is). The registry keeps a provenance with its target dataset, which is the module's dataset: a
        composed init must be pushed with `dataset` (its target; for an init built with --shots, the full
        dataset it was sampled from), and without one it is refused. A trained module's card may carry the
        provenance of its init too: kept with a dataset, left out without one (the module is still pushed).

        Writes: the module's blob and row (with its task and dataset rows when new), and its index entries.
        """
        return self.registration.push(
            folder, dataset, task=task, category=category, base_model=base_model, metrics=metrics, tags=tags, created_by=created_by, source=source
        )

    def pull(
        self,
        repo: str,
        *,
        task: str | None = None,
        category: str | None = None,
        base_model: str | os.PathLike[str] | None = None,
        tags: Iterable[str] = (),
    ) -> ModuleRecord:
        """Push an adapter repo REPO_ID[@REVISION] of the Hugging Face Hub, described by its card (or `task`/`category`).

        The snapshot is read from the local cache when it is there, and downloaded only when it is not and
        HF_HUB_OFFLINE is unset. The module records the repo id and commit sha as its source.
        `task`, `category`, `base_model`, `tags`: as for `push`. Writes: as `push` (and the download into the cache).
        """
        from hub.hf_cache import fetch_snapshot, parse_hub_id

        hub_id = parse_hub_id(repo)
        if hub_id is None:
            raise HubError(f"{repo!r} is not a Hub repo id; pass ORG/NAME or ORG/NAME@REVISION")
        snapshot = fetch_snapshot(*hub_id, what="adapter repo")
        return self.push(snapshot.path, task=task, category=category, base_model=base_model, tags=tags, source=snapshot.source)

    def import_folders(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        dataset: Dataset | str | os.PathLike[str] | None = None,
        task: str | None = None,
        category: str | None = None,
        base_model: str | os.PathLike[str] | None = None,
        tags: Iterable[str] = (),
        progress: Callable[[int, int, Path], None] | None = None,
    ) -> list[ImportOutcome]:
        """Push every PEFT module folder under `paths` (recursively); one folder's failure is its outcome, not the end.

        Each folder is described by its model card, or every folder by the one `dataset`. Without a
        dataset, `task` and `category` name the task of every folder (else each card's `datasets:` and
        `deltahub.category`). A folder whose weights are already registered (on this base model) is
        reported as already there, not added again. `progress(done, total, folder)` is called after each
        folder. `base_model` and `tags`: as for `push`. Writes one module per imported folder (as `push`);
        a refused folder writes nothing.
        """
        from hub.bulk_import import import_folders

        return import_folders(self.registration, paths, dataset=dataset, task=task, category=category, base_model=base_model, tags=tags, progress=progress)

    def import_hf_cache(
        self,
        *,
        dataset: Dataset | str | os.PathLike[str] | None = None,
        task: str | None = None,
        category: str | None = None,
        base_model: str | os.PathLike[str] | None = None,
        tags: Iterable[str] = (),
        progress: Callable[[int, int, Path], None] | None = None,
    ) -> list[ImportOutcome]:
        """Push every cached revision of every PEFT adapter repo in the local Hugging Face cache, as `import_folders` pushes folders.

        A repo whose card names no dataset gets its repo name (NAME of ORG/NAME) as task, unless `task`
        is given. Each module records its repo id and commit sha as its source; nothing is downloaded.
        A repo the cache scan finds corrupted comes back skipped, with the scan's reason.
        Other arguments as `import_folders`. Writes: as `push`, once per imported repo revision.
        """
        from hub.bulk_import import import_hf_cache

        return import_hf_cache(self.registration, dataset=dataset, task=task, category=category, base_model=base_model, tags=tags, progress=progress)

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
        """Store checked tensors as a module: blob first, then the row, so a visible row always has its blob.

        - `method`, `config`, `tensors`: the module as its method reads it (checked by the caller, e.g. `check_fits`).
        - `dataset`: what the module was trained on, or only its task (a module pushed without a dataset).
        - `backbone`: the base model it was trained on.
        - `metrics`, `tags`, `created_by`, `source`: as for `push`; `origin`: trained or ensemble; `provenance`: its init's.
        - `card`: the model card (README.md text) the module came with, which `export` keeps.
        Writes: the blob, then the row (and task/dataset rows when new) and index entries; the same weights on the
        same base model and dataset are not stored twice: the module holding them comes back, unchanged.
        """
        return self.registration.register(
            method, config, tensors, dataset, backbone,
            metrics=metrics, tags=tags, created_by=created_by, origin=origin, provenance=provenance, source=source, card=card,
        )  # fmt: skip

    def check_fits(self, method: Method, config: dict, tensors: dict[str, torch.Tensor], backbone: Backbone) -> None:
        """Refuse (BaseModelMismatch) `tensors` that are not exactly the names and shapes `method` with `config` builds on `backbone`. Writes nothing."""
        self.registration.check_fits(method, config, tensors, backbone)

    def search(
        self,
        dataset: Dataset | str | os.PathLike[str] | None = None,
        *,
        module: int | None = None,
        top_k: int = 10,
        base_model: str | None = None,
        method: str | None = None,
        category: str | None = None,
    ) -> list[SearchHit]:
        """The `top_k` modules closest to a dataset (by dataset embedding) or to a module (by parameter embedding), closest first.

        - `dataset`: a Dataset or a dataset folder; or `module`: a module id (exactly one of the two).
        - `base_model`, `method`, `category`: only modules of these.
        Writes nothing (a stale index is rebuilt in the cache, never in the database).
        """
        if (dataset is None) == (module is None):
            raise HubError("search needs exactly one of a dataset or --module ID")
        if top_k < 1:
            raise HubError("--top-k must be at least 1")
        filters = ModuleQuery(base_model=_base_name(base_model), method=method, category=category)
        if module is not None:
            return self._search_by_module(module, top_k, filters)
        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
        vector = self.dataset_embedding(data)
        # Filters apply after the index, so widen the index search until enough modules pass.
        width = max(top_k, 8)
        while True:
            hits = dict(self.registry.indexes.search_datasets(vector, width))
            records = self.registry.catalog.list_modules(replace(filters, dataset_ids=list(hits)))
            if len(records) >= top_k or len(hits) < width:
                break
            width *= 4
        ranked = sorted(records, key=lambda record: (-hits[record.dataset_id], record.id))
        return [SearchHit(record, hits[record.dataset_id]) for record in ranked[:top_k]]

    def _search_by_module(self, module_id: int, top_k: int, filters: ModuleQuery) -> list[SearchHit]:
        from hub.embeddings import parameter_sketch

        query = self.show(module_id)
        vector = parameter_sketch(self.load_tensors(query))
        width = top_k + 1
        while True:
            hits = dict(self.registry.indexes.search_parameters(query.schema_hash, vector, width))
            hits.pop(module_id, None)
            records = self.registry.catalog.list_modules(replace(filters, ids=list(hits)))
            if len(records) >= top_k or len(hits) < width - 1:
                break
            width *= 4
        ranked = sorted(records, key=lambda record: (-hits[record.id], record.id))
        return [SearchHit(record, hits[record.id]) for record in ranked[:top_k]]

    def list(self, *, base_model: str | None = None, method: str | None = None, category: str | None = None, task: str | None = None) -> list[ModuleRecord]:
        """The registry's modules, oldest first; each of `base_model`, `method`, `category` and `task` given keeps only the modules that match it. Writes nothing."""
        return self.registry.catalog.list_modules(ModuleQuery(base_model=_base_name(base_model), method=method, category=category, task=task))

    def show(self, module_id: int) -> ModuleRecord:
        """Module `module_id`'s record (task, method, schema, metrics, provenance); NotFound when there is none. Writes nothing."""
        return self.registry.catalog.get_module(module_id)

    def remove(self, module_id: int) -> ModuleRecord:
        """Delete module `module_id`'s row and index entries; its record as it was.

        Writes: the row is deleted; its blob stays until `gc`, since another row may share it.
        """
        return self.registry.remove_module(module_id)

    def load_tensors(self, record: ModuleRecord) -> dict[str, torch.Tensor]:
        """The tensors of the module `record` describes, read from its blob (the digest is verified). Writes nothing."""
        from store.tensors import from_bytes

        return from_bytes(self.registry.blobs.get(record.blob_digest, owner=f"module {record.id}"))

    def export(self, module_id: int, out: str | os.PathLike[str]) -> Path:
        """Write module `module_id` as a folder that `PeftModel.from_pretrained` (or `push`) loads, with its model card (README.md); the folder.

        The folder (`out`, new or empty) gets adapter_config.json (trainable: `inference_mode` off),
        adapter_model.safetensors (the blob's bytes, digest-checked) and README.md: the card the module
        was pushed with, if any, with deltahub's fields (base model, datasets, tags, scores, provenance)
        set. Writes only the folder: nothing in the registry changes. Writing files needs no model library, and loads none.
        """
        from hub.cards import CARD_FILE, model_card
        from hub.folders import WEIGHTS_FILE, write_config

        record = self.show(module_id)
        target = Path(out)
        if target.exists() and not target.is_dir():
            raise HubError(f"{target} is a file; choose a new folder for the export")
        if target.exists() and any(target.iterdir()):
            raise HubError(f"{target} exists and is not empty; choose a new folder for the export")
        # The blob is the module's canonical safetensors bytes, which PEFT reads as they are.
        weights = self.registry.blobs.get(record.blob_digest, owner=f"module {record.id}")
        # Each source's own origin, where known (a removed source is not listed, and its id is 0).
        ids = [source.module_id for source in record.provenance.sources] if record.provenance is not None else []
        sources = {other.id: other.source for other in self.registry.catalog.list_modules(ModuleQuery(ids=ids)) if other.source} if ids else {}
        card = model_card(record, target.resolve().name, sources)
        target.mkdir(parents=True, exist_ok=True)
        write_config(target, record.config, record.base_model)
        (target / WEIGHTS_FILE).write_bytes(weights)
        card.save(target / CARD_FILE)
        return target

    def publish(self, module_id: int, repo_id: str, *, private: bool = False) -> str:
        """Export module `module_id` (PEFT files and model card) and upload it to the Hugging Face Hub as `repo_id` (ORG/NAME); the commit's URL.

        `private` creates a new repo private. Writes: the repo on the Hub (needs network and a token); the registry is unchanged.
        """
        import tempfile

        from hub.hf_cache import parse_hub_id, upload

        hub_id = parse_hub_id(repo_id)
        if hub_id is None or hub_id[1] is not None:
            raise HubError(f"{repo_id!r} is not a Hub repo id to publish to; pass ORG/NAME (no @REVISION)")
        with tempfile.TemporaryDirectory(prefix="deltahub-publish-") as scratch:
            # Named like the repo: the card's model-index names the model by its folder.
            folder = self.export(module_id, Path(scratch) / hub_id[0].split("/")[1])
            return upload(folder, repo_id, private)

    def load_module(self, module_id: int, base_model: str | os.PathLike[str] | None = None, method: str | None = None) -> TrainableModule:
        """A trainable copy of module `module_id` on a copy of `base_model`, refused unless the module is for it (and for `method`, when given).

        The copy's origin (what a module trained from it records as its init's provenance) is the module
        itself; a composed init keeps how it was made (strategy, sources, weights, decision) in its own record. Writes nothing.
        """
        from hub.backbones import formulation_for, resolve_base_model
        from hub.methods import get_method
        from hub.trainable import TrainableModule

        record = self.show(module_id)
        ref = resolve_base_model(base_model)
        if record.base_model != ref.name:
            raise HubError(f"module {module_id} is for base model {record.base_model}, not {ref.name}; pick a module of {ref.name}")
        if method is not None and record.method != method:
            raise HubError(f"module {module_id} is a {record.method} module, not {method}; pick a {method} module or pass --method {record.method}")
        chosen = get_method(record.method)
        backbone = self.backbone(ref)
        if record.base_arch_hash != backbone.arch_hash:
            raise HubError(f"module {module_id} was trained on a different architecture of {ref.name}; pick another module")
        origin = Provenance(strategy="module", temperature=1.0, top_k=None, sources=(SourceWeight(record.id, record.blob_digest, None, 1.0),))
        module = TrainableModule(backbone.attach(chosen, record.config), chosen, record.config, formulation_for(ref), backbone, origin)
        chosen.set_tensors(module.model, self.load_tensors(record))
        return module

    def rebuild_indexes(self) -> dict[str, int]:
        """Rebuild every faiss index from the database; vectors per index. Writes: the index files (a cache)."""
        return self.registry.indexes.rebuild()

    @property
    def transfer(self) -> TransferService:
        """Ensembles and transfer inits over this registry (see hub.transfer)."""
        from hub.transfer import TransferService

        return TransferService(self.registry.catalog, self.registry.blobs, self.backbone, self.search, self.register)

    def ensemble(
        self,
        dataset: Dataset | str | os.PathLike[str],
        options: TransferOptions | None = None,
        *,
        register: bool = True,
        progress: Callable[[int, int, Candidate], None] | None = None,
    ) -> TransferResult:
        """Score the registry's compatible modules on a target, weight them and compose the init.

        - `dataset`: the target: a Dataset (e.g. its k-shot sample, `Dataset.few_shot`) or a dataset folder.
        - `options`: the strategy and everything else that shapes the init (`TransferOptions`; default: its defaults).
        - `register`: register the init as a module (origin ensemble) with its provenance: strategy,
          temperature, top-k, layers, each source's score and weight, the target's fingerprint.
        - `progress(done, total, candidate)`: called after each candidate is scored.

        Writes: with `register`, one module row and its blob (none when a module holds the same weights
        already: that one is returned). Nothing is written when a check fails.
        """
        return self.transfer.ensemble(dataset, options or TransferOptions(), register=register, progress=progress)

    def transfer_init(self, dataset: Dataset | str | os.PathLike[str], options: TransferOptions | None = None, *, register: bool = True) -> TrainableModule:
        """A TrainableModule (a PeftModel for PEFT methods) on a copy of the base model, holding the ensemble's init.

        Arguments as `ensemble`; strategy `random` gives the method's default init under `options.seed`. The default
        strategy, `task-retrieval`, is the uniform average of one module of each of the 3 tasks whose datasets are
        nearest the dataset's (each task's module with the best dev accuracy on its card): it reads only the catalog's
        embeddings and metrics, scoring and training nothing, so its cost is loading the candidates.
        Writes: the init, registered as `ensemble` registers it, unless `register=False`.
        """
        return self.transfer.transfer_init(dataset, options or TransferOptions(), register=register)

    def init_module(self, init: str, dataset: Dataset | str | os.PathLike[str], options: TransferOptions | None = None) -> TrainableModule:
        """The module a training starts from: a registry module by id ("12"), or `transfer_init` with `init` as the strategy.

        - `init`: a module id, or a strategy name (it takes the place of `options.strategy`).
        - `dataset`, `options`: as `transfer_init`; for a module id only `options.base_model` and `options.method` apply
          (method options, --layers and --combine are refused: a registry module is loaded whole).

        Writes nothing: the trained module is registered (by `train(push=True)`) with this init as its provenance.
        """
        options = options or TransferOptions()
        if init.isdigit():
            if options.method_options:
                raise HubError(f"--method-option does not apply to --init {init}: a registry module keeps its own config")
            if options.layers is not None:
                raise HubError(f"--layers does not apply to --init {init}: a registry module is loaded whole")
            if options.combine != DEFAULT_COMBINE:
                raise HubError(f"--combine does not apply to --init {init}: a registry module is loaded whole, not composed")
            return self.load_module(int(init), base_model=options.base_model, method=options.method)
        return self.transfer_init(dataset, replace(options, strategy=init), register=False)

    def gc(self, grace_s: float = GC_GRACE_S, dry_run: bool = False) -> GcReport:
        """Delete blobs no module references that are older than `grace_s` seconds (default one hour), and dead temp files.

        With `dry_run` only report them. Writes: deletes those blob files (never a row). Local registries only.
        """
        return collect_garbage(self._local("gc"), grace_s, dry_run)

    def copy_blobs(self, to: str) -> CopyReport:
        """Copy the registry's blobs to `to` (a directory or s3://BUCKET/PREFIX) and verify each there; the report.

        Writes: the blobs at `to`, then the registry's recorded blob location, switched only once every blob is
        verified there. Local registries only.
        """
        return copy_blobs(self._local("blobs copy"), to)

    def verify(self, repair: bool = False) -> VerifyReport:
        """Re-hash every blob, check every row and index entry; the report.

        Writes: with `repair`, the rebuilt indexes; never deletes a module. Local registries only.
        """
        return verify_registry(self._local("verify"), repair)

    def _local(self, verb: str) -> Registry:
        """The registry opened here; maintenance reads its files, so it runs where they are."""
        if not isinstance(self.registry, Registry):
            raise HubError(f"`{verb}` works on the registry's files: run it on the server's machine with its registry directory or database URL")
        return self.registry


def _base_name(spec: str | None) -> str | None:
    if spec is None:
        return None
    # Resolving a name loads the model library; a listing without a base-model filter does not need it.
    from hub.backbones import resolve_base_model

    return resolve_base_model(spec).name

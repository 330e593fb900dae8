"""Ensembles and transfer inits: from a target's k-shot data to a registered, composed initialization.

Picks the candidates from the catalog (compatible with the base model and method,
never the target task's own), optionally narrows them with the dataset-embedding
index, builds a live `ModelEvaluator`, lets `ensembling` score, weight and
compose, and registers the result with its provenance. Every check that can fail
runs before anything is written, so a failed ensemble leaves the registry as it was.

Target data: what the strategy declares it needs (`Strategy.needs`), all of it from
the dataset it is given, which for a fair comparison is the k-shot sample
(`Dataset.few_shot`: k train + k dev examples per label). Scoring reads up to
`score_examples` labelled dev examples (the paper's one scoring batch of up to 50),
or train examples when there is no dev split; tuning (θ_t for kl and weight-cos,
each source for euclidean and performance) trains on the train split and keeps the
best dev checkpoint; a strategy that ranks sources by dataset-embedding similarity
gets it from the index, the target embedded from the same dataset. `make_evaluator`,
`load_candidates` and `with_similarity` are what the transfer benchmark builds its
inits with, so the CLI and the benchmark run one code path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from ensembling.candidates import Candidate, Target, Tuned
from ensembling.ensemble import Ensemble, Options, run
from ensembling.errors import EnsemblingError
from ensembling.strategies import Composition, Needs, Strategy, get_strategy
from hub.backbones import BaseModelRef, formulation_for, resolve_base_model
from hub.datasets import Dataset, Example, deterministic_sample, load_dataset
from hub.evaluation import ModelEvaluator
from hub.inits import TransferResult
from hub.methods import Method, get_method
from hub.search import SearchHit
from hub.trainable import Backbone, TrainableModule
from hub.training import TrainConfig, resolve_device
from hub.transfer_options import SCORE_EXAMPLES, TransferOptions
from store.errors import BlobCorrupt
from store.module_query import ModuleQuery
from store.records import ModuleRecord, Provenance, SourceWeight
from store.tensors import from_bytes

# Config keys that do not change what a module computes.
VOLATILE_CONFIG_KEYS = {"base_model_name_or_path", "revision", "inference_mode", "peft_version", "auto_mapping"}


class CatalogReader(Protocol):
    def list_modules(self, query: ModuleQuery) -> list[ModuleRecord]: ...


class BlobReader(Protocol):
    def get(self, digest: str, owner: str = "") -> bytes: ...


@dataclass
class TransferService:
    """Ensembles and transfer inits over one registry, from the narrow parts of it they need.

    `Hub.transfer` builds one from its catalog, blob store, backbone cache, search and register.
    """

    catalog: CatalogReader
    blobs: BlobReader
    backbones: Callable[[BaseModelRef], Backbone]
    search: Callable[..., list[SearchHit]]
    register: Callable[..., ModuleRecord]

    def ensemble(
        self,
        dataset: Dataset | str | os.PathLike[str],
        options: TransferOptions = TransferOptions(),
        *,
        register: bool = True,
        progress: Callable[[int, int, Candidate], None] | None = None,
    ) -> TransferResult:
        """Score the compatible modules on the target, weight them, compose and (by default) register the init.

        The strategy is named once, in `options.strategy`, and made into its object here: every check
        below and the composition read that object. Every check that can fail runs before anything is written.
        """
        strategy = get_strategy(options.strategy)
        ensembling = ensembling_options(options)
        if options.candidates is not None and options.candidates < 1:
            raise EnsemblingError(f"--candidates must be at least 1, got {options.candidates}")
        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
        check_needs(strategy, data, options.score_examples)
        method = get_method(options.method)
        wanted = method.parse_options(options.method_options)
        backbone = self.backbones(resolve_base_model(options.base_model))
        transfers = strategy.composition is not Composition.DEFAULT_INIT

        records = self.compatible_records(data, backbone, method, options.candidates)
        config, records = choose_group(records, method, backbone, wanted)
        check_revisions(records, backbone)
        if transfers and not records:
            raise EnsemblingError(
                f"no compatible candidates: the registry has no trained {method.name} modules on {backbone.ref.name} "
                f"(other than {data.card.name}'s own){_config_note(wanted)}; push some or choose another --method/--base-model"
            )
        loaded, skipped = self.load_candidates([candidate_of(record) for record in records], options.skip_corrupt)
        if transfers and not loaded:
            raise EnsemblingError("every candidate's blob failed its digest check; nothing is left to ensemble")
        if Needs.SIMILARITY in strategy.needs:
            loaded = self.with_similarity(loaded, data, backbone, method)

        evaluator = None
        if strategy.needs_model or options.layers is not None:
            evaluator = make_evaluator(
                backbone, method, config, data, device=options.device, seed=options.seed, score_examples=options.score_examples, tuning=options.tuning
            )
        result = compose_init(strategy, loaded, data, evaluator, ensembling, progress)

        by_id = {record.id: record for record in records}
        provenance = Provenance(
            strategy=result.strategy,
            temperature=result.temperature,
            top_k=options.top_k,
            sources=tuple(SourceWeight(s.module_id, by_id[s.module_id].blob_digest, s.score, s.weight) for s in result.sources),
            target_fingerprint=data.fingerprint,
            chosen=result.decision.chosen if result.decision else None,
            rationale=result.decision.reason if result.decision else "",
            layers=options.layers,
            combine=result.combine,
        )
        outcome = TransferResult(result, method, config, provenance, backbone.ref.name, data.card.name, skipped=tuple(skipped))
        if register:
            outcome.record = self.register(
                method, config, result.tensors, data, backbone, origin="ensemble", provenance=provenance, tags=(f"init:{result.strategy}",)
            )
        return outcome

    def transfer_init(
        self, dataset: Dataset | str | os.PathLike[str], options: TransferOptions = TransferOptions(), *, register: bool = True
    ) -> TrainableModule:
        """A trainable model (a PeftModel for PEFT methods) holding the ensemble's init; `random` holds the default init."""
        result = self.ensemble(dataset, options, register=register)
        backbone = self.backbones(resolve_base_model(options.base_model))
        model = backbone.default_init(result.method, result.config, options.seed)
        result.method.set_tensors(model, result.tensors)
        origin = result.provenance if result.provenance.sources else None
        return TrainableModule(model, result.method, result.config, formulation_for(backbone.ref), backbone, origin, result)

    def compatible_records(self, data: Dataset, backbone: Backbone, method: Method, candidates: int | None) -> list[ModuleRecord]:
        """Trained modules of this base model and method, never the target task's own; narrowed by the index when asked.

        A module pushed without a dataset is a candidate like any other (the scoring strategies read only
        the target's data). `candidates` N keeps the N modules of the datasets nearest the target's, and
        beside them every module without a dataset: it has no dataset embedding to be ranked by, and
        dropping it would lose it silently.
        """

        def usable(record: ModuleRecord) -> bool:
            return (
                record.origin == "trained"
                and record.base_arch_hash == backbone.arch_hash
                and record.task != data.card.name
                and record.dataset_fingerprint != data.fingerprint
            )

        same_kind = ModuleQuery(base_model=backbone.ref.name, method=method.name)
        records = [record for record in self.catalog.list_modules(same_kind) if usable(record)]
        without_dataset = [record for record in records if record.dataset_id is None]
        if candidates is None or len(records) - len(without_dataset) <= candidates:
            return records
        excluded = len(self.catalog.list_modules(same_kind)) - len(records)
        hits = self.search(data, top_k=candidates + excluded, base_model=backbone.ref.name, method=method.name)
        return [hit.module for hit in hits if usable(hit.module)][:candidates] + without_dataset

    def with_similarity(self, candidates: Sequence[Candidate], data: Dataset, backbone: Backbone, method: Method) -> list[Candidate]:
        """`candidates` with the cosine of their dataset's embedding with `data`'s, read from the dataset index.

        `data` is embedded from its own train examples (in a fair run, the k-shot sample's); each
        source's dataset was embedded when it was registered. A module pushed without a dataset has
        none: its similarity stays None (`retrieval` ranks it last).
        """
        modules = len(self.catalog.list_modules(ModuleQuery(base_model=backbone.ref.name, method=method.name)))
        hits = self.search(data, top_k=max(modules, 1), base_model=backbone.ref.name, method=method.name)
        similarity = {hit.module.id: hit.similarity for hit in hits}
        return [replace(candidate, similarity=similarity.get(candidate.id)) for candidate in candidates]

    def load_candidates(self, candidates: Iterable[Candidate], skip_corrupt: bool) -> tuple[list[Candidate], list[str]]:
        """Read each candidate's blob (its digest is verified); a corrupt one stops the run unless skipped explicitly."""
        loaded, skipped = [], []
        for candidate in candidates:
            try:
                tensors = from_bytes(self.blobs.get(candidate.digest, owner=candidate.label))
            except BlobCorrupt as error:
                if not skip_corrupt:
                    raise EnsemblingError(f"candidate {candidate.label}: {error}; pass --skip-corrupt to ensemble without it") from None
                skipped.append(f"{candidate.label}: {error}")
                continue
            loaded.append(replace(candidate, tensors=tensors))
        return loaded, skipped


def ensembling_options(options: TransferOptions) -> Options:
    """The part of `options` that ensembling reads (weighting, seeds, step caps, layers, operator); checked as it is made."""
    return Options(
        options.temperature, options.top_k, options.znorm, options.seed, options.reference_steps, options.tune_steps,
        layers=options.layers, combine=options.combine,
    )  # fmt: skip


def compose_init(
    strategy: Strategy,
    candidates: Sequence[Candidate],
    data: Dataset,
    evaluator: ModelEvaluator | None,
    options: Options,
    progress: Callable[[int, int, Candidate], None] | None = None,
    memo: dict[str, object] | None = None,
) -> Ensemble:
    """The one way an init is built: `strategy` weights the loaded `candidates` (never the target's own) on `data`, and they are composed.

    The caller has made `strategy` from its name (`get_strategy`) and checked the target data against its
    needs (`check_needs`); `evaluator` holds the target's data (`make_evaluator`); a shared `memo` lets
    controls reuse the weights their strategy found.
    """
    return run(strategy, candidates, Target(data.card.name, data.card.category, data.fingerprint), evaluator, options, progress, memo)


def check_needs(strategy: Strategy, data: Dataset, score_examples: int = SCORE_EXAMPLES) -> None:
    """Refuse, before any work, a target that lacks the data the strategy declares it reads."""
    if score_examples < 1:
        raise EnsemblingError(f"--score-examples must be at least 1, got {score_examples}")
    if Needs.SCORING in strategy.needs:
        scoring_examples(data, score_examples)
    for need, split in ((Needs.TRAIN, "train"), (Needs.DEV, "dev")):
        if need in strategy.needs and not data.splits.get(split):
            raise EnsemblingError(f"strategy {strategy.label} reads the target's {split} split, but {data.card.name!r} has none; add {split}.jsonl")
    if Needs.SIMILARITY in strategy.needs and not (data.splits.get("train") or data.splits.get("dev")):
        raise EnsemblingError(f"strategy {strategy.label} embeds the target's train (else dev) examples, but {data.card.name!r} has neither; add train.jsonl")


def scoring_examples(data: Dataset, count: int) -> list[Example]:
    """One scoring batch: up to `count` labelled examples of the dev split (paper), else of train."""
    split = "dev" if data.splits.get("dev") else "train"
    examples = list(data.splits.get(split, ()))
    labelled = [example for example in examples if len(example.choices) >= 2 and 0 <= example.label < len(example.choices)]
    if not labelled:
        raise EnsemblingError(f"dataset {data.card.name!r} has no labelled examples in its {split} split; scoring needs gold answers")
    return deterministic_sample(labelled, count)


def config_key(config: dict[str, Any]) -> str:
    return json.dumps({key: value for key, value in config.items() if key not in VOLATILE_CONFIG_KEYS}, sort_keys=True, default=str)


def choose_group(records: list[ModuleRecord], method: Method, backbone: Backbone, options: dict[str, Any]) -> tuple[dict[str, Any], list[ModuleRecord]]:
    """Modules compose only with the same tensor schema and config: pick that group.

    With method options (e.g. r=4), the group whose config has them; otherwise the
    largest group (ties: the one holding the oldest module). No records: the method's default config.
    """
    groups: dict[tuple[str, str], list[ModuleRecord]] = {}
    for record in records:
        if all(record.config.get(key) == value for key, value in options.items()):
            groups.setdefault((record.schema_hash, config_key(record.config)), []).append(record)
    if not groups:
        config = method.default_config(backbone.ref, options)
        return config, []
    best = max(groups.values(), key=lambda group: (len(group), -min(record.id for record in group)))
    return dict(best[0].config), best


def check_revisions(records: Sequence[ModuleRecord], backbone: Backbone) -> None:
    """Refuse sources trained on another revision of the base model: same shapes, other weights, so their deltas do not add up."""
    pinned = backbone.ref.revision or ""
    for record in records:
        if record.base_revision != pinned:
            raise EnsemblingError(
                f"module {record.id} was trained on {record.base_model}@{record.base_revision or 'an unpinned revision'}, "
                f"but the base model here is {backbone.ref.name}@{pinned or 'an unpinned revision'}; "
                "pass --base-model with the sources' revision, or remove the modules of the other revision"
            )


def _config_note(options: dict[str, Any]) -> str:
    return f" with {', '.join(f'{key}={value}' for key, value in options.items())}" if options else ""


def candidate_of(record: ModuleRecord) -> Candidate:
    """A registry module as an ensembling candidate, its tensors not loaded yet."""
    return Candidate(
        record.id,
        record.task,
        record.category,
        record.blob_digest,
        {},
        f"{record.base_model}@{record.base_arch_hash[:12]}",
        {"fingerprint": record.dataset_fingerprint},
        dev_acc=record.metrics.get("dev_acc"),
    )


def make_evaluator(
    backbone: Backbone,
    method: Method,
    config: dict[str, Any],
    data: Dataset,
    *,
    device: str,
    seed: int,
    score_examples: int = SCORE_EXAMPLES,
    tuning: TrainConfig | None = None,
    reference: Tuned | None = None,
    model: torch.nn.Module | None = None,
) -> ModelEvaluator:
    """A live evaluator on the target's data holding the method's default init under `seed`.

    `model`: a copy of the base model with the method attached to reuse (the benchmark keeps one);
    otherwise the method is attached to a fresh copy.
    """
    fresh = backbone.default_init(method, config, seed)
    if model is None:
        model = fresh
    else:
        method.set_tensors(model, method.get_tensors(fresh))
        del fresh
    scoring = scoring_examples(data, score_examples) if data.splits.get("dev") or data.splits.get("train") else []
    return ModelEvaluator(
        model,
        method,
        formulation_for(backbone.ref),
        scoring,
        train_examples=data.splits.get("train", ()),
        dev_examples=data.splits.get("dev", ()),
        device=resolve_device(device),
        tuning=tuning,
        reference=reference,
    )

"""Model cards: the README.md an export writes in the Hugging Face Hub's conventions, and what push reads back from one.

The front matter is `huggingface_hub.ModelCardData`: what the Hub indexes (library, base model and
its relation, datasets, tags, model-index results) plus a `deltahub:` mapping for what the Hub has
no field for: the task's category, the base model's revision, metrics that are not
scores on a split, the module's origin (trained, or ensemble for a composed init) and its provenance,
machine-readably, so that `push` of an exported init registers it as the init it is.

A module pushed with a card of its own (as the Hub writes them: license, tags, prose) keeps it in the
registry, and its export is that card with deltahub's fields set: what the user's card said stays.
Nothing here loads torch or PEFT, so an export writes its files without them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ensembling.errors import EnsemblingError
from ensembling.operators import LINEAR, parse_operator
from hub.errors import HubError
from hub.families import family_named
from hub.folders import peft_loads
from store.records import ModuleRecord, Provenance, SourceWeight

CARD_FILE = "README.md"
OWN_KEY = "deltahub"
HUB_TAG = "deltahub"
LIBRARY_TAGS = ("peft", "transformers")
# A metric named SPLIT_NAME (test_acc, dev_acc) is a score on that split, which the Hub shows as a model-index result.
SPLIT_METRIC = re.compile(r"^(train|dev|validation|test)_(.+)$")
# The Hub's task ids for the dataset formats.
TASK_TYPES = {"classification": "text-classification", "pair": "text-classification", "multiple_choice": "multiple-choice"}
# The origins a card may declare: a trained module, or a composed init.
ORIGINS = ("trained", "ensemble")
DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CardMetadata:
    """What a module folder's model card says about the module, in the registry's terms."""

    task: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    # "trained" or "ensemble"; None when the card does not say (a card deltahub did not write).
    origin: str | None = None
    # An init's provenance, or a trained module's init; its sources are named by blob digest, and their
    # module ids (those of the exporting registry) are 0 here: `Hub.push` maps them to its own.
    provenance: Provenance | None = None
    text: str = ""  # the whole README.md, as the registry keeps it


def model_card(record: ModuleRecord, name: str, sources: Mapping[int, str]) -> ModelCard:
    """The card of an exported module; `name` is the export's folder name (the model-index's model name).

    `sources` maps an init's source modules to where each came from (hf://ORG/NAME@SHA), where known.
    The card the module was pushed with, if any, keeps its other fields (license, …) and its prose; the
    fields below are deltahub's and replace the pushed card's.
    """
    split_scores = {key: value for key, value in record.metrics.items() if SPLIT_METRIC.match(key)}
    own: dict[str, Any] = {"category": record.category, "origin": record.origin}
    if record.base_revision:
        # The Hub's base_model names no revision; the registry pins one.
        own["base_model_revision"] = record.base_revision
    if record.source:
        own["source"] = record.source
    other_metrics = {key: value for key, value in record.metrics.items() if key not in split_scores}
    if other_metrics:
        own["metrics"] = other_metrics
    if record.provenance is not None:
        own["provenance"] = _provenance_data(record.provenance, sources)
    data = ModelCardData(
        # A bottleneck adapter is deltahub's own format, which PEFT cannot load.
        library_name="peft" if peft_loads(record.config) else None,
        base_model=record.base_model,
        datasets=[record.task],
        tags=[*record.tags, HUB_TAG, record.method],
        model_name=name if split_scores else None,
        eval_results=[_eval_result(record, key, value) for key, value in sorted(split_scores.items())] or None,
        base_model_relation="merge" if record.origin == "ensemble" else "adapter",
        **{OWN_KEY: own},
    )
    pushed = _pushed_card(record.card)
    if pushed is None:
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(record)}")
    # Ours replace the pushed card's fields of the same name; its tags are in the record's already (push took them).
    fields = {**pushed.data.to_dict(), **data.to_dict()}
    if not peft_loads(record.config):
        fields.pop("library_name", None)
    merged = ModelCardData(**fields)
    # A card deltahub wrote has deltahub's prose, about the registry it came from: this registry's replaces it.
    body = pushed.text if pushed.text.strip() and OWN_KEY not in pushed.data.to_dict() else _body(record)
    return ModelCard(f"---\n{merged.to_yaml()}\n---\n\n{body.lstrip()}")


def _pushed_card(text: str) -> ModelCard | None:
    """The card a module was pushed with, when it had one with front matter (push read it, so it parses)."""
    if not text.lstrip().startswith("---"):
        return ModelCard(f"---\n---\n\n{text}") if text.strip() else None
    return ModelCard(text)


def read_card(folder: Path) -> CardMetadata:
    """What the folder's README.md front matter says (nothing when there is no card); a malformed one is a one-line error."""
    path = folder / CARD_FILE
    if not path.is_file():
        return CardMetadata()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise HubError(f"cannot read the model card {path}: {error}") from None
    # A README without front matter is prose with nothing to take (and huggingface_hub would warn about it on stderr).
    if not text.lstrip().startswith("---"):
        return CardMetadata(text=text)
    try:
        data = ModelCard(text).data
    except yaml.YAMLError as error:
        raise HubError(f"the model card {path} has malformed YAML front matter ({_yaml_problem(error)}); fix it or remove the file") from None
    except (ValueError, TypeError) as error:
        raise HubError(f"the model card {path} has unusable front matter ({str(error).splitlines()[0]}); fix it or remove the file") from None
    own = _mapping(path, data.get(OWN_KEY, {}), OWN_KEY)
    datasets = data.get("datasets", [])
    names = [datasets] if isinstance(datasets, str) else datasets if isinstance(datasets, list) else []
    tags = tuple(str(tag) for tag in data.get("tags", []) if not _restates_a_column(str(tag)))
    metrics = {}
    for result in data.eval_results or []:
        key = f"{result.dataset_split}_{result.metric_type}" if result.dataset_split else str(result.metric_type)
        metrics[key] = _number(path, key, result.metric_value)
    for key, value in _mapping(path, own.get("metrics", {}), f"{OWN_KEY}.metrics").items():
        metrics[str(key)] = _number(path, str(key), value)
    category = own.get("category")
    provenance = _read_provenance(path, own["provenance"]) if own.get("provenance") is not None else None
    origin = _read_origin(path, own.get("origin"), provenance, data.get("base_model_relation"))
    return CardMetadata(str(names[0]) if names else None, str(category) if category is not None else None, tags, metrics, origin, provenance, text)


def _read_origin(path: Path, origin: object, provenance: Provenance | None, relation: object) -> str | None:
    if origin is None:
        # A card exported before the origin was written: a merge with a provenance is a composed init.
        return "ensemble" if provenance is not None and relation == "merge" else None
    if origin not in ORIGINS:
        raise HubError(f"the model card {path} declares origin {origin!r}; deltahub registers {' or '.join(ORIGINS)} modules; fix it or remove the file")
    if origin == "ensemble" and provenance is None:
        raise HubError(f"the model card {path} declares origin ensemble but has no `{OWN_KEY}.provenance`; fix it or remove the file")
    return str(origin)


def _read_provenance(path: Path, value: object) -> Provenance:
    """The card's provenance block, checked field by field; each source keeps its digest, and module id 0 until mapped."""
    key = f"{OWN_KEY}.provenance"
    block = _mapping(path, value, key)

    def bad(problem: str) -> HubError:
        return HubError(f"the model card {path}: `{key}` {problem}; fix it or remove the file")

    strategy = block.get("strategy")
    if not isinstance(strategy, str) or not strategy:
        raise bad(f"has strategy {strategy!r}, not a strategy name")
    temperature = block.get("temperature")
    if not _finite(temperature) or temperature <= 0:
        raise bad(f"has temperature {temperature!r}, not a positive number")
    top_k = block.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise bad(f"has top_k {top_k!r}, not a positive whole number or null")
    texts = {name: block.get(name) for name in ("chosen", "rationale", "layers", "target_fingerprint", "combine")}
    for name, text in texts.items():
        if text is not None and not isinstance(text, str):
            raise bad(f"has {name} {text!r}, not text")
    try:
        combine = parse_operator(texts["combine"]).label  # absent in a card written before operators existed: linear
    except EnsemblingError as error:
        raise bad(f"has combine {texts['combine']!r} ({error})") from None
    sources = block.get("sources")
    if not isinstance(sources, list):
        raise bad("has no list of sources")
    weights = []
    for position, source in enumerate(sources, start=1):
        if not isinstance(source, dict):
            raise bad(f"source {position} is not a mapping")
        digest, score, weight = source.get("digest"), source.get("score"), source.get("weight")
        if not isinstance(digest, str) or not DIGEST.match(digest):
            raise bad(f"source {position} has digest {digest!r}, not a blob's sha256 (64 hex digits)")
        if not _finite(weight):
            raise bad(f"source {position} has weight {weight!r}, not a finite number")
        if score is not None and not _finite(score):
            raise bad(f"source {position} has score {score!r}, not a finite number or null")
        weights.append(SourceWeight(0, digest, None if score is None else float(score), float(weight)))
    return Provenance(
        strategy=strategy,
        temperature=float(temperature),
        top_k=top_k,
        sources=tuple(weights),
        target_fingerprint=texts["target_fingerprint"] or "",
        chosen=texts["chosen"],
        rationale=texts["rationale"] or "",
        layers=texts["layers"],
        combine=combine,
    )


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _restates_a_column(tag: str) -> bool:
    """A tag that the export, PEFT's save_pretrained or the Hub adds for the base model, the library or the method.

    The registry records those as the module's columns; as tags they would only repeat them (a folder PEFT
    saved would carry its base model's local path as a tag).
    """
    from hub.methods import METHODS  # reading a card is part of a push, which loads the methods anyway

    methods = {name for method in METHODS.values() for name in (method.name, method.peft_type.lower())}
    return tag.startswith("base_model:") or tag == HUB_TAG or tag in LIBRARY_TAGS or tag in methods


def _eval_result(record: ModuleRecord, key: str, value: float) -> EvalResult:
    split, metric = SPLIT_METRIC.match(key).groups()
    return EvalResult(
        task_type=TASK_TYPES.get(record.task_format, "text-classification"),
        task_name=record.task,
        dataset_type=record.task,
        dataset_name=record.task,
        dataset_split=split,
        metric_type=metric,
        metric_value=value,
    )


def _provenance_data(provenance: Provenance, sources: Mapping[int, str]) -> dict[str, Any]:
    return {
        "strategy": provenance.strategy,
        "temperature": provenance.temperature,
        "top_k": provenance.top_k,
        "chosen": provenance.chosen,
        "rationale": provenance.rationale,
        "layers": provenance.layers,
        "combine": provenance.combine,
        "target_fingerprint": provenance.target_fingerprint,
        "sources": [
            {
                "module_id": s.module_id,
                "digest": s.digest,
                "score": s.score,
                "weight": s.weight,
                **({"source": sources[s.module_id]} if s.module_id in sources else {}),
            }
            for s in provenance.sources
        ],
    }


def _body(record: ModuleRecord) -> str:
    lines = [
        f"# {record.task} ({record.method})",
        "",
        f"A {record.method} module for the task **{record.task}** (category {record.category}, format {record.task_format}) "
        f"on the base model `{record.base_model}`, exported from a deltahub registry (module {record.id}, blob sha256 `{record.blob_digest[:16]}…`).",
        "",
        "## Use",
        "",
    ]
    if peft_loads(record.config):
        family = family_named(record.base_model_family)
        options = "".join(f", {key}={value!r}" for key, value in family.load_options.items())
        # An init is meant to be trained: PeftModel.from_pretrained freezes a module unless told otherwise.
        trainable = ", is_trainable=True" if record.origin == "ensemble" else ""
        lines += [
            "```python",
            "from peft import PeftModel",
            f"from transformers import {family.auto_model}",
            "",
            f'base = {family.auto_model}.from_pretrained("{record.base_model}"{options})',
            f'model = PeftModel.from_pretrained(base, "path/to/this/folder"{trainable})',
            "```",
            "",
        ]
    lines += [
        "Register it in a deltahub registry with `adapters push path/to/this/folder --dataset DATASET_DIR`: its tags and metrics come from this card"
        + (
            ", and its origin and provenance too (each source is found by its blob sha256; pass the init's target dataset as DATASET_DIR)."
            if record.provenance is not None
            else "."
        ),
        "",
    ]
    if record.metrics:
        lines += ["## Metrics", "", "| metric | value |", "| --- | ---: |"]
        lines += [f"| {key} | {value:.4g} |" for key, value in sorted(record.metrics.items())]
        lines.append("")
    if record.provenance is not None:
        lines += _provenance_lines(record.provenance, composed=record.origin == "ensemble")
    return "\n".join(lines)


def _provenance_lines(provenance: Provenance, composed: bool) -> list[str]:
    what = "This module is" if composed else "This module was trained from"
    top_k = provenance.top_k if provenance.top_k is not None else "all"
    lines = [
        "## Provenance",
        "",
        f"{what} {_composition(provenance.combine)} of {len(provenance.sources)} registry modules, weighted by strategy `{provenance.strategy}` "
        f"(temperature {provenance.temperature:g}, top-k {top_k}, layers {provenance.layers or 'all'}, operator `{provenance.combine}`).",
        "",
    ]
    if provenance.chosen is not None:
        lines += [f"`{provenance.strategy}` chose `{provenance.chosen}`: {provenance.rationale}", ""]
    lines += ["| source module | blob sha256 | score | weight |", "| ---: | --- | ---: | ---: |"]
    for source in provenance.sources:
        score = f"{source.score:.4g}" if source.score is not None else "–"
        lines.append(f"| {source.module_id} | `{source.digest[:16]}…` | {score} | {source.weight:.4f} |")
    lines.append("")
    return lines


def _composition(combine: str) -> str:
    operator = parse_operator(combine)
    if operator.name == LINEAR:
        return "the weighted sum θ = Σ wᵢ θᵢ"
    if operator.in_update_space:
        return "the rank-r projection of the merged LoRA updates BᵢAᵢ"
    return "a merge of the LoRA factors"


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines with carets; the problem and its line fit in one."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        return f"{error.problem} at line {error.problem_mark.line + 1} of the front matter"
    return str(error).splitlines()[0]


def _mapping(path: Path, value: object, key: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise HubError(f"the model card {path}: `{key}` is not a mapping; fix it or remove the file")
    return value


def _number(path: Path, key: str, value: object) -> float:
    if not _finite(value):
        raise HubError(f"the model card {path}: metric {key} is {value!r}, not a finite number; fix it or remove the file")
    return float(value)

"""How the CLI shows records: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from hub import SearchHit
from store.catalog import ModuleRecord

console = Console()


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _metrics(record: ModuleRecord) -> str:
    return " ".join(f"{key}={value:.3g}" for key, value in sorted(record.metrics.items()))


def modules_table(records: Sequence[ModuleRecord], title: str = "modules") -> Table:
    table = Table(title=title)
    for column in ("id", "task", "category", "method", "kind", "params", "metrics", "base model", "created"):
        table.add_column(column, justify="right" if column in ("id", "params") else "left")
    for record in records:
        table.add_row(
            str(record.id),
            record.task,
            record.category,
            record.method,
            record.kind,
            f"{record.num_params:,}",
            _metrics(record),
            record.base_model,
            record.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    return table


def hits_table(hits: Sequence[SearchHit], title: str) -> Table:
    table = Table(title=title)
    for column in ("rank", "id", "similarity", "task", "category", "method", "metrics"):
        table.add_column(column, justify="right" if column in ("rank", "id", "similarity") else "left")
    for rank, hit in enumerate(hits, start=1):
        record = hit.module
        table.add_row(str(rank), str(record.id), f"{hit.similarity:.3f}", record.task, record.category, record.method, _metrics(record))
    return table


def module_details(record: ModuleRecord) -> Table:
    table = Table(title=f"module {record.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("task", f"{record.task} ({record.category}, {record.task_format})"),
        ("method", record.method),
        ("kind", record.kind),
        ("base model", f"{record.base_model} [{record.base_model_kind}]"),
        ("parameters", f"{record.num_params:,} in {len(record.tensor_schema)} tensors"),
        ("schema", record.schema_hash[:16]),
        ("blob", record.blob_digest),
        ("dataset", record.dataset_fingerprint[:16]),
        ("metrics", _metrics(record) or "-"),
        ("tags", ", ".join(record.tags) or "-"),
        ("created", f"{record.created_at:%Y-%m-%d %H:%M:%S} by {record.created_by or '?'}"),
        ("config", json.dumps({key: value for key, value in record.config.items() if value not in (None, {}, [], "")}, sort_keys=True)),
    ]
    if record.provenance is not None:
        provenance = record.provenance
        sources = ", ".join(f"{source.module_id or source.digest[:8]}:{source.weight:.3f}" for source in provenance.sources)
        rows.append(("ensemble", f"{provenance.strategy} τ={provenance.temperature:g} top-k={provenance.top_k or 'all'}; {sources}"))
    for field, value in rows:
        table.add_row(field, value)
    return table

"""How the CLI shows records: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hub import ModuleRecord, SearchHit
from hub.progress import progress

if TYPE_CHECKING:
    # Annotations only: the reports are store data that hub.Hub.verify / gc hand over unchanged.
    from hub import BrokenModule, GcReport, IndexFinding, TokenRecord, VerifyReport
    from hub.bulk_import import ImportOutcome

console = Console()
# hub.bulk_import's statuses, named here so that rendering an import loads no model library.
IMPORT_STATUSES = ("imported", "already there", "refused", "skipped")


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _metrics(record: ModuleRecord) -> str:
    return " ".join(f"{key}={value:.3g}" for key, value in sorted(record.metrics.items()))


def _table(title: str, columns: Sequence[tuple[str, bool, str]], rows: Sequence[Sequence[str]]) -> Table:
    """A table that fits the terminal without cutting what identifies a row: the `keep` columns (ids, digests,
    statuses, task names) keep their full width, or, when even they do not fit, wrap onto more lines (never
    cut); the others, in order, get what is left, cut with an ellipsis, and a column with room for fewer than
    6 characters is left out."""
    widths = [max([len(name), *(len(row[index]) for row in rows)]) for index, (name, _keep, _justify) in enumerate(columns)]
    room = console.width - 1 - sum(widths[index] + 3 for index, (_n, keep, _j) in enumerate(columns) if keep)
    shown: dict[int, int] = {index: widths[index] for index, (_n, keep, _j) in enumerate(columns) if keep}
    for index, (_name, keep, _justify) in enumerate(columns):
        if not keep and room - 3 >= min(widths[index], 6):
            shown[index] = min(widths[index], room - 3)
            room -= shown[index] + 3
    table = Table(title=title)
    for index in sorted(shown):
        name, keep, justify = columns[index]
        if keep and room < 0:
            # Rich narrows the widest column first: a long folder or digest wraps, a header keeps its letters.
            table.add_column(name, justify=justify, overflow="fold", min_width=len(name))
        else:
            table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", width=shown[index])
    for row in rows:
        table.add_row(*(row[index] for index in sorted(shown)))
    return table


def modules_table(records: Sequence[ModuleRecord], title: str = "modules") -> Table:
    columns = [("id", True, "right"), ("task", True, "left"), ("method", True, "left"), ("category", False, "left"), ("origin", False, "left"),
               ("params", False, "right"), ("metrics", False, "left"), ("created", False, "left")]  # fmt: skip
    rows = [(str(r.id), r.task, r.method, r.category, r.origin, f"{r.num_params:,}", _metrics(r), r.created_at.strftime("%Y-%m-%d")) for r in records]
    return _table(title, columns, rows)


def strategies_table(summaries: Sequence[tuple[str, str]], default: str) -> Table:
    """One row per strategy: its name whole, its summary wrapped to the terminal."""
    table = Table(title=f"{len(summaries)} strategies (default: {default})")
    table.add_column("strategy", no_wrap=True, style="bold")
    table.add_column("what it scores, and how it weighs the sources")
    for name, summary in summaries:
        table.add_row(name, summary)
    return table


def tokens_table(records: Sequence[TokenRecord], title: str = "tokens") -> Table:
    """Names, scopes and dates of the API tokens; the registry has no secret to show."""

    def when(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"

    columns = [("name", True, "left"), ("scope", True, "left"), ("created", True, "left"), ("last used", True, "left"), ("revoked", True, "left")]
    rows = [(r.name, r.scope, when(r.created_at), when(r.last_used_at), when(r.revoked_at)) for r in records]
    return _table(title, columns, rows)


def hits_table(hits: Sequence[SearchHit], title: str) -> Table:
    columns = [("rank", True, "right"), ("id", True, "right"), ("similarity", True, "right"), ("task", True, "left"), ("method", True, "left"),
               ("category", False, "left"), ("metrics", False, "left")]  # fmt: skip
    rows = [
        (str(rank), str(hit.module.id), f"{hit.similarity:.3f}", hit.module.task, hit.module.method, hit.module.category, _metrics(hit.module))
        for rank, hit in enumerate(hits, start=1)
    ]
    return _table(title, columns, rows)


def module_details(record: ModuleRecord) -> Table:
    table = Table(title=f"module {record.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("task", f"{record.task} ({record.category}, {record.task_format})"),
        ("method", record.method),
        ("origin", record.origin),
        ("base model", f"{record.base_model}{'@' + record.base_revision if record.base_revision else ''} ({record.base_model_family})"),
        ("parameters", f"{record.num_params:,} in {len(record.tensor_schema)} tensors"),
        ("schema", record.schema_hash[:16]),
        ("blob", record.blob_digest),
        ("dataset", record.dataset_fingerprint[:16] if record.dataset_fingerprint is not None else "none (pushed without one; not in dataset search)"),
        ("metrics", _metrics(record) or "-"),
        ("tags", ", ".join(record.tags) or "-"),
        ("created", f"{record.created_at:%Y-%m-%d %H:%M:%S} by {record.created_by or '?'}"),
        ("source", record.source or "-"),
        ("config", json.dumps({key: value for key, value in record.config.items() if value not in (None, {}, [], "")}, sort_keys=True)),
    ]
    if record.provenance is not None:
        provenance = record.provenance
        sources = ", ".join(f"{source.module_id or source.digest[:8]}:{source.weight:.3f}" for source in provenance.sources)
        layers = f" layers={provenance.layers}" if provenance.layers else ""
        rows.append(("init", f"{provenance.strategy} τ={provenance.temperature:g} top-k={provenance.top_k or 'all'}{layers}; {sources}"))
        rows.append(("combine", provenance.combine))
        if provenance.rationale:
            rows.append(("init choice", provenance.rationale))
    for field, value in rows:
        table.add_row(field, value)
    return table


def weights_table(result) -> Table:
    """Sources of an ensemble (a hub.transfer.TransferResult), heaviest first."""
    strategy = result.strategy if result.decision is None else f"{result.strategy} → {result.decision.chosen}"
    title = f"{strategy} init for {result.target} (τ={result.temperature:g}, top-k={result.top_k or 'all'}, combine={result.ensemble.combine})"
    table = Table(title=title)
    for column in ("source", "task", "category", "score", "weight"):
        table.add_column(column, justify="right" if column in ("source", "score", "weight") else "left")
    for row in sorted(result.sources, key=lambda row: (-row.weight, row.module_id)):
        score = "-" if row.score is None else f"{row.score:.4g}"
        table.add_row(str(row.module_id), row.task, row.category, score, f"{row.weight:.4f}")
    if not result.sources:
        table.add_row("-", "(no sources: the method's default init)", "", "", "")
    elif len(result.sources) > 1:
        effective, count = result.effective_sources, len(result.sources)
        # Near-uniform weights mean the scores did not tell the sources apart: say so, it is `average` in all but name.
        verdict = "near-uniform: the scores barely tell these sources apart, so this init is close to `average`" if effective >= 0.8 * count else "selective"
        table.caption = f"effective sources (Σ|w|)²/Σw² = {effective:.1f} of {count}: {verdict}"
    return table


def ensemble_json(result) -> dict[str, Any]:
    return {
        "module_id": result.record.id if result.record is not None else None,
        "strategy": result.strategy,
        "temperature": result.temperature,
        "top_k": result.top_k,
        "target": result.target,
        "base_model": result.base_model,
        "method": result.method.name,
        "sources": [{"module_id": r.module_id, "task": r.task, "category": r.category, "score": r.score, "weight": r.weight} for r in result.sources],
        "effective_sources": result.effective_sources,
        "chosen": result.decision.chosen if result.decision else None,
        "rationale": result.decision.reason if result.decision else None,
        "layers": result.ensemble.layers,
        "combine": result.ensemble.combine,
        "skipped": list(result.skipped),
    }


def weights_plot(result, path) -> None:
    """A bar chart of the ensemble's weights, one bar per source (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result.sources, key=lambda row: (row.weight, -row.module_id))  # barh draws bottom-up: heaviest on top
    labels = [f"{row.module_id}: {row.task}" for row in rows] or ["(default init)"]
    values = [row.weight for row in rows] or [0.0]
    # Horizontal bars: long task names stay readable and the figure is wide enough for its title.
    figure, axes = plt.subplots(figsize=(8.0, max(2.5, 0.35 * len(labels) + 1.5)))
    try:
        axes.barh(range(len(values)), values, color="#4C72B0")
        axes.set_yticks(range(len(labels)), labels, fontsize=8)
        axes.set_xlabel("weight")
        # Fitted weights (lorahub) may be negative: the axis spans both signs then.
        axes.set_xlim(min(values + [0.0]) * 1.15, max(values + [1e-9]) * 1.15)
        for index, value in enumerate(values):
            axes.text(value, index, f" {value:.2f}", va="center", fontsize=7)
        axes.set_title(
            f"{result.strategy} weights for {result.target}\n(τ={result.temperature:g}, effective sources (Σ|w|)²/Σw² = {result.effective_sources:.1f} of {len(rows)})",
            fontsize=10,
        )
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)


@contextmanager
def counted_progress(description: str, disable: bool = False) -> Iterator[Callable[[int, int, Any], None]]:
    """The callback ensembling (scoring candidates) and imports (module folders) call after each item: hub.progress's bar or lines."""
    with ExitStack() as stack:
        reporter = None

        def advance(done: int, total: int, item: Any) -> None:
            nonlocal reporter
            if reporter is None:
                reporter = stack.enter_context(progress(description, total, enabled=not disable))
            reporter.update(done, str(getattr(item, "label", item)))

        yield advance


def _import_counts(outcomes: Sequence[ImportOutcome]) -> dict[str, int]:
    return {status: sum(1 for outcome in outcomes if outcome.status == status) for status in IMPORT_STATUSES}


def import_table(outcomes: Sequence[ImportOutcome]) -> Table:
    """One row per module folder: what became of it, the module holding it and its task (reasons: `import_refusals`)."""
    columns = [("folder", True, "left"), ("status", True, "left"), ("module", True, "right"), ("task", True, "left")]
    # A repo of the Hugging Face cache is named by its source: its snapshot path is a sha deep in the cache.
    rows = [(o.source or str(o.folder), o.status, str(o.module_id) if o.module_id is not None else "-", _task_cell(o)) for o in outcomes]
    table = _table(f"import of {_count(len(outcomes), 'module folder')}", columns, rows)
    table.caption = ", ".join(f"{count} {status}" for status, count in _import_counts(outcomes).items() if count or status != "skipped")
    return table


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _task_cell(outcome: ImportOutcome) -> str:
    if not outcome.task:
        return "-"
    return f"{outcome.task} (from {outcome.task_from})" if outcome.task_from else outcome.task


def import_refusals(outcomes: Sequence[ImportOutcome]) -> list[str]:
    """Each refused or skipped folder and its reason, whole (a table cell would cut it)."""
    return [f"{outcome.status} {outcome.source or outcome.folder}: {outcome.reason}" for outcome in outcomes if outcome.status in ("refused", "skipped")]


def import_json(outcomes: Sequence[ImportOutcome]) -> dict[str, Any]:
    counts = _import_counts(outcomes)
    return {
        "imported": counts["imported"],
        "already_there": counts["already there"],
        "refused": counts["refused"],
        "skipped": counts["skipped"],
        "folders": [outcome.to_json() for outcome in outcomes],
    }


def training_table(summary: dict[str, Any]) -> Table:
    """One trained module: its init, budget and scores."""
    table = Table(title=f"trained {summary['task']} from init {summary['init']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("train examples", str(summary["train_examples"]))
    table.add_row("steps", str(summary["steps"]))
    table.add_row("best dev acc", f"{summary['dev_acc']:.4f}")
    table.add_row("test acc", "-" if summary["test_acc"] is None else f"{summary['test_acc']:.4f}")
    table.add_row("pushed as", "-" if summary["module_id"] is None else f"module {summary['module_id']}")
    return table


def verify_lines(report: VerifyReport) -> list[str]:
    """`adapters verify` for people: a summary, each finding on its line, and the verdict."""
    out = [f"{report.modules} modules, {report.blobs} blobs ({report.blob_bytes:,} bytes) re-hashed, {report.indexes_checked} indexes checked"]
    for address, actual in report.corrupt_blobs:
        out.append(f"corrupt blob {address}: its bytes hash to {actual} (digest mismatch; corrupt, or a blob from another registry)")
    for broken in report.broken_modules:
        out.append(f"broken module {broken.id} ({broken.task}): {_broken_reason(broken, report)}")
    out.extend(f"index problem: {_index_finding(finding)}" for finding in report.index_problems)
    out.extend(f"note: {_index_finding(finding)}" for finding in report.index_notes)
    if report.unreferenced_blobs or report.temp_files:
        out.append(f"{report.unreferenced_blobs} unreferenced blobs and {report.temp_files} temp files: `adapters gc` removes them after the grace period")
    if report.repaired_indexes is not None:
        out.append("rebuilt indexes: " + ", ".join(f"{name} ({size} vectors)" for name, size in report.repaired_indexes.items()))
    if report.broken_modules:
        out.append("broken modules are not deleted: restore their blobs, or `adapters rm ID` and push them again")
    out.append("registry is healthy" if report.healthy else "registry is NOT healthy")
    return out


def verify_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "healthy": report.healthy,
        "modules": report.modules,
        "blobs": report.blobs,
        "blob_bytes": report.blob_bytes,
        "corrupt_blobs": [{"digest": address, "actual": actual} for address, actual in report.corrupt_blobs],
        "broken_modules": [
            {"id": b.id, "task": b.task, "digest": b.digest, "problem": b.problem, "reason": _broken_reason(b, report)} for b in report.broken_modules
        ],
        "unreferenced_blobs": report.unreferenced_blobs,
        "temp_files": report.temp_files,
        "index_problems": [_index_finding(finding) for finding in report.index_problems],
        "index_notes": [_index_finding(finding) for finding in report.index_notes],
        "repaired_indexes": report.repaired_indexes,
    }


def _broken_reason(broken: BrokenModule, report: VerifyReport) -> str:
    if broken.problem == "missing":
        return f"blob {broken.digest[:12]} is missing from {report.blob_root}"
    if broken.problem == "digest-mismatch":
        return f"blob {broken.digest[:12]} fails its sha256 check (digest mismatch)"
    if broken.problem == "unreadable" or broken.mismatch is None:
        return "its blob is not a readable safetensors file"
    mismatch = broken.mismatch
    if mismatch.found is None:
        what = f"lacks {mismatch.tensor}"
    elif mismatch.declared is None:
        what = f"has unexpected {mismatch.tensor}"
    else:
        what = f"tensor {mismatch.tensor} is {mismatch.found}, row says {mismatch.declared}"
    return f"its blob does not match the row's tensor schema ({what})"


def _index_finding(finding: IndexFinding) -> str:
    name = finding.index
    if finding.problem == "dangling":
        return f"{name}: {finding.count} entries point at no row (e.g. {finding.example}) in an index marked current"
    if finding.problem == "missing-rows":
        return f"{name}: {finding.count} rows are missing (e.g. {finding.example}) from an index marked current"
    if finding.problem == "ahead":
        return f"{name}: claims generation {finding.index_generation}, ahead of the database's {finding.generation} (from another registry?)"
    if finding.problem == "unreadable":
        return f"{name}: unreadable cache file (a save was interrupted?); it is rebuilt on next use"
    dropped = f"; {finding.count} entries of removed rows are dropped then" if finding.count else ""
    return f"{name}: stale (generation {finding.index_generation} < {finding.generation}); it catches up on next use{dropped}"


def gc_summary(report: GcReport, grace: str, dry_run: bool) -> str:
    verb = "would remove" if dry_run else "removed"
    return (
        f"{verb} {len(report.removed)} unreferenced blobs ({report.removed_bytes:,} bytes) and {report.temp_files} temp files; "
        f"kept {report.referenced} referenced and {report.kept_young} younger than {grace}"
    )


def gc_json(report: GcReport, dry_run: bool) -> dict[str, Any]:
    return {"removed": report.removed, "removed_bytes": report.removed_bytes, "temp_files": report.temp_files,
            "kept_young": report.kept_young, "referenced": report.referenced, "dry_run": dry_run}  # fmt: skip

"""Registry maintenance: the database schema (db), the faiss indexes (index), the blob location (blobs), verify and gc."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.errors import fail, opened
from cli.options import BlobsOption, JsonOption, RegistryOption
from hub import USER_ERRORS, Hub

app = typer.Typer()
index_app = typer.Typer(help="The faiss indexes (caches of the database).", no_args_is_help=True)
db_app = typer.Typer(help="The registry database schema.", no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(db_app, name="db")
blobs_app = typer.Typer(help="The registry's blobs (a directory or an S3-compatible bucket).", no_args_is_help=True)
app.add_typer(blobs_app, name="blobs")


@index_app.command("rebuild")
def index_rebuild(registry: RegistryOption = None, blobs: BlobsOption = None) -> None:
    """Rebuild every faiss index from the database."""
    with opened(registry, blobs) as hub:
        sizes = hub.rebuild_indexes()
        for name, size in sizes.items():
            render.console.print(f"{name}: {size} vectors")


@db_app.command("upgrade")
def db_upgrade(registry: RegistryOption = None, blobs: BlobsOption = None) -> None:
    """Create the registry's schema, or upgrade it to this deltahub's newest migration."""
    try:
        before, after = Hub.upgrade(registry, blobs)
    except USER_ERRORS as error:
        fail(str(error))
    render.console.print(f"registry schema: {before or 'empty'} -> {after}")


def _seconds(text: str) -> float:
    """'3600', '90s', '30m', '1h', '2d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    scale = units.get(text[-1:])
    try:
        value = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        fail(f"--grace {text!r} is not a duration; use seconds or e.g. 30m, 1h, 2d")
    if value < 0:
        fail("--grace must not be negative")
    return value


@app.command()
def gc(
    grace: Annotated[str, typer.Option("--grace", help="Keep unreferenced blobs younger than this (a push in flight); e.g. 3600, 30m, 1h.")] = "1h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove blobs that no module references (older than the grace period) and dead temp files."""
    grace_s = _seconds(grace)
    with opened(registry, blobs) as hub:
        report = hub.gc(grace_s, dry_run=dry_run)
        if as_json:
            render.print_json(render.gc_json(report, dry_run))
        else:
            render.console.print(render.gc_summary(report, grace, dry_run))


@blobs_app.command("copy")
def blobs_copy(
    to: Annotated[str, typer.Option("--to", help="Where the blobs go: s3://BUCKET/PREFIX or a directory.")],
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Copy every module's blob to a bucket (or directory), verify each there, then switch the registry over to it."""
    with opened(registry, blobs) as hub:
        report = hub.copy_blobs(to)
    render.console.print(f"{report.copied} blobs ({report.copied_bytes:,} bytes) copied and verified; the registry's blobs are now at {report.target}")


@app.command()
def verify(
    repair: Annotated[bool, typer.Option("--repair", help="Rebuild the indexes; broken modules are reported, never deleted.")] = False,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-hash every blob, check every row and index entry; exit code 0 only when the registry is healthy."""
    with opened(registry, blobs) as hub:
        report = hub.verify(repair=repair)
        if as_json:
            render.print_json(render.verify_json(report))
        else:
            for line in render.verify_lines(report):
                render.console.print(line, highlight=False, soft_wrap=True)
    if not report.healthy:
        raise typer.Exit(code=1)

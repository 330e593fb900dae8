"""Running the real `adapters` app in-process and snapshotting a registry to prove it unchanged."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from store.registry import Registry, resolve_location

runner = CliRunner()


def cli(*args: str):
    """`adapters ARGS...` exactly as given."""
    return runner.invoke(app, list(args))


def adapters(registry: Path | str, *args: str):
    return runner.invoke(
        app, [*args, "--registry", str(registry)] if args and args[0] not in ("index", "db", "token") else [*args[:2], "--registry", str(registry), *args[2:]]
    )


def snapshot(registry: Path) -> tuple:
    """Everything a failed command must leave as it was: rows, generation, blob files."""
    if not registry.exists():
        return ()
    opened = Registry(resolve_location(registry), create=False)
    try:
        modules = [(m.id, m.blob_digest, m.task, m.origin) for m in opened.catalog.list_modules()]
        return modules, opened.catalog.generation(), sorted(opened.blobs.digests())
    finally:
        opened.close()


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]

"""Running the real `adapters` app in-process and snapshotting a registry to prove it unchanged."""

from __future__ import annotations

import hashlib
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
    """Everything a failed command must leave as it was: rows, generation, blob files, and every file's bytes."""
    if not registry.exists():
        return ()
    files = file_bytes(registry)  # before opening it here, which may add SQLite's own side files
    opened = Registry(resolve_location(registry), create=False)
    try:
        modules = [(m.id, m.blob_digest, m.task, m.origin) for m in opened.catalog.list_modules()]
        return modules, opened.catalog.generation(), sorted(opened.blobs.digests()), files
    finally:
        opened.close()


def file_bytes(folder: Path) -> dict[str, str]:
    """The sha256 of every file under `folder` by relative path; SQLite's write-ahead log and its index (-wal, -shm) are
    the database's working state, whose bytes change with every reader, and are left out."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]

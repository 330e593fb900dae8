"""Engines for the catalog database and its schema version (Alembic revisions)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

import migrations
from store.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout, foreign keys) or PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"registry URL {url!r} is not a database URL; use a directory, sqlite:///FILE or postgresql+psycopg://…") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    # WAL lets readers run beside one writer; the busy timeout makes writers wait instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(Path(migrations.__file__).parent))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` (the only way a schema is made or changed)."""
    _refuse_newer(engine)
    command.upgrade(alembic_config(engine), revision)


def check_schema(engine: Engine, create: bool) -> None:
    """Create an empty registry's schema if asked; refuse any other revision than head."""
    try:
        current = current_revision(engine)
        empty = not inspect(engine).get_table_names()
    except OperationalError as error:
        raise StoreError(f"cannot open the registry database {engine.url.render_as_string(hide_password=True)}: {_reason(error)}") from None
    head = head_revision()
    if current is None and empty and create:
        upgrade(engine)
        return
    if current == head:
        return
    _refuse_newer(engine)
    raise StoreError(f"the registry schema is at revision {current or 'none'}, this deltahub needs {head}; run `adapters db upgrade`")


def _refuse_newer(engine: Engine) -> None:
    current = current_revision(engine)
    script = ScriptDirectory(str(Path(migrations.__file__).parent))
    if current is not None and current not in {revision.revision for revision in script.walk_revisions()}:
        raise StoreError(
            f"the registry schema is at revision {current}, newer than this deltahub knows (head {head_revision()}); "
            "upgrade deltahub to use this registry"
        )


def _reason(error: Exception) -> str:
    return str(getattr(error, "orig", error)).strip().splitlines()[0]

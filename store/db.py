"""Engines for the catalog database and its schema version (Alembic revisions)."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

import migrations
from store.errors import DatabaseBusy, NeedsUpgrade, StoreError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# An unreachable host fails after this many seconds instead of the OS's minutes.
CONNECT_TIMEOUT_S = 10
# Execution option that marks a write transaction (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "deltahub_write"
# SQLSTATEs of PostgreSQL conflicts that succeed when retried.
RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as error:
        # The URL itself is not echoed: it may carry a password.
        raise StoreError(
            f"the registry URL is not a valid database URL ({error}); use a directory, sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB"
        ) from None


def make_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout, foreign keys, real transactions) or PostgreSQL."""
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            # isolation_level=None: pysqlite stops managing transactions, the "begin" hook below does.
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query else {}
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as error:
        raise StoreError(
            f"cannot use registry URL {parsed.render_as_string(hide_password=True)}: {error}; use sqlite:///FILE or postgresql+psycopg://…"
        ) from None


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    # WAL lets readers run beside one writer; the busy timeout makes writers wait instead of failing.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _enter_wal(cursor)
    # NORMAL in WAL mode survives a killed process (only power loss may drop the newest commits,
    # never corrupt); a lost row then leaves an orphan blob for gc, never a row without its blob.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _enter_wal(cursor) -> None:
    # Switching a new file to WAL needs its exclusive lock, and SQLite answers "locked" at once,
    # without the busy handler, when two connections make that switch together (as when several
    # processes open a new registry at one instant): so this waits out the busy timeout itself.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.05)


def _sqlite_begin(connection) -> None:
    # A read transaction is one snapshot (WAL). A write takes the write lock up front
    # (IMMEDIATE), waiting out the busy timeout, so it never fails on a lock upgrade.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except (OperationalError, DBAPIError) as error:
        raise unreachable(engine, error) from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` (the only way a schema is made or changed)."""
    _refuse_newer(engine)
    try:
        command.upgrade(alembic_config(engine), revision)
    except (OperationalError, DBAPIError) as error:
        raise StoreError(f"upgrading the registry database {display_url(engine)} failed: {_reason(error)}; nothing was changed") from None


def display_url(engine: Engine) -> str:
    """The engine's URL with the password masked."""
    return engine.url.render_as_string(hide_password=True)


def unreachable(engine: Engine, error: Exception) -> StoreError:
    """A one-line error for a database that cannot be opened: where, and why (never the password)."""
    url = engine.url
    where = f"{url.host or 'localhost'}:{url.port or 5432}" if url.get_backend_name() != "sqlite" else str(url.database)
    reason = _reason(error)
    password = url.password
    if password:
        reason = reason.replace(str(password), "***")
    hint = "check the URL, that the server is running and reachable, and the credentials"
    if "password authentication failed" in reason or "authentication" in reason.lower():
        hint = "check the user name and password in the registry URL"
    elif url.get_backend_name() == "sqlite":
        hint = "check the registry path and its permissions"
    return StoreError(f"cannot open the registry database {display_url(engine)} at {where}: {reason}; {hint}")


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn a lost or unreachable database into one line; a transient conflict into DatabaseBusy (retryable)."""
    try:
        yield
    except IntegrityError:
        raise
    except (OperationalError, DBAPIError) as error:
        code = getattr(getattr(error, "orig", None), "sqlstate", None)
        text = str(getattr(error, "orig", error))
        if code in RETRY_SQLSTATES or "database is locked" in text or "deadlock" in text:
            raise DatabaseBusy(f"the registry database is busy ({_reason(error)}); try again") from error
        if error.connection_invalidated or isinstance(error, OperationalError):
            raise unreachable(engine, error) from None
        raise


def check_schema(engine: Engine, create: bool) -> None:
    """Create an empty registry's schema if asked; refuse any other revision than head."""
    current = current_revision(engine)
    try:
        empty = not inspect(engine).get_table_names()
    except (OperationalError, DBAPIError) as error:
        raise unreachable(engine, error) from None
    head = head_revision()
    if current is None and empty and create:
        try:
            upgrade(engine)
        except StoreError:
            # Several processes opening a new registry at once: one creates the schema, the others find it.
            if current_revision(engine) != head:
                raise
        return
    if current == head:
        return
    _refuse_newer(engine)
    raise NeedsUpgrade(f"the registry schema is at revision {current or 'none'}, this deltahub needs {head}; upgrade the registry's database")


def _refuse_newer(engine: Engine) -> None:
    current = current_revision(engine)
    script = ScriptDirectory(str(Path(migrations.__file__).parent))
    if current is not None and current not in {revision.revision for revision in script.walk_revisions()}:
        raise StoreError(
            f"the registry schema is at revision {current}, newer than this deltahub knows (head {head_revision()}); upgrade deltahub to use this registry"
        )


def _reason(error: Exception) -> str:
    lines = str(getattr(error, "orig", error) or error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__

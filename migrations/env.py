"""Alembic environment: runs on the engine handed over by store.db, or on sqlalchemy.url."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from store.db import WRITE_OPTION
from store.models import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))

# One write transaction from the start (SQLite: BEGIN IMMEDIATE): two processes creating a new registry
# at once take turns, and the second finds the schema made. A deferred BEGIN would read first, and its
# upgrade to a write lock fails at once ("database is locked") when the other has written meanwhile.
with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
    # Batch mode lets ALTERs run on SQLite, which rebuilds the table instead.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()

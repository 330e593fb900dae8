"""modules: a task of their own (modules.task_id) and an optional dataset (modules.dataset_id nullable)

A module pushed without a dataset (described by its model card or --task/--category) has a task
but no dataset row: modules link to their task directly, and the dataset link may be NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The modules table as 0001-0004 leave it on SQLite, and what 0005 makes of it: (before, after) pieces of its CREATE TABLE text.
SQLITE_EDITS = (
    ("dataset_id INTEGER NOT NULL,", "dataset_id INTEGER,"),
    (", task_id INTEGER,", ", task_id INTEGER NOT NULL,"),
    (
        "CONSTRAINT uq_modules_base_model_id UNIQUE",
        "CONSTRAINT fk_modules_task_id_tasks FOREIGN KEY(task_id) REFERENCES tasks (id), \n\tCONSTRAINT uq_modules_base_model_id UNIQUE",
    ),
)
WITHOUT_DATASET = sa.text("dataset_id IS NULL")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Nullable until filled: neither backend adds a NOT NULL column to filled rows without a default.
    op.add_column("modules", sa.Column("task_id", sa.Integer(), nullable=True))
    op.execute("UPDATE modules SET task_id = (SELECT datasets.task_id FROM datasets WHERE datasets.id = modules.dataset_id)")
    if sqlite:
        _edit_sqlite_modules(forward=True)
    else:
        op.alter_column("modules", "task_id", existing_type=sa.Integer(), nullable=False)
        op.create_foreign_key(op.f("fk_modules_task_id_tasks"), "modules", "tasks", ["task_id"], ["id"])
        op.alter_column("modules", "dataset_id", existing_type=sa.Integer(), nullable=True)
    op.create_index(op.f("ix_modules_task_id"), "modules", ["task_id"], unique=False)
    op.create_index(
        "uq_modules_without_dataset", "modules", ["base_model_id", "blob_digest"], unique=True, sqlite_where=WITHOUT_DATASET, postgresql_where=WITHOUT_DATASET
    )


def downgrade() -> None:
    without = op.get_bind().execute(sa.text("SELECT count(*) FROM modules WHERE dataset_id IS NULL")).scalar_one()
    if without:
        raise RuntimeError(f"{without} modules have no dataset, which the 0004 schema cannot hold; remove them (adapters rm) before downgrading")
    op.drop_index("uq_modules_without_dataset", table_name="modules")
    op.drop_index(op.f("ix_modules_task_id"), table_name="modules")
    if op.get_bind().dialect.name == "sqlite":
        _edit_sqlite_modules(forward=False)
    else:
        op.alter_column("modules", "dataset_id", existing_type=sa.Integer(), nullable=False)
        op.drop_constraint(op.f("fk_modules_task_id_tasks"), "modules", type_="foreignkey")
    op.drop_column("modules", "task_id")


def _edit_sqlite_modules(forward: bool) -> None:
    """Change the modules table's constraints in place, by SQLite's documented procedure for that (lang_altertable.html, section 7).

    Alembic's batch mode would copy the table and drop the old one, and with foreign keys on (they
    are, and cannot be turned off inside the migration's transaction) dropping it cascades: every
    tag and provenance row would go, and a removed module's id could be handed out again. Removing a
    NOT NULL or adding a foreign key that every row satisfies (task_id was just filled from the
    datasets' task_id) leaves the stored rows valid as they are.
    """
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'modules'")).scalar_one()
    for before, after in SQLITE_EDITS if forward else [(after, before) for before, after in reversed(SQLITE_EDITS)]:
        if sql.count(before) != 1:
            raise RuntimeError(
                f"the modules table of this registry is not the one migration 0005 expects (no single {before!r}); upgrade it with deltahub's own migrations"
            )
        sql = sql.replace(before, after)
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'modules'"), {"sql": sql})
    # A new schema version makes every connection re-read the schema.
    bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema=OFF")

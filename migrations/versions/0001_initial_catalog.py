"""initial catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:24:52.852388
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "base_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("revision", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("arch_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_base_models")),
        sa.UniqueConstraint("name", "revision", "arch_hash", name=op.f("uq_base_models_name")),
    )
    registry_state = op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_state")),
    )
    # The single counter row that every catalog write bumps.
    op.bulk_insert(registry_state, [{"id": 1, "generation": 0}])
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("category", sa.String(length=256), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_tasks_name")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_category"), ["category"], unique=False)

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_datasets_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_datasets_fingerprint")),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_datasets_task_id"), ["task_id"], unique=False)

    op.create_table(
        "modules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_model_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("tensor_schema", sa.JSON(), nullable=False),
        sa.Column("schema_hash", sa.String(length=64), nullable=False),
        sa.Column("num_params", sa.BigInteger(), nullable=False),
        sa.Column("blob_digest", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("param_embedding", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["base_model_id"], ["base_models.id"], name=op.f("fk_modules_base_model_id_base_models")),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_modules_dataset_id_datasets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_modules")),
        sa.UniqueConstraint("base_model_id", "dataset_id", "blob_digest", name=op.f("uq_modules_base_model_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("modules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_modules_base_model_id"), ["base_model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_modules_blob_digest"), ["blob_digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_modules_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_modules_method"), ["method"], unique=False)
        batch_op.create_index(batch_op.f("ix_modules_schema_hash"), ["schema_hash"], unique=False)

    op.create_table(
        "ensembles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("module_id", sa.Integer(), nullable=False),
        sa.Column("target_dataset_id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("top_k", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["module_id"], ["modules.id"], name=op.f("fk_ensembles_module_id_modules"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_dataset_id"], ["datasets.id"], name=op.f("fk_ensembles_target_dataset_id_datasets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ensembles")),
        sa.UniqueConstraint("module_id", name=op.f("uq_ensembles_module_id")),
    )
    with op.batch_alter_table("ensembles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ensembles_target_dataset_id"), ["target_dataset_id"], unique=False)

    op.create_table(
        "module_tags",
        sa.Column("module_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["module_id"], ["modules.id"], name=op.f("fk_module_tags_module_id_modules"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("module_id", "tag", name=op.f("pk_module_tags")),
    )
    op.create_table(
        "ensemble_sources",
        sa.Column("ensemble_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source_module_id", sa.Integer(), nullable=True),
        sa.Column("source_digest", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["ensemble_id"], ["ensembles.id"], name=op.f("fk_ensemble_sources_ensemble_id_ensembles"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_module_id"], ["modules.id"], name=op.f("fk_ensemble_sources_source_module_id_modules"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("ensemble_id", "position", name=op.f("pk_ensemble_sources")),
    )
    with op.batch_alter_table("ensemble_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ensemble_sources_source_module_id"), ["source_module_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ensemble_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ensemble_sources_source_module_id"))

    op.drop_table("ensemble_sources")
    op.drop_table("module_tags")
    with op.batch_alter_table("ensembles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ensembles_target_dataset_id"))

    op.drop_table("ensembles")
    with op.batch_alter_table("modules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_modules_schema_hash"))
        batch_op.drop_index(batch_op.f("ix_modules_method"))
        batch_op.drop_index(batch_op.f("ix_modules_dataset_id"))
        batch_op.drop_index(batch_op.f("ix_modules_blob_digest"))
        batch_op.drop_index(batch_op.f("ix_modules_base_model_id"))

    op.drop_table("modules")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_task_id"))

    op.drop_table("datasets")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_category"))

    op.drop_table("tasks")
    op.drop_table("registry_state")
    op.drop_table("base_models")

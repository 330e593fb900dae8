"""shared registry: registry id (matched by the blob directory) and the pushing host of each module

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 02:10:00
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registry_id", sa.String(length=32), server_default="", nullable=False))
    # An existing registry gets its id now; its blob directory adopts it on next open.
    state = sa.table("registry_state", sa.column("id", sa.Integer), sa.column("registry_id", sa.String))
    op.execute(state.update().where(state.c.id == 1).values(registry_id=uuid.uuid4().hex))
    with op.batch_alter_table("modules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_host", sa.String(length=255), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("modules", schema=None) as batch_op:
        batch_op.drop_column("created_host")
    with op.batch_alter_table("registry_state", schema=None) as batch_op:
        batch_op.drop_column("registry_id")

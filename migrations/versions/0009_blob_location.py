"""registry_state.blob_location: where the registry's blobs live once `blobs copy` moved them (empty: given by the opener)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blob_location", sa.String(length=1024), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("registry_state", schema=None) as batch_op:
        batch_op.drop_column("blob_location")

"""ensembles: what a choosing strategy (auto) kept and why, and the layers composed

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# Plain ALTER TABLE ... ADD COLUMN on both backends: nullable or defaulted columns need no table copy.
def upgrade() -> None:
    op.add_column("ensembles", sa.Column("chosen", sa.String(length=64), nullable=True))
    op.add_column("ensembles", sa.Column("rationale", sa.Text(), server_default="", nullable=False))
    op.add_column("ensembles", sa.Column("layers", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ensembles", schema=None) as batch_op:
        batch_op.drop_column("layers")
        batch_op.drop_column("rationale")
        batch_op.drop_column("chosen")

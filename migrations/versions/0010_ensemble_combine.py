"""ensembles: the composition operator of a composed init (ensembles.combine: linear, svd, ties:0.2, …)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# Plain ALTER TABLE ... ADD COLUMN on both backends: a defaulted column needs no table copy;
# every ensemble made before it was composed linearly, which is what the default records.
def upgrade() -> None:
    op.add_column("ensembles", sa.Column("combine", sa.String(length=64), server_default="linear", nullable=False))


def downgrade() -> None:
    # Not batch mode: on SQLite it copies and drops the ensembles table, and the drop would cascade to ensemble_sources (see 0006).
    op.execute("ALTER TABLE ensembles DROP COLUMN combine")

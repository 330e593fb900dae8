"""modules: the model card a module was pushed with (modules.card, its README.md), so that export keeps what it said

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


# As 0006: a defaulted column needs no table copy; existing modules get "" (no card was kept).
def upgrade() -> None:
    op.add_column("modules", sa.Column("card", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    # Not batch mode: on SQLite it copies and drops the modules table, and the drop would cascade to tags and provenance (see 0005).
    op.execute("ALTER TABLE modules DROP COLUMN card")

"""modules: where a module came from (modules.source, e.g. hf://ORG/NAME@SHA for a repo of the Hugging Face cache)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# Plain ALTER TABLE ... ADD COLUMN on both backends: a defaulted column needs no table copy; existing modules get "" (no known source).
def upgrade() -> None:
    op.add_column("modules", sa.Column("source", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    # Not batch mode: on SQLite it copies and drops the modules table, and the drop would cascade to tags and provenance (see 0005).
    op.execute("ALTER TABLE modules DROP COLUMN source")

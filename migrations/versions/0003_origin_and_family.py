"""name the two meanings of `kind`: a module's origin (trained|ensemble), a base model's family

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# Plain ALTER TABLE ... RENAME (SQLite 3.25+, PostgreSQL), not batch mode: the column is renamed in
# place instead of the table being copied, so rows, ids (AUTOINCREMENT) and foreign keys are untouched.
def upgrade() -> None:
    op.alter_column("modules", "kind", new_column_name="origin")
    op.alter_column("base_models", "kind", new_column_name="family")


def downgrade() -> None:
    op.alter_column("base_models", "family", new_column_name="kind")
    op.alter_column("modules", "origin", new_column_name="kind")

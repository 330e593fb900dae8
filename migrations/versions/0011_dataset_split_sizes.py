"""datasets: examples per split (datasets.split_sizes, JSON {"train": n, "dev": n, "test": n})

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# A nullable column needs no table copy on either backend; datasets registered before it have NULL (the
# page then shows only their total), since their examples are not kept to count again.
def upgrade() -> None:
    op.add_column("datasets", sa.Column("split_sizes", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite a table copy would drop and recreate datasets, which modules reference (see 0006).
    op.execute("ALTER TABLE datasets DROP COLUMN split_sizes")

"""Schema version 4: files.kind_mismatch (a file whose kind contradicts what its source claims).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "kind_mismatch" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("files")}:
        op.add_column("files", sa.Column("kind_mismatch", sa.Text()))


def downgrade() -> None:
    op.drop_column("files", "kind_mismatch")

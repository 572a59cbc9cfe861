"""Schema version 2: files.identify_version (a newer classifier re-identifies the file).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if "identify_version" not in _columns("files"):
        op.add_column("files", sa.Column("identify_version", sa.Integer()))


def downgrade() -> None:
    op.drop_column("files", "identify_version")

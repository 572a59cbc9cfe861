"""Schema version 5: versions.extra dropped where it is still there.

Revision ID: 0005
Revises: 0004
b3889c2 moved the per-file details into file_sources.extra and stopped using versions.extra without bumping
the schema version, and the hand-rolled upgrades never dropped it: every catalogue begun at schema 1 (or
early 2) still has the column, whatever its marker says. From here on all catalogues have one shape.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "extra" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("versions")}:
        # Native DROP COLUMN (SQLite 3.35+, PostgreSQL): no table copy, so no cascade can fire.
        op.drop_column("versions", "extra")


def downgrade() -> None:
    op.add_column("versions", sa.Column("extra", sa.JSON()))

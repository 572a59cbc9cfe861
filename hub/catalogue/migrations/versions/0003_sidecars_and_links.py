"""Schema version 3: the sidecars table (other tools' files beside a model) and the links table (links sdhub made).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "links" not in tables:  # the hand-rolled step made these with create_all; a stamped v3 may have them
        op.create_table(
            "links",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("path", sa.String(4096), nullable=False),
            sa.Column("file_id", sa.Integer()),
            sa.Column("target", sa.String(4096), nullable=False),
            sa.Column("root", sa.String(4096), nullable=False),
            sa.Column("layout", sa.String(32), nullable=False),
            sa.Column("mode", sa.String(16), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
            sa.Column("inode", sa.BigInteger(), nullable=False),
            sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("path"),
            sa.ForeignKeyConstraint(["file_id"], ["files.id"], ondelete="SET NULL"),
        )
        op.create_index("ix_links_file_id", "links", ["file_id"])
        op.create_index("ix_links_root", "links", ["root"])
    if "sidecars" not in tables:
        op.create_table(
            "sidecars",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("file_id", sa.Integer(), nullable=False),
            sa.Column("path", sa.String(4096), nullable=False),
            sa.Column("format", sa.String(32), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
            sa.Column("data", sa.JSON()),
            sa.Column("problem", sa.Text()),
            sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("file_id", "path", name="uq_sidecars_file_path"),
            sa.ForeignKeyConstraint(["file_id"], ["files.id"], ondelete="CASCADE"),
        )
        op.create_index("ix_sidecars_file_id", "sidecars", ["file_id"])


def downgrade() -> None:
    op.drop_table("sidecars")
    op.drop_table("links")

"""Schema version 1: the catalogue as the first release made it (files, models, versions, file_sources, search_terms).

Revision ID: 0001
Revises: -
Frozen from git history (5990dc1:hub/catalogue/models.py); never edit a released revision, add one after it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("autov1", sa.String(8)),
        sa.Column("autov3", sa.String(64)),
        sa.Column("crc32", sa.String(8)),
        sa.Column("blake3", sa.String(64)),
        sa.Column("hashed_at", _when()),
        sa.Column("hash_error", sa.Text()),
        sa.Column("family", sa.String(64)),
        sa.Column("kind", sa.String(64)),
        sa.Column("variant", sa.String(64)),
        sa.Column("precision", sa.String(16)),
        sa.Column("identification", sa.JSON()),
        sa.Column("identify_error", sa.Text()),
        sa.Column("family_mismatch", sa.Text()),
        sa.Column("added_at", _when(), nullable=False),
        sa.Column("verified_at", _when()),
        sa.Column("verify_status", sa.String(32)),
        sa.Column("verify_detail", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path"),
    )
    for column in ("autov1", "autov3", "blake3", "crc32", "family", "kind", "name", "sha256"):
        op.create_index(f"ix_files_{column}", "files", [column])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_model_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(512)),
        sa.Column("type", sa.String(64)),
        sa.Column("creator", sa.String(255)),
        sa.Column("description", sa.Text()),
        sa.Column("page_url", sa.String(2048)),
        sa.Column("nsfw", sa.Boolean()),
        sa.Column("license", sa.JSON()),
        sa.Column("tags", sa.JSON()),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_model_id", name="uq_models_source_id"),
    )
    op.create_table(
        "schema_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "search_terms",
        sa.Column("term", sa.String(128), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("term", "file_id"),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_search_terms_file", "search_terms", ["file_id"])
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("source_version_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(512)),
        sa.Column("base_model", sa.String(128)),
        sa.Column("trained_words", sa.JSON()),
        sa.Column("extra", sa.JSON()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "source_version_id", name="uq_versions_model_version"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_versions_model_id", "versions", ["model_id"])
    op.create_table(
        "file_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("source_file_id", sa.String(512)),
        sa.Column("original_filename", sa.String(1024)),
        sa.Column("download_url", sa.String(4096)),
        sa.Column("published_hashes", sa.JSON()),
        sa.Column("claimed_family", sa.String(64)),
        sa.Column("extra", sa.JSON()),
        sa.Column("linked_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id", "version_id", name="uq_file_sources_file_version"),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_file_sources_file_id", "file_sources", ["file_id"])
    op.create_index("ix_file_sources_version_id", "file_sources", ["version_id"])


def downgrade() -> None:
    for table in ("file_sources", "versions", "search_terms", "schema_meta", "models", "files"):
        op.drop_table(table)

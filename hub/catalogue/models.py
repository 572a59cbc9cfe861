"""The catalogue's tables, as SQLAlchemy 2.x typed ORM models.

A *file* is bytes on disk (unique path; fingerprints; what identification found). A *model* and
its *versions* are what a source publishes; *file_sources* links a file to the version(s) it is
known as, so one file can be known to several sources and one version can have several files.
*search_terms* is a portable inverted index (term -> file) that keeps text search fast at 100k
files on SQLite and PostgreSQL alike, with no dialect-specific SQL.

Hex digests are stored lowercase. Changing anything here needs an Alembic revision in
``hub/catalogue/migrations/versions`` (``python -m hub.catalogue.migrate revision "what changed"``),
``SCHEMA_VERSION`` set to its number, and ``registry.db.schema`` regenerated
(``python -m hub.catalogue.schema > registry.db.schema``); tests/test_schema.py checks all three.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The head revision's number (hub/catalogue/migrations/versions/NNNN_*.py), also schema_meta's marker.
SCHEMA_VERSION = 5


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class SchemaMeta(Base):
    """Key/value facts about the database itself; ``schema_version`` lets later releases migrate."""

    __tablename__ = "schema_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class File(Base):
    """A model file (or diffusers folder) on disk."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    name: Mapped[str] = mapped_column(String(512), index=True)
    format: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    device: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)

    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    autov1: Mapped[str | None] = mapped_column(String(8), index=True)
    autov3: Mapped[str | None] = mapped_column(String(64), index=True)
    crc32: Mapped[str | None] = mapped_column(String(8), index=True)
    blake3: Mapped[str | None] = mapped_column(String(64), index=True)
    hashed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hash_error: Mapped[str | None] = mapped_column(Text)

    family: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str | None] = mapped_column(String(64), index=True)
    variant: Mapped[str | None] = mapped_column(String(64))
    precision: Mapped[str | None] = mapped_column(String(16))
    identification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # hub.identify.IDENTIFY_VERSION that produced it: a newer classifier re-identifies on the next scan.
    identify_version: Mapped[int | None] = mapped_column(Integer)
    identify_error: Mapped[str | None] = mapped_column(Text)
    family_mismatch: Mapped[str | None] = mapped_column(Text)
    kind_mismatch: Mapped[str | None] = mapped_column(Text)

    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verify_status: Mapped[str | None] = mapped_column(String(32))
    verify_detail: Mapped[str | None] = mapped_column(Text)

    sources: Mapped[list[FileSource]] = relationship(
        back_populates="file", cascade="all, delete-orphan", passive_deletes=True
    )
    sidecars: Mapped[list[Sidecar]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="Sidecar.path"
    )


class SourceModel(Base):
    """A model page at a source (Civitai model, LiblibAI model, Hugging Face repo)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("source", "source_model_id", name="uq_models_source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    source_model_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(512))
    type: Mapped[str | None] = mapped_column(String(64))
    creator: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    page_url: Mapped[str | None] = mapped_column(String(2048))
    nsfw: Mapped[bool | None] = mapped_column(Boolean)
    license: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    versions: Mapped[list[SourceVersion]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )


class SourceVersion(Base):
    """One published version of a source model (Civitai modelVersion, LiblibAI version, HF revision)."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "source_version_id", name="uq_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    source_version_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(512))
    base_model: Mapped[str | None] = mapped_column(String(128))
    trained_words: Mapped[list[str] | None] = mapped_column(JSON)

    model: Mapped[SourceModel] = relationship(back_populates="versions")
    files: Mapped[list[FileSource]] = relationship(back_populates="version", passive_deletes=True)


class FileSource(Base):
    """A file as a source publishes it: where it came from and the hashes the source claims."""

    __tablename__ = "file_sources"
    __table_args__ = (UniqueConstraint("file_id", "version_id", name="uq_file_sources_file_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    source_file_id: Mapped[str | None] = mapped_column(String(512))
    original_filename: Mapped[str | None] = mapped_column(String(1024))
    download_url: Mapped[str | None] = mapped_column(String(4096))
    published_hashes: Mapped[dict[str, str] | None] = mapped_column(JSON)
    claimed_family: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    file: Mapped[File] = relationship(back_populates="sources")
    version: Mapped[SourceVersion] = relationship(back_populates="files")


class SearchTerm(Base):
    """Inverted index for text search over names, tags and trigger words."""

    __tablename__ = "search_terms"
    __table_args__ = (Index("ix_search_terms_file", "file_id"),)

    term: Mapped[str] = mapped_column(String(128), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)


class Sidecar(Base):
    """A file another tool keeps beside a model (``<stem>.civitai.info``, ``.cm-info.json``, A1111's ``<stem>.json``,
    Lora-Manager's ``.metadata.json``, ``.swarm.json``, a preview image), read on scan.

    ``size``/``mtime_ns`` are its stat key: an unchanged sidecar is never parsed twice. ``data`` holds the
    fields sdhub took from it (ids, names, trained words, base model, notes…); ``problem`` says why it was not
    trusted (its hashes contradict the file), in which case ``data`` is kept only as evidence.
    """

    __tablename__ = "sidecars"
    __table_args__ = (UniqueConstraint("file_id", "path", name="uq_sidecars_file_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    format: Mapped[str] = mapped_column(String(32))  # civitai_info | cm_info | a1111 | lora_manager | swarm | preview
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    problem: Mapped[str | None] = mapped_column(Text)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Link(Base):
    """A link (symlink, hardlink or copy) that ``sdhub link`` made in a UI's folder: only these are pruned."""

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), index=True)
    target: Mapped[str] = mapped_column(String(4096))
    root: Mapped[str] = mapped_column(String(4096), index=True)
    layout: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))  # symlink | hardlink | copy
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    made_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

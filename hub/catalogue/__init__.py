"""The catalogue: what sdhub knows about model files, in SQLite or any SQLAlchemy database.

``FileRecord`` and ``SourceInfo`` are plain dataclasses that sources and plugins use without a
database; ``Catalogue`` (and SQLAlchemy with it) is imported only when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import FileRecord, SourceInfo

if TYPE_CHECKING:  # pragma: no cover
    from .store import Catalogue

__all__ = ["Catalogue", "FileRecord", "SourceInfo", "SCHEMA_VERSION", "database_status", "upgrade_database"]


def __getattr__(name: str) -> Any:
    if name == "Catalogue":
        from .store import Catalogue

        return Catalogue
    if name in ("database_status", "upgrade_database"):  # schema revision / in-place upgrade (sdhub db ...)
        from . import migrate

        return getattr(migrate, name)
    if name == "SCHEMA_VERSION":
        from .models import SCHEMA_VERSION

        return SCHEMA_VERSION
    raise AttributeError(f"module 'hub.catalogue' has no attribute {name!r}")

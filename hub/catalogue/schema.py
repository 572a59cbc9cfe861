"""The catalogue's DDL as SQLite sees it, for ``registry.db.schema``.

Regenerate the file after changing the models::

    python -m hub.catalogue.schema > registry.db.schema
"""

from __future__ import annotations

from sqlalchemy import create_mock_engine
from sqlalchemy.schema import CreateIndex, CreateTable

from .models import SCHEMA_VERSION, Base


def sqlite_ddl() -> str:
    """Every CREATE TABLE / CREATE INDEX statement, in dependency order, as SQLite would run them."""
    engine = create_mock_engine("sqlite://", executor=lambda *a, **k: None)
    dialect = engine.dialect
    parts = [f"-- sdhub catalogue schema, version {SCHEMA_VERSION}.",
             "-- Generated from hub/catalogue/models.py: python -m hub.catalogue.schema > registry.db.schema", ""]
    for table in Base.metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        parts.append("")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
        if table.indexes:
            parts.append("")
    text = "\n".join(parts).rstrip() + "\n"
    # SQLAlchemy ends column lines with ", " plus newline; strip trailing blanks so the file diffs cleanly.
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


if __name__ == "__main__":
    print(sqlite_ddl(), end="")

"""The catalogue's DDL as SQLite has it after every migration, for ``registry.db.schema``.

Made by running the Alembic revisions on an empty SQLite database and dumping what SQLite stored, so the
file is exactly what the head revision produces (columns a revision added sit where SQLite put them).
Regenerate it after adding a revision::

    python -m hub.catalogue.schema > registry.db.schema
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path


def sqlite_ddl() -> str:
    """Every CREATE TABLE / CREATE INDEX of a catalogue at head, then the two version markers, runnable by sqlite3."""
    from sqlalchemy import create_engine

    from .migrate import head_revision, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "head.db"
        engine = create_engine(f"sqlite:///{db}")
        try:
            upgrade(engine, str(engine.url))
        finally:
            engine.dispose()
        con = sqlite3.connect(db)
        try:
            tables = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                                 "ORDER BY rowid").fetchall()
            indexes = con.execute("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                                  "ORDER BY name").fetchall()
        finally:
            con.close()
    head = head_revision()
    parts = [f"-- sdhub catalogue schema, revision {head} (schema version {int(head)}).",
             "-- Generated from the migrations in hub/catalogue/migrations: python -m hub.catalogue.schema > registry.db.schema",
             ""]
    for name, sql in tables:
        parts += [sql.strip() + ";", ""]
        own = [isql.strip() + ";" for tbl, isql in indexes if tbl == name]
        if own:
            parts += own + [""]
    parts += ["-- Where a catalogue made from this file stands (sdhub upgrades it from here on open).",
              f"INSERT INTO alembic_version (version_num) VALUES ('{head}');",
              f"INSERT INTO schema_meta (\"key\", value) VALUES ('schema_version', '{int(head)}');"]
    return "\n".join(line.rstrip() for line in "\n".join(parts).splitlines()) + "\n"


if __name__ == "__main__":
    print(sqlite_ddl(), end="")

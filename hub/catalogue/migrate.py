"""Catalogue schema upgrades: Alembic revisions run in place, on open or by ``sdhub db upgrade``.

A catalogue made before Alembic has no ``alembic_version`` table but a ``schema_meta.schema_version``
marker (1-4); it is stamped at the matching revision and upgraded from there, data kept. Upgrades run
under a lock, so processes (or machines) opening an old catalogue at once migrate it exactly once:
PostgreSQL takes a transaction-scoped advisory lock, SQLite a ``BEGIN IMMEDIATE`` write lock. On both
the whole upgrade is one transaction: a failed step leaves the catalogue as it was.

Opening a catalogue that is already at head costs one query: the head is read from the revision
files' names, and Alembic is imported only when something has to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import CatalogueError, SchemaTooNewError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock key: any fixed 64-bit number that no other application on the server uses.
PG_LOCK_KEY = 0x5D4B_CA7A_1060_0001
# How long a second process waits for another one's upgrade on SQLite (ms); PostgreSQL waits as long as it takes.
SQLITE_UPGRADE_WAIT_MS = 600_000
# Every table the catalogue has ever had: a database with none of them is empty (or someone dropped them).
SDHUB_TABLES = {"files", "models", "versions", "file_sources", "search_terms", "schema_meta", "sidecars", "links"}
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


def revisions() -> list[str]:
    """Revision ids in order, from the file names (``0004_kind_mismatch.py`` -> ``"0004"``)."""
    return sorted(m.group(1) for p in VERSIONS_DIR.iterdir() if (m := _REVISION_FILE.match(p.name)))


def head_revision() -> str:
    return revisions()[-1]


@dataclass
class DbStatus:
    """Where a catalogue stands: ``current`` is None for an empty database; ``legacy_version`` is set for a
    catalogue made before Alembic (no ``alembic_version`` yet)."""

    url: str
    current: str | None
    head: str
    legacy_version: int | None = None
    pending: list[str] = field(default_factory=list)
    upgraded_from: str | None = None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "up_to_date": self.up_to_date}


def display_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


def _read_state(con: Connection) -> tuple[set[str], str | None, int | None]:
    """(tables, alembic revision, legacy schema_version marker) as the database has them now."""
    tables = set(inspect(con).get_table_names())
    current = None
    if VERSION_TABLE in tables:
        current = con.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    legacy = None
    if "schema_meta" in tables:
        value = con.execute(text("SELECT value FROM schema_meta WHERE \"key\" = 'schema_version'")).scalar()
        try:
            legacy = int(value) if value is not None else 0
        except ValueError:
            legacy = 0
    return tables, current, legacy


def _status(url: str, tables: set[str], current: str | None, legacy: int | None) -> DbStatus:
    known = revisions()
    head = known[-1]
    if legacy and legacy > int(head):  # a newer release writes this marker too, next to its alembic_version
        raise SchemaTooNewError(
            f"the catalogue at {display_url(url)} has schema version {legacy}, newer than this sdhub "
            f"understands ({int(head)}); upgrade sdhub (pip install -U sdhub)"
        )
    if not tables & SDHUB_TABLES:
        effective = None  # empty (an alembic_version left behind by dropped tables counts as empty too)
    elif current is None:
        effective = f"{legacy:04d}" if legacy else known[0]
    else:
        effective = current
        if current not in known:
            raise SchemaTooNewError(
                f"the catalogue at {display_url(url)} is at schema revision {current}, newer than this sdhub "
                f"understands ({head}); upgrade sdhub (pip install -U sdhub)"
            )
    if tables and not tables & (SDHUB_TABLES | {VERSION_TABLE}):
        raise CatalogueError(f"the database at {display_url(url)} has other tables and is not an sdhub catalogue")
    pending = known if effective is None else known[known.index(effective) + 1:]
    return DbStatus(url=display_url(url), current=effective,
                    head=head, legacy_version=legacy if current is None and tables & SDHUB_TABLES else None,
                    pending=pending)


def status(engine: Engine, url: str) -> DbStatus:
    """Read where the catalogue stands; changes nothing."""
    with engine.connect() as con:
        return _status(url, *_read_state(con))


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the catalogue's migration lock; committed on success."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as con:
            raw = con.connection.driver_connection
            old_level = raw.isolation_level  # type: ignore[union-attr]
            raw.isolation_level = None  # type: ignore[union-attr]  # we issue BEGIN/COMMIT ourselves
            old_wait = con.exec_driver_sql("PRAGMA busy_timeout").scalar()  # the catalogue's lock wait, restored after
            try:
                # A table copy (Alembic's batch mode) drops the old table; with foreign keys on, SQLite
                # would cascade that to every referencing row. The pragma only takes effect outside a transaction.
                con.exec_driver_sql("PRAGMA foreign_keys=OFF")
                con.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_UPGRADE_WAIT_MS}")
                con.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield con
                    problems = con.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if problems:
                        raise CatalogueError(f"the upgrade would break {len(problems)} references; nothing was changed")
                    con.exec_driver_sql("COMMIT")
                except BaseException:
                    con.exec_driver_sql("ROLLBACK")
                    raise
            finally:
                con.exec_driver_sql("PRAGMA foreign_keys=ON")
                con.exec_driver_sql(f"PRAGMA busy_timeout={int(old_wait or 5000)}")
                raw.isolation_level = old_level  # type: ignore[union-attr]
                con.rollback()  # SQLAlchemy's own (empty) transaction
    else:
        with engine.begin() as con:
            if engine.dialect.name == "postgresql":
                con.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            yield con


def _alembic_config(con: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = con
    return config


def _write_marker(con: Connection, revision: str) -> None:
    """Keep ``schema_meta.schema_version`` in step, so releases before Alembic refuse a newer catalogue."""
    if con.execute(text("UPDATE schema_meta SET value = :v WHERE \"key\" = 'schema_version'"),
                   {"v": str(int(revision))}).rowcount == 0:
        con.execute(text("INSERT INTO schema_meta (\"key\", value) VALUES ('schema_version', :v)"),
                    {"v": str(int(revision))})


def upgrade(engine: Engine, url: str) -> DbStatus:
    """Bring the catalogue to head under the migration lock; a no-op (after one query) when it is there."""
    before = status(engine, url)
    if before.up_to_date:
        return before
    from alembic import command
    from alembic.util.exc import CommandError

    with _locked(engine) as con:
        tables, current, legacy = _read_state(con)  # again: another process may have upgraded meanwhile
        state = _status(url, tables, current, legacy)
        if not state.pending:
            return state
        config = _alembic_config(con)
        if not tables & SDHUB_TABLES and VERSION_TABLE in tables:
            con.execute(text(f"DELETE FROM {VERSION_TABLE}"))  # tables dropped by hand: start afresh
        elif current is None and state.current is not None:
            command.stamp(config, state.current)  # made before Alembic: its marker says where it stands
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            raise CatalogueError(f"cannot upgrade the catalogue at {display_url(url)}: {exc}") from exc
        _write_marker(con, state.head)
    after = status(engine, url)
    after.upgraded_from = state.current or "empty"
    return after


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url)
    except OSError as exc:
        raise CatalogueError(f"cannot create the folder for the catalogue {display_url(url)}: {exc}") from exc
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise CatalogueError(f"cannot use catalogue URL {display_url(url)!r}: {exc}") from exc


def database_status(url: str) -> DbStatus:
    """``sdhub db current``: the catalogue's revision and what an upgrade would run, without changing it."""
    engine = _engine(url)
    try:
        return status(engine, url)
    except SQLAlchemyError as exc:
        raise CatalogueError(f"cannot read the catalogue at {display_url(url)}: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()


def upgrade_database(url: str) -> DbStatus:
    """``sdhub db upgrade``: run the pending migrations now (opening the catalogue does the same)."""
    engine = _engine(url)
    try:
        return upgrade(engine, url)
    except SQLAlchemyError as exc:
        raise CatalogueError(f"cannot upgrade the catalogue at {display_url(url)}: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()


def new_revision(message: str) -> Path:
    """For developers: write ``versions/NNNN_message.py`` with what models.py has that head lacks (autogenerate)."""
    import tempfile

    from alembic import command

    number = f"{int(head_revision()) + 1:04d}"
    slug = re.sub(r"\W+", "_", message.lower()).strip("_")[:40] or "change"
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/head.db")
        try:
            upgrade(engine, str(engine.url))
            with engine.begin() as con:
                config = _alembic_config(con)
                config.set_main_option("file_template", f"{number}_{slug}")
                script = command.revision(config, message=message, autogenerate=True, rev_id=number)
        finally:
            engine.dispose()
    return Path(script.path)  # type: ignore[union-attr]


if __name__ == "__main__":  # pragma: no cover - a developer's tool
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m hub.catalogue.migrate revision "what changed"')
    print(new_revision(sys.argv[2]))

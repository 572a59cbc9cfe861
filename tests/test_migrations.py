"""Catalogue upgrades: catalogues made by earlier releases open with this code, upgraded in place, data kept.

The earlier releases' catalogues are frozen in tests/data/legacy_catalogues/ (tests/make_legacy_catalogues.py
says how: each release's models.py from git history). Every test runs on SQLite and, where
SDHUB_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from hub.catalogue import SCHEMA_VERSION, Catalogue, SourceInfo
from hub.catalogue import migrate
from hub.errors import CatalogueError, SchemaTooNewError

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_catalogues"
VERSIONS = (1, 2, 3, 4)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each kind."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'registry.db'}"


def load_legacy(url: str, version: int) -> None:
    """Make the database exactly what the release with schema ``version`` left behind."""
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    script = (LEGACY / f"v{version}.{dialect}.sql").read_text()
    engine = create_engine(url)
    try:
        with engine.begin() as con:
            for stmt in script.split(";\n"):
                body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
                if body:
                    con.exec_driver_sql(body)
    finally:
        engine.dispose()


def columns(url: str, table: str) -> list[str]:
    engine = create_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as con:
            return con.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_revisions_are_one_numbered_chain_ending_at_schema_version() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [migrate.head_revision()]  # one head: no branches
    chain = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert chain == migrate.revisions() == [f"{n:04d}" for n in range(1, SCHEMA_VERSION + 1)]


def test_head_schema_is_what_the_models_declare(empty_url: str) -> None:
    # A revision forgotten after changing models.py (or one that differs from it) shows up here.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from hub.catalogue.models import Base

    Catalogue(empty_url).close()
    engine = create_engine(empty_url)
    try:
        with engine.connect() as con:
            diff = compare_metadata(MigrationContext.configure(con), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


@pytest.mark.parametrize("version", VERSIONS)
def test_a_catalogue_from_an_earlier_release_is_upgraded_in_place(empty_url: str, version: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    load_legacy(empty_url, version)
    assert scalar(empty_url, "SELECT count(*) FROM schema_meta") == 1  # its marker; no alembic_version yet
    before = migrate.database_status(empty_url)
    assert (before.current, before.legacy_version, before.up_to_date) == (f"{version:04d}", version, False)

    from hub import Hub

    monkeypatch.setenv("SDHUB_DB_URL", empty_url)
    with Hub() as h:
        pixel = h.get("pixel_style.safetensors")
        dreamy = h.get("dreamy_v1.safetensors")
        # Every row the old release wrote is still there, with its values.
        assert (pixel.id, pixel.sha256, pixel.family, pixel.kind, pixel.precision) == (1, "a" * 64, "sdxl", "lora", "fp16")
        assert pixel.identification == {"family": "sdxl", "kind": "lora", "confidence": 0.97}
        assert pixel.added_at is not None and pixel.added_at.year == 2026
        [src] = pixel.sources
        assert (src.source, src.model_id, src.version_id, src.model_name, src.tags, src.trained_words) == (
            "civitai", "4201", "130072", "Pixel Art", ["retro", "pixel"], ["pixelart"])
        assert src.published_hashes == {"sha256": "a" * 64} and src.extra == {"format": "SafeTensor"}
        assert [r.name for r in h.list(text="retro")] == ["pixel_style.safetensors"]
        # Columns later versions added: empty where the release had no such column, kept where it had.
        assert h.catalogue.stat_rows()[pixel.path].identify_version == (3 if version >= 2 else None)
        assert dreamy.kind_mismatch == ("Civitai calls it a LoRA" if version >= 4 else None)
        if version >= 3:
            assert [s["path"] for s in pixel.sidecars] == ["/models/loras/pixel_style.civitai.info"]
            assert [link["path"] for link in h.catalogue.links()] == ["/ui/models/Lora/pixel_style.safetensors"]
        else:
            assert pixel.sidecars == [] and h.catalogue.links() == []
        # New rows get fresh ids (PostgreSQL's sequences kept in step) in the new tables and columns alike.
        h.attach_source(dreamy, SourceInfo(source="civitai", model_id="77", version_id="78", model_name="Dreamy"))
        h.catalogue.record_link({"path": "/ui/models/Stable-diffusion/dreamy_v1.safetensors", "file_id": dreamy.id,
                                 "target": dreamy.path, "root": "/ui", "layout": "a1111", "mode": "symlink",
                                 "size": 4096, "mtime_ns": 1, "inode": 2})
        assert [s.model_id for s in h.get("dreamy_v1.safetensors").sources] == ["77"]
        assert len(h.catalogue.links()) == (2 if version >= 3 else 1)
    after = migrate.database_status(empty_url)
    assert (after.current, after.up_to_date, after.legacy_version) == (migrate.head_revision(), True, None)
    assert scalar(empty_url, "SELECT value FROM schema_meta WHERE \"key\" = 'schema_version'") == str(SCHEMA_VERSION)
    assert "extra" not in columns(empty_url, "versions")  # unused since schema 2, kept by the old upgrades; 0005 drops it
    assert {"identify_version", "kind_mismatch"} <= set(columns(empty_url, "files"))


def test_db_current_and_db_upgrade_commands(empty_url: str, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    load_legacy(empty_url, 2)
    monkeypatch.setenv("SDHUB_DB_URL", empty_url)
    shown = run_cli("db", "current")
    assert shown.exit_code == 0, shown.output
    assert "revision 0002, made before migrations: schema version 2" in shown.stdout
    assert "3 migration(s) pending to head 0005: 0003, 0004, 0005" in shown.stdout
    assert "sdhub-ci" not in shown.output  # a PostgreSQL password is never printed
    assert migrate.database_status(empty_url).current == "0002"  # `db current` changed nothing
    done = run_cli("db", "upgrade", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert (data["upgraded_from"], data["current"], data["head"], data["up_to_date"]) == ("0002", "0005", "0005", True)
    again = run_cli("db", "upgrade")
    assert again.exit_code == 0 and "already at revision 0005; nothing to do" in again.stdout
    assert "up to date (head 0005)" in run_cli("db", "current").stdout


def test_a_newer_catalogue_is_refused_and_left_alone(empty_url: str, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    Catalogue(empty_url).close()
    engine = create_engine(empty_url)
    with engine.begin() as con:
        con.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(SchemaTooNewError, match="schema revision 0099, newer than this sdhub understands"):
        Catalogue(empty_url)
    monkeypatch.setenv("SDHUB_DB_URL", empty_url)
    result = run_cli("list")
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and "Traceback" not in result.output
    assert scalar(empty_url, "SELECT version_num FROM alembic_version") == "0099"


def test_a_failed_upgrade_changes_nothing(empty_url: str) -> None:
    # Revision 0003 creates the index ix_sidecars_file_id; a v2 catalogue where that name is taken makes it
    # fail midway, after 0003's first table. The upgrade is one transaction: nothing of it may remain.
    load_legacy(empty_url, 2)
    engine = create_engine(empty_url)
    with engine.begin() as con:
        con.execute(text("CREATE INDEX ix_sidecars_file_id ON files (inode)"))
    engine.dispose()
    with pytest.raises(CatalogueError):
        Catalogue(empty_url)
    engine = create_engine(empty_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert "links" not in tables and "sidecars" not in tables and "alembic_version" not in tables
    assert "extra" in columns(empty_url, "versions") and "identify_version" in columns(empty_url, "files")
    assert scalar(empty_url, "SELECT value FROM schema_meta WHERE \"key\" = 'schema_version'") == "2"
    assert scalar(empty_url, "SELECT count(*) FROM files") == 2


UPGRADER = """
import sys, time
from sqlalchemy import create_engine
from hub.catalogue import migrate
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
engine = create_engine(sys.argv[1])
print(migrate.upgrade(engine, sys.argv[1]).upgraded_from)
"""


def test_processes_opening_an_old_catalogue_at_once_upgrade_it_once(empty_url: str) -> None:
    load_legacy(empty_url, 1)
    start_at = str(time.time() + 1.5)  # all start together, past the interpreter start-up
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADER, empty_url, start_at], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1] for o in outs]
    # Exactly one process migrated (from the stamped v1); the others found it done, before or under the lock.
    assert sorted(o[0].strip() for o in outs) == ["0001", "None", "None", "None"]
    assert migrate.database_status(empty_url).up_to_date
    assert scalar(empty_url, "SELECT count(*) FROM alembic_version") == 1


def test_tables_dropped_by_hand_make_a_fresh_catalogue(empty_url: str) -> None:
    # Scratch databases are emptied with Base.metadata.drop_all, which leaves alembic_version behind.
    from hub.catalogue.models import Base

    Catalogue(empty_url).close()
    engine = create_engine(empty_url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    cat = Catalogue(empty_url)
    assert cat.count() == 0 and cat.schema_version() == SCHEMA_VERSION
    cat.close()


def test_a_foreign_database_is_not_migrated(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(CatalogueError, match="not an sdhub catalogue"):
        migrate.database_status(f"sqlite:///{db}")
    assert [r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_the_legacy_fixtures_are_what_the_generator_makes() -> None:
    # They come from git history; regenerate them with tests/make_legacy_catalogues.py when it changes.
    pytest.importorskip("make_legacy_catalogues")
    import make_legacy_catalogues as gen

    probe = subprocess.run(["git", "cat-file", "-e", f"{gen.RELEASES[1]}^{{commit}}"], cwd=gen.ROOT,
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the releases' commits are not in this clone (shallow?)")
    for version, commit in gen.RELEASES.items():
        for dialect in ("sqlite", "postgresql"):
            assert (LEGACY / f"v{version}.{dialect}.sql").read_text() == gen.script(commit, version, dialect)


def test_opening_an_up_to_date_catalogue_does_not_load_alembic(tmp_path: Path) -> None:
    # Every command opens the catalogue: at head that is one query, not a migration environment.
    db = tmp_path / "registry.db"
    Catalogue(f"sqlite:///{db}").close()
    code = ("import sys; from hub.catalogue import Catalogue; c = Catalogue(sys.argv[1]); c.count(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    out = subprocess.run([sys.executable, "-c", code, f"sqlite:///{db}"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_migrations_ship_in_the_package() -> None:
    # A non-editable install must carry env.py and every revision (they are read from the package's folder).
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]
    assert {"hub.catalogue.migrations", "hub.catalogue.migrations.versions"} <= set(packages)
    assert any(dep.startswith("alembic") for dep in project["project"]["dependencies"])
    for folder in (migrate.MIGRATIONS_DIR, migrate.VERSIONS_DIR):
        assert (folder / "__init__.py").is_file()

"""registry.db.schema must equal what the models emit, and the database must carry its version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.catalogue import SCHEMA_VERSION, Catalogue
from hub.catalogue.schema import sqlite_ddl
from hub.errors import CatalogueError, SchemaTooNewError

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_is_what_the_head_revision_makes() -> None:
    on_disk = (ROOT / "registry.db.schema").read_text()
    assert on_disk == sqlite_ddl(), (
        "registry.db.schema is out of date with the migrations in hub/catalogue/migrations; regenerate it with:\n"
        "    python -m hub.catalogue.schema > registry.db.schema"
    )


def test_schema_file_creates_the_same_tables_as_the_models(tmp_path: Path) -> None:
    # Running the DDL file by hand gives a database the catalogue opens without changes.
    db = tmp_path / "from_ddl.db"
    con = sqlite3.connect(db)
    con.executescript((ROOT / "registry.db.schema").read_text())  # the version markers included
    con.commit()
    con.close()
    cat = Catalogue(f"sqlite:///{db}")
    assert cat.schema_version() == SCHEMA_VERSION
    assert cat.count() == 0


def test_new_catalogue_records_version_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "a" / "registry.db"
    cat = Catalogue(f"sqlite:///{db}")
    assert cat.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    Catalogue(f"sqlite:///{db}").close()
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_meta SET value='999' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNewError, match="schema version 999, newer"):
        Catalogue(f"sqlite:///{db}")


def test_corrupt_database_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    db.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CatalogueError, match="corrupt or not an sdhub database"):
        Catalogue(f"sqlite:///{db}")


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(CatalogueError, match="not an sdhub catalogue"):
        Catalogue(f"sqlite:///{db}")


def test_locked_catalogue_gives_one_clear_line(tmp_path: Path, run_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from safetensors_files import SD15_UNET_MARKERS, write_safetensors

    db = tmp_path / "registry.db"
    Catalogue(f"sqlite:///{db}").close()
    monkeypatch.setenv("SDHUB_DB_URL", f"sqlite:///{db}?timeout=0.2")
    write_safetensors(tmp_path / "m" / "a.safetensors", SD15_UNET_MARKERS)
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        result = run_cli("scan", str(tmp_path / "m"))
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 1
    assert "is locked by another process" in result.stderr
    assert "Traceback" not in result.output
    assert Catalogue(f"sqlite:///{db}").count() == 0


def test_many_processes_creating_a_new_catalogue_at_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys, time; from hub.catalogue import Catalogue; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
            "c = Catalogue('sqlite:///' + sys.argv[1]); print(c.schema_version())")
    for round_ in range(3):
        db = tmp_path / f"race{round_}" / "registry.db"
        import time

        start_at = str(time.time() + 1.0)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(db), start_at], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1] for o in outs]
        assert [o[0].strip() for o in outs] == [str(SCHEMA_VERSION)] * 4


def test_a_version_1_catalogue_is_migrated_in_place(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    Catalogue(f"sqlite:///{db}").close()
    con = sqlite3.connect(db)  # make it look like a catalogue written by sdhub with schema 1
    con.execute("ALTER TABLE files DROP COLUMN identify_version")
    con.execute("ALTER TABLE files DROP COLUMN kind_mismatch")
    con.execute("UPDATE schema_meta SET value='1' WHERE key='schema_version'")
    con.execute("DROP TABLE alembic_version")  # releases before Alembic had only the marker
    con.execute("INSERT INTO files (path, name, format, size, mtime_ns, device, inode, added_at) "
                "VALUES ('/m/a.safetensors', 'a.safetensors', 'safetensors', 1, 1, 1, 1, '2026-01-01 00:00:00')")
    con.commit()
    con.close()
    cat = Catalogue(f"sqlite:///{db}")
    assert cat.schema_version() == SCHEMA_VERSION
    rows = cat.stat_rows()
    assert list(rows) == ["/m/a.safetensors"] and rows["/m/a.safetensors"].identify_version is None
    con = sqlite3.connect(db)
    columns = [r[1] for r in con.execute("PRAGMA table_info(files)")]
    assert "identify_version" in columns and "kind_mismatch" in columns
    con.close()

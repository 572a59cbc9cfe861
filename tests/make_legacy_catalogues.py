"""Freeze catalogues as earlier releases made them into tests/data/legacy_catalogues/ (run from the repo root).

    python tests/make_legacy_catalogues.py

For each release below, hub/catalogue/models.py is taken from git history (``git show COMMIT:…``) and its
DDL compiled for SQLite and PostgreSQL exactly as that release's ``Base.metadata.create_all`` emitted it,
followed by the ``schema_meta`` marker it wrote and a few rows. The files are committed: the upgrade tests
read them, never git, so they keep working in a shallow clone. Re-running this must give the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import String, create_mock_engine, literal
from sqlalchemy.schema import CreateIndex, CreateTable

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "legacy_catalogues"

# schema version -> the commit whose hub/catalogue/models.py made it (the last one before the next version).
RELEASES = {1: "5990dc1", 2: "6f6292f", 3: "f59378c", 4: "c4ca509"}

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("files", {"id": 1, "path": "/models/loras/pixel_style.safetensors", "name": "pixel_style.safetensors",
               "format": "safetensors", "size": 2048, "mtime_ns": 1_700_000_000_000_000_000, "device": 64769,
               "inode": 1234, "sha256": "a" * 64, "autov1": "1" * 8, "autov3": "b" * 64, "crc32": "0badf00d",
               "blake3": "c" * 64, "hashed_at": WHEN, "family": "sdxl", "kind": "lora", "precision": "fp16",
               "identification": {"family": "sdxl", "kind": "lora", "confidence": 0.97}, "identify_version": 3,
               "added_at": WHEN, "verified_at": WHEN, "verify_status": "ok"}),
    ("files", {"id": 2, "path": "/models/checkpoints/dreamy_v1.safetensors", "name": "dreamy_v1.safetensors",
               "format": "safetensors", "size": 4096, "mtime_ns": 1_700_000_000_000_000_001, "device": 64769,
               "inode": 1235, "sha256": "d" * 64, "family": "sd1", "kind": "checkpoint",
               "identification": {"family": "sd1", "kind": "checkpoint"}, "family_mismatch": None,
               "kind_mismatch": "Civitai calls it a LoRA", "added_at": WHEN}),
    ("models", {"id": 1, "source": "civitai", "source_model_id": "4201", "name": "Pixel Art", "type": "LORA",
                "creator": "someone", "nsfw": False, "license": {"allowCommercialUse": ["Image"]},
                "tags": ["retro", "pixel"], "updated_at": WHEN}),
    ("versions", {"id": 1, "model_id": 1, "source_version_id": "130072", "name": "v1.0", "base_model": "SDXL 1.0",
                  "trained_words": ["pixelart"], "extra": {"from": "the version"}}),
    ("file_sources", {"id": 1, "file_id": 1, "version_id": 1, "source_file_id": "98765",
                      "original_filename": "pixel_style.safetensors",
                      "download_url": "https://civitai.com/api/download/models/130072",
                      "published_hashes": {"sha256": "a" * 64}, "claimed_family": "sdxl",
                      "extra": {"format": "SafeTensor"}, "linked_at": WHEN}),
    ("search_terms", {"term": "pixel", "file_id": 1}),
    ("search_terms", {"term": "retro", "file_id": 1}),
    ("search_terms", {"term": "dreamy", "file_id": 2}),
    ("sidecars", {"id": 1, "file_id": 1, "path": "/models/loras/pixel_style.civitai.info", "format": "civitai_info",
                  "size": 300, "mtime_ns": 1_700_000_000_000_000_002, "data": {"model_name": "Pixel Art"},
                  "read_at": WHEN}),
    ("links", {"id": 1, "path": "/ui/models/Lora/pixel_style.safetensors", "file_id": 1,
               "target": "/models/loras/pixel_style.safetensors", "root": "/ui", "layout": "comfyui",
               "mode": "symlink", "size": 2048, "mtime_ns": 1_700_000_000_000_000_003, "inode": 99,
               "made_at": WHEN}),
]


def load_models(commit: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{commit}:hub/catalogue/models.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"legacy_models_{commit}")
    sys.modules[module.__name__] = module  # SQLAlchemy resolves the Mapped[...] annotations through it
    exec(compile(source, f"{commit}:hub/catalogue/models.py", "exec"), module.__dict__)
    return module


def script(commit: str, version: int, dialect_name: str) -> str:
    models = load_models(commit)
    assert models.SCHEMA_VERSION == version, (commit, models.SCHEMA_VERSION)
    dialect = create_mock_engine(f"{dialect_name}://", executor=lambda *a, **k: None).dialect
    lines = [f"-- A catalogue as sdhub schema version {version} made it on {dialect_name}: the DDL that",
             f"-- `git show {commit}:hub/catalogue/models.py`'s Base.metadata.create_all emits, the schema_meta",
             "-- marker that release wrote, and a few rows. Generated by tests/make_legacy_catalogues.py; do not edit.", ""]
    for table in models.Base.metadata.sorted_tables:
        lines.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            lines.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
    tables = models.Base.metadata.tables
    rows = [("schema_meta", {"key": "schema_version", "value": str(version)}), *ROWS]
    for name, values in rows:
        if name not in tables:
            continue
        table = tables[name]
        # ids are left to the database (as the release did), so PostgreSQL's sequences stay in step;
        # rows go in the order their ids below say.
        kept = {k: _literal(v, dialect_name) for k, v in values.items() if k in table.c and k != "id"}
        stmt = table.insert().values(**kept)
        lines.append(str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip() + ";")
    return "\n".join(line.rstrip() for line in "\n".join(lines).splitlines()) + "\n"


def _literal(value: Any, dialect_name: str) -> Any:
    """JSON and timestamps as the text each database was handed (SQLAlchemy renders no JSON literals)."""
    if isinstance(value, (dict, list)):
        return literal(json.dumps(value), String)
    if isinstance(value, datetime):  # SQLite: SQLAlchemy's storage format; PostgreSQL: a timestamptz literal
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect_name == "sqlite" else value.isoformat(sep=" ")
        return literal(text, String)
    return value


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for version, commit in RELEASES.items():
        for dialect in ("sqlite", "postgresql"):
            (OUT / f"v{version}.{dialect}.sql").write_text(script(commit, version, dialect))
            print(OUT / f"v{version}.{dialect}.sql")


if __name__ == "__main__":
    main()

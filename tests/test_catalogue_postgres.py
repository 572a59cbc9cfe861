"""The same catalogue code on PostgreSQL (no SQLite-only SQL).

Runs when SDHUB_TEST_POSTGRES_URL points at a scratch database, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/sdhub_test``; every table is dropped first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.catalogue import SourceInfo

PG_URL = os.environ.get("SDHUB_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="set SDHUB_TEST_POSTGRES_URL to run against PostgreSQL")


@pytest.fixture
def pg_hub(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    from hub import Hub
    from hub.catalogue.models import Base

    engine = create_engine(PG_URL)  # type: ignore[arg-type]
    Base.metadata.drop_all(engine)
    engine.dispose()
    monkeypatch.setenv("SDHUB_DB_URL", PG_URL)  # type: ignore[arg-type]
    h = Hub()
    yield h
    h.close()


def test_scan_search_lookup_and_remove_on_postgres(pg_hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors_files import SD15_UNET_MARKERS, SDXL_LORA_KOHYA, write_safetensors

    write_safetensors(tmp_path / "m" / "dreamy.safetensors", SD15_UNET_MARKERS, fill=b"\x01")
    write_safetensors(tmp_path / "m" / "pixel.safetensors", SDXL_LORA_KOHYA, fill=b"\x02")
    report = pg_hub.scan([tmp_path / "m"])
    assert report.summary()["added"] == 2
    assert pg_hub.scan([tmp_path / "m"]).summary()["unchanged"] == 2
    rec = pg_hub.get("pixel.safetensors")
    pg_hub.attach_source(rec, SourceInfo(source="civitai", model_id="1", version_id="2", model_name="Pixel Art",
                                         tags=["retro"], trained_words=["pixelart"],
                                         published_hashes={"sha256": rec.sha256}))
    assert [r.name for r in pg_hub.list(text="retr pixelart")] == ["pixel.safetensors"]
    assert [r.name for r in pg_hub.list(source="civitai")] == ["pixel.safetensors"]
    # By source ids (what every install asks first): no SELECT DISTINCT over json columns, which PostgreSQL refuses.
    assert [r.name for r in pg_hub.catalogue.by_source("civitai", "1", "2")] == ["pixel.safetensors"]
    assert pg_hub.get(rec.sha256[:10].upper()).id == rec.id
    assert [r.status for r in pg_hub.verify([rec.sha256])] == ["ok"]
    pg_hub.remove(f"#{rec.id}")
    assert [r.name for r in pg_hub.list()] == ["dreamy.safetensors"]

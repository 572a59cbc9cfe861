"""The Civitai-compatible subset of ``sdhub serve``: Civitai's shapes for what the store holds, and sdhub itself
installing from the server as if it were Civitai (``SDHUB_CIVITAI_URL``), verified like any download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from serve_helpers import running_server
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401
from tests.source_helpers import sdxl_lora_bytes


@pytest.fixture
def held(fake_civitai, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A store that installed civitai:1001@2002 (a LoRA with a VAE beside it) from a fake Civitai."""
    from hub import Hub

    lora, vae = sdxl_lora_bytes(tmp_path, 21), sdxl_lora_bytes(tmp_path, 22, "vae.safetensors")
    fake_civitai.add(CModel(1001, "Pixel Style", "LORA", tags=["style"], versions=[
        CVersion(2002, "v2", "SDXL 1.0", trained_words=["pixel"], files=[
            CFile(3003, "pixel-style.safetensors", lora),
            CFile(3004, "pixel-vae.safetensors", vae, type="VAE", primary=False)]),
    ]))
    monkeypatch.setenv("SDHUB_CIVITAI_URL", fake_civitai.api.url)
    h = Hub(home=tmp_path / "studio")
    assert h.install("civitai:1001@2002").ok
    assert h.install("civitai:1001@2002/3004").ok
    monkeypatch.delenv("SDHUB_CIVITAI_URL")
    yield {"hub": h, "lora": lora, "vae": vae, "fake": fake_civitai}
    h.close()


def _sidecars_removed(h) -> None:  # type: ignore[no-untyped-def]
    for rec in h.list():
        for info in Path(rec.path).parent.glob("*.civitai.info"):
            info.unlink()


@pytest.mark.parametrize("sidecar", [True, False], ids=["from-civitai-info", "from-catalogue"])
def test_by_hash_version_and_download(held, sidecar: bool) -> None:  # type: ignore[no-untyped-def]
    if not sidecar:
        _sidecars_removed(held["hub"])
    sha = hashlib.sha256(held["lora"]).hexdigest()
    with running_server(held["hub"]) as srv:
        for value in (sha.upper(), sha, sha[:10].upper()):  # SHA256 either case, AutoV2
            got = requests.get(f"{srv.url}/api/v1/model-versions/by-hash/{value}", timeout=10)
            assert got.status_code == 200, got.text
            version = got.json()
            assert version["id"] == 2002 and version["modelId"] == 1001
        assert version["model"]["type"] == "LORA" and version["trainedWords"] == ["pixel"]
        assert version["baseModel"] == "SDXL 1.0"
        files = {f["id"]: f for f in version["files"]}
        assert files[3003]["hashes"]["SHA256"] == sha.upper() and files[3003]["primary"] is True
        assert files[3003]["downloadUrl"] == f"{srv.url}/api/download/models/2002"
        assert files[3004]["downloadUrl"].startswith(f"{srv.url}/api/download/models/2002?")
        assert requests.get(f"{srv.url}/api/v1/model-versions/2002", timeout=10).json()["id"] == 2002

        primary = requests.get(f"{srv.url}/api/download/models/2002", timeout=10)
        assert primary.content == held["lora"]
        assert primary.headers["Content-Disposition"] == 'attachment; filename="pixel-style.safetensors"'
        other = requests.get(files[3004]["downloadUrl"], timeout=10)
        assert other.content == held["vae"]
        by_type = requests.get(f"{srv.url}/api/download/models/2002", params={"type": "VAE"}, timeout=10)
        assert by_type.content == held["vae"]

        model = requests.get(f"{srv.url}/api/v1/models/1001", timeout=10).json()
        assert model["name"] == "Pixel Style" and [v["id"] for v in model["modelVersions"]] == [2002]
        batch = requests.post(f"{srv.url}/api/v1/model-versions/by-hash", json=[sha.upper(), "0" * 64], timeout=10)
        assert [v["id"] for v in batch.json()] == [2002]


def test_misses_answer_as_civitai_does(held) -> None:  # type: ignore[no-untyped-def]
    with running_server(held["hub"]) as srv:
        for path in (f"/api/v1/model-versions/by-hash/{'ab' * 32}", "/api/v1/model-versions/9",
                     "/api/download/models/9", "/api/v1/model-versions/by-hash/zz"):
            got = requests.get(srv.url + path, timeout=10)
            assert got.status_code == 404 and "error" in got.json(), path
        assert requests.get(f"{srv.url}/api/download/models/2002", params={"fileId": "77"}, timeout=10).status_code == 404
        bad = requests.post(f"{srv.url}/api/v1/model-versions/by-hash", data=b"not json", timeout=10)
        assert bad.status_code == 400


@pytest.mark.parametrize("sidecar", [True, False], ids=["from-civitai-info", "from-catalogue"])
def test_sdhub_installs_from_the_server_as_from_civitai(held, tmp_path, monkeypatch, sidecar: bool):  # type: ignore[no-untyped-def]
    from hub import Hub

    if not sidecar:
        _sidecars_removed(held["hub"])
    before = len(held["fake"].api.requests())
    with running_server(held["hub"]) as srv:
        monkeypatch.setenv("SDHUB_CIVITAI_URL", srv.url)
        with Hub(home=tmp_path / "client") as client:
            result = client.install("civitai:1001")
            assert result.ok and result.status == "installed"
            assert Path(result.path).read_bytes() == held["lora"]
            rec = client.get(str(result.path))
            assert [(s.source, s.model_id, s.version_id) for s in rec.sources] == [("civitai", "1001", "2002")]
            found = client.lookup([result.path])
            assert found[0].found and found[0].found[0].version_id == "2002"
    assert len(held["fake"].api.requests()) == before  # the real Civitai was never asked

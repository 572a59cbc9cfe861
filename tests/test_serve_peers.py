"""``SDHUB_PEERS``: a client machine asks the studio's ``sdhub serve`` first, and verifies what it gets like any download."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from serve_helpers import running_server
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401
from tests.source_helpers import sdxl_lora_bytes


@pytest.fixture
def studio(fake_civitai, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The studio store (its own home) that installed civitai:1001@2002 from a fake Civitai."""
    from hub import Hub

    lora = sdxl_lora_bytes(tmp_path, 51)
    fake_civitai.add(CModel(1001, "Peer Style", "LORA", versions=[
        CVersion(2002, "v1", "SDXL 1.0", files=[CFile(3003, "peer-style.safetensors", lora)])]))
    monkeypatch.setenv("SDHUB_CIVITAI_URL", fake_civitai.api.url)
    h = Hub(home=tmp_path / "studio")
    assert h.install("civitai:1001@2002").ok
    yield {"hub": h, "lora": lora, "sha": hashlib.sha256(lora).hexdigest(), "fake": fake_civitai}
    h.close()


def _internet(studio) -> int:  # type: ignore[no-untyped-def]
    return len(studio["fake"].api.requests()) + len(studio["fake"].storage.requests())


@pytest.mark.parametrize("ref", ["civitai:1001@2002", "sha256"])
def test_a_peer_is_asked_before_the_internet(studio, tmp_path, monkeypatch, ref: str) -> None:  # type: ignore[no-untyped-def]
    from hub import Hub

    ref = f"sha256:{studio['sha']}" if ref == "sha256" else ref
    with running_server(studio["hub"]) as srv:
        monkeypatch.setenv("SDHUB_PEERS", srv.url)
        before = _internet(studio)
        with Hub(home=tmp_path / "client") as client:
            result = client.install(ref)
            assert result.status == "installed" and result.served_by == f"peer {srv.url}"
            assert Path(result.path).read_bytes() == studio["lora"]
            record = client.get(result.path)
            assert record.sha256 == studio["sha"]
            assert [(s.source, s.model_id, s.version_id, s.file_id) for s in record.sources] == [
                ("civitai", "1001", "2002", "3003")]
            # Linked as the studio linked it: the Civitai reference now resolves locally.
            assert client.install("civitai:1001@2002").status == "already-installed"
        assert _internet(studio) == before


def test_a_peer_serving_wrong_bytes_is_passed_over(studio, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hub import Hub

    stored = Path(studio["hub"].get(f"sha256:{studio['sha']}").path)
    tampered = bytearray(stored.read_bytes())
    tampered[-1] ^= 0xFF
    stored.write_bytes(bytes(tampered))  # the studio's catalogue still claims the old SHA256
    with running_server(studio["hub"]) as srv:
        monkeypatch.setenv("SDHUB_PEERS", srv.url)
        with Hub(home=tmp_path / "client") as client:
            result = client.install("civitai:1001@2002")
    assert result.status == "installed" and result.served_by != f"peer {srv.url}"
    assert Path(result.path).read_bytes() == studio["lora"]  # from the (fake) internet, verified
    assert any(w.startswith(f"peer {srv.url}:") and "does not match" in w for w in result.warnings), result.warnings
    quarantined = list((tmp_path / "client").rglob("*quarantine*"))
    assert quarantined, "the peer's bad copy is quarantined, as any mismatch"


def test_a_peer_down_or_without_the_file_falls_back(studio, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hub import Hub

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Hub(home=tmp_path / "empty-peer") as empty, running_server(empty) as srv:
        monkeypatch.setenv("SDHUB_PEERS", f"{dead},{srv.url}")
        with Hub(home=tmp_path / "client") as client:
            result = client.install("civitai:1001@2002")
    assert result.status == "installed" and Path(result.path).read_bytes() == studio["lora"]
    assert any(dead in w and "not reachable" in w for w in result.warnings)


def test_peers_setting(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hub.config import load_settings
    from hub.errors import ConfigError

    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('[sources]\npeers = ["http://studio:8765/"]\n')
    assert load_settings({"SDHUB_HOME": str(home)}).peers == ["http://studio:8765"]
    env = {"SDHUB_HOME": str(home), "SDHUB_PEERS": "http://a:1, http://b:2"}
    assert load_settings(env).peers == ["http://a:1", "http://b:2"]
    with pytest.raises(ConfigError, match="peer"):
        load_settings({"SDHUB_HOME": str(home), "SDHUB_PEERS": "studio:8765"})

"""sdhub's own JSON API (/api/sdhub/v1), against the real server on a loopback port."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from serve_helpers import running_server, write_model


@pytest.fixture
def store(hub_instance, tmp_path: Path):  # type: ignore[no-untyped-def]
    models = tmp_path / "models"
    a, sha_a = write_model(models / "alpha-style.safetensors", "a")
    b, sha_b = write_model(models / "beta-detail.safetensors", "b")
    report = hub_instance.scan([models])
    assert report.summary()["added"] == 2, report.to_dict()
    return hub_instance, {"alpha": (a, sha_a), "beta": (b, sha_b)}


def test_files_list_detail_and_content(store) -> None:  # type: ignore[no-untyped-def]
    hub, files = store
    path_a, sha_a = files["alpha"]
    with running_server(hub) as srv:
        listing = requests.get(f"{srv.url}/api/sdhub/v1/files", timeout=10)
        assert listing.status_code == 200
        body = listing.json()
        assert body["count"] == 2
        assert sorted(f["name"] for f in body["files"]) == ["alpha-style.safetensors", "beta-detail.safetensors"]
        one = next(f for f in body["files"] if f["name"] == "alpha-style.safetensors")
        assert one["hashes"]["sha256"] == sha_a
        assert one["download_url"] == f"/api/sdhub/v1/files/{sha_a}/content"

        detail = requests.get(f"{srv.url}/api/sdhub/v1/files/{sha_a.upper()}", timeout=10)
        assert detail.status_code == 200
        assert detail.json()["path"] == str(path_a)
        assert "identification" in detail.json()

        content = requests.get(f"{srv.url}{one['download_url']}", timeout=10)
        assert content.status_code == 200
        assert hashlib.sha256(content.content).hexdigest() == sha_a
        assert content.headers["ETag"] == f'"{sha_a}"'
        assert "alpha-style.safetensors" in content.headers["Content-Disposition"]

        part = requests.get(f"{srv.url}{one['download_url']}", headers={"Range": "bytes=8-15"}, timeout=10)
        assert part.status_code == 206
        assert part.content == path_a.read_bytes()[8:16]
        assert part.headers["Content-Range"] == f"bytes 8-15/{path_a.stat().st_size}"

        head = requests.head(f"{srv.url}{one['download_url']}", timeout=10)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(path_a.stat().st_size)


def test_limits_offsets_and_filters(store) -> None:  # type: ignore[no-untyped-def]
    hub, _ = store
    with running_server(hub) as srv:
        page = requests.get(f"{srv.url}/api/sdhub/v1/files", params={"limit": 1, "offset": 1}, timeout=10).json()
        assert [f["name"] for f in page["files"]] == ["beta-detail.safetensors"]
        assert page["limit"] == 1 and page["offset"] == 1
        bad = requests.get(f"{srv.url}/api/sdhub/v1/files", params={"limit": "lots"}, timeout=10)
        assert bad.status_code == 400 and "limit" in bad.json()["error"]
        none = requests.get(f"{srv.url}/api/sdhub/v1/files", params={"kind": "no-such-kind"}, timeout=10).json()
        assert none["files"] == []


def test_search_is_the_catalogue_search(store) -> None:  # type: ignore[no-untyped-def]
    hub, _ = store
    with running_server(hub) as srv:
        found = requests.get(f"{srv.url}/api/sdhub/v1/search", params={"q": "det"}, timeout=10).json()
        assert [r["name"] for r in found["results"]] == ["beta-detail.safetensors"]
        assert found["query"] == "det"
        assert requests.get(f"{srv.url}/api/sdhub/v1/search", timeout=10).status_code == 400
        remote = requests.get(f"{srv.url}/api/sdhub/v1/search/remote", params={"q": "x"}, timeout=10)
        assert remote.status_code == 403 and "--upstream" in remote.json()["error"]


def test_missing_and_malformed_hashes(store) -> None:  # type: ignore[no-untyped-def]
    hub, _ = store
    with running_server(hub) as srv:
        missing = requests.get(f"{srv.url}/api/sdhub/v1/files/{'0' * 64}", timeout=10)
        assert missing.status_code == 404 and "no file with SHA256" in missing.json()["error"]
        assert requests.get(f"{srv.url}/api/sdhub/v1/files/{'0' * 64}/content", timeout=10).status_code == 404
        bad = requests.get(f"{srv.url}/api/sdhub/v1/files/not-a-hash", timeout=10)
        assert bad.status_code == 400


def test_a_file_gone_from_disk_is_410(store) -> None:  # type: ignore[no-untyped-def]
    hub, files = store
    path_a, sha_a = files["alpha"]
    path_a.unlink()
    with running_server(hub) as srv:
        assert requests.get(f"{srv.url}/api/sdhub/v1/files/{sha_a}/content", timeout=10).status_code == 410
        assert requests.get(f"{srv.url}/api/sdhub/v1/files/{sha_a}", timeout=10).json()["on_disk"] is False


def test_status(store) -> None:  # type: ignore[no-untyped-def]
    hub, _ = store
    with running_server(hub) as srv:
        status = requests.get(f"{srv.url}/api/sdhub/v1/status", timeout=10).json()
        assert status["files"] == 2 and status["read_only"] is True and status["upstream"] is False

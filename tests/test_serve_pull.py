"""Pull-through (``sdhub serve --upstream``): a miss is fetched once, verified, stored and streamed to every waiter.

Upstream is a fake Hugging Face Hub and a fake Civitai whose file servers are throttled, so that eight clients
really wait on one download at once; their request logs count the upstream downloads.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import requests

from serve_helpers import running_server
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401
from tests.fake_hf import HFRepo, fake_hub  # noqa: F401
from tests.fake_http import ServedFile
from tests.source_helpers import sdxl_lora_bytes

TOKEN = "studio-token-123"
REPO, FILE = "acme/pulled", "pulled-lora.safetensors"
N = 8


def _together(n: int, work) -> list:  # type: ignore[no-untyped-def]
    """``work(i)`` on ``n`` threads released at the same instant; their results (or exceptions) in order."""
    gate, out = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        gate.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - returned to the test to assert on
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


@pytest.fixture
def upstream_hf(fake_hub, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    data = sdxl_lora_bytes(tmp_path, 31)
    sha = hashlib.sha256(data).hexdigest()
    fake_hub.app.add(HFRepo(REPO, {FILE: data}, commit="f" * 40, tags=["lora", "stable-diffusion-xl"]))
    # Slow enough (about 1.5 s) that every client arrives while the one download is running.
    fake_hub.primary.cdn_files[sha] = ServedFile(data, filename=FILE, etag=f'"{sha}"', throttle_bps=len(data) // 2)
    monkeypatch.setenv("SDHUB_HF_ENDPOINTS", fake_hub.primary.url)
    return {"fake": fake_hub, "data": data, "sha": sha}


def _cdn_gets(fake_hub, sha: str) -> int:  # type: ignore[no-untyped-def]
    return len([r for r in fake_hub.primary.cdn.requests(method="GET") if sha in r.path])


def test_eight_hf_clients_one_upstream_download(upstream_hf, hub_instance, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import hf_hub_download

    from hub.server.app import create_app
    from hub.server.runner import BackgroundServer

    app = create_app(hub_instance, token=TOKEN, upstream=True)
    with BackgroundServer(app) as srv:
        got = _together(N, lambda i: Path(hf_hub_download(REPO, FILE, endpoint=srv.url, token=TOKEN,
                                                          cache_dir=tmp_path / f"client{i}")).read_bytes())
        assert all(g == upstream_hf["data"] for g in got), [type(g) for g in got]
        assert _cdn_gets(upstream_hf["fake"], upstream_hf["sha"]) == 1
        assert app.state.sdhub.extras["pull"].upstream_downloads == 1
        # Now in the store, verified and registered: the next client is served from it, upstream untouched.
        (record,) = hub_instance.find_by_hash(upstream_hf["sha"])
        assert [(s.source, s.model_id) for s in record.sources] == [("hf", REPO)]
        again = hf_hub_download(REPO, FILE, endpoint=srv.url, cache_dir=tmp_path / "later")
        assert Path(again).read_bytes() == upstream_hf["data"]
        assert _cdn_gets(upstream_hf["fake"], upstream_hf["sha"]) == 1


def test_pull_through_needs_the_token_and_upstream(upstream_hf, hub_instance, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"/{REPO}/resolve/main/{FILE}"
    with running_server(hub_instance, token=TOKEN, upstream=True) as srv:
        assert requests.get(srv.url + url, timeout=10).status_code == 401
        wrong = requests.get(srv.url + url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401 and TOKEN not in wrong.text and "nope" not in wrong.text
    with running_server(hub_instance, token=TOKEN) as srv:  # no --upstream: a miss is a miss
        miss = requests.get(srv.url + url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert miss.status_code == 401 and miss.headers["X-Error-Code"] == "RepoNotFound"
    assert _cdn_gets(upstream_hf["fake"], upstream_hf["sha"]) == 0
    from hub.errors import ServerError
    from hub.server.app import create_app

    with pytest.raises(ServerError, match="--upstream needs --token-file"):
        create_app(hub_instance, upstream=True)


@pytest.fixture
def upstream_civitai(fake_civitai, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    good, bad = sdxl_lora_bytes(tmp_path, 41), sdxl_lora_bytes(tmp_path, 42)
    fake_civitai.add(CModel(1101, "Pulled", "LORA", versions=[
        CVersion(2201, "v1", "SDXL 1.0", files=[CFile(3301, "pulled.safetensors", good)]),
        CVersion(2202, "v2", "SDXL 1.0", files=[CFile(3302, "liar.safetensors", bad, published_sha256="ab" * 32)]),
    ]))
    fake_civitai.served[3301].throttle_bps = len(good) // 2
    monkeypatch.setenv("SDHUB_CIVITAI_URL", fake_civitai.api.url)
    return {"fake": fake_civitai, "good": good, "bad": bad}


def test_peers_by_hash_and_civitai_downloads_pull_through_once(upstream_civitai, hub_instance) -> None:  # type: ignore[no-untyped-def]
    sha = hashlib.sha256(upstream_civitai["good"]).hexdigest()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running_server(hub_instance, token=TOKEN, upstream=True) as srv:
        got = _together(N, lambda i: requests.get(f"{srv.url}/api/sdhub/v1/files/{sha}/content", headers=auth,
                                                  timeout=60).content)
        assert all(g == upstream_civitai["good"] for g in got)
        storage = upstream_civitai["fake"].storage.requests("/files/3301", "GET")
        assert len(storage) == 1
        # The Civitai-compatible download is served from the store now.
        assert requests.get(f"{srv.url}/api/download/models/2201", timeout=10).content == upstream_civitai["good"]
        assert len(upstream_civitai["fake"].storage.requests("/files/3301", "GET")) == 1


def test_a_file_failing_verification_is_never_served_whole(upstream_civitai, hub_instance) -> None:  # type: ignore[no-untyped-def]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running_server(hub_instance, token=TOKEN, upstream=True) as srv:
        reply = requests.get(f"{srv.url}/api/download/models/2202", headers=auth, timeout=60, stream=True)
        assert reply.status_code == 200  # streaming had begun: the cut comes before the last byte
        received = bytearray()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in reply.iter_content(65536):
                received += chunk
        assert len(received) < len(upstream_civitai["bad"])
    assert hub_instance.find_by_hash(hashlib.sha256(upstream_civitai["bad"]).hexdigest()) == []


def test_install_endpoint_is_a_write(upstream_civitai, hub_instance) -> None:  # type: ignore[no-untyped-def]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running_server(hub_instance) as srv:  # read-only
        refused = requests.post(f"{srv.url}/api/sdhub/v1/install", json={"ref": "civitai:1101@2201"}, timeout=10)
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    with running_server(hub_instance, token=TOKEN, upstream=True) as srv:
        assert requests.post(f"{srv.url}/api/sdhub/v1/install", json={"ref": "civitai:1101@2201"},
                             timeout=10).status_code == 401
        assert requests.post(f"{srv.url}/api/sdhub/v1/install", json={}, headers=auth, timeout=10).status_code == 400
        done = requests.post(f"{srv.url}/api/sdhub/v1/install", json={"ref": "civitai:1101@2201"}, headers=auth,
                             timeout=60)
        assert done.status_code == 201, done.text
        body = done.json()
        assert body["status"] == "installed" and body["file"]["hashes"]["sha256"] == hashlib.sha256(
            upstream_civitai["good"]).hexdigest()
        bad = requests.post(f"{srv.url}/api/sdhub/v1/install", json={"ref": "civitai:1101@2202"}, headers=auth,
                            timeout=60)
        assert bad.status_code == 502 and "does not match" in bad.json()["error"]

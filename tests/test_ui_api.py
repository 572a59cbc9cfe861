"""The web page's own endpoints over real HTTP: install jobs (progress, cancel, resume, errors), resources of an
uploaded workflow, card details, update checks, and what keeps other web sites from using them."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
import requests  # noqa: E402
from tests.fake_civitai import CFile, CVersion  # noqa: E402
from tests.ui_world import World, ui_world  # noqa: E402

API = "/api/sdhub/v1"
PAGE = {"X-Sdhub-UI": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDHUB_RETRY_MAX_WAIT", "0.02")
        mp.setenv("SDHUB_RETRY_ATTEMPTS", "2")
        with ui_world(tmp_path_factory.mktemp("ui-api"), bulk=30) as w:
            yield w


def wait_job(world: World, job_id: int, until: tuple[str, ...] = ("done", "failed", "cancelled"),
             timeout: float = 30, check=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{world.url}{API}/installs/{job_id}", timeout=5).json()
        if job["state"] in until and (check is None or check(job)):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}: {job}")


def test_install_job_reports_steps_and_registers_the_file(world: World) -> None:
    resp = requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1001@2002"}, headers=PAGE, timeout=5)
    assert resp.status_code == 202
    job = wait_job(world, resp.json()["id"])
    assert job["state"] == "done", job
    assert job["error"] is None
    assert job["result"]["sha256"] == hashlib.sha256(world.files["pixel"]).hexdigest()
    assert job["result"]["family"] == "sdxl" and job["result"]["kind"] == "lora"
    assert job["bytes"] == job["total"] == len(world.files["pixel"])
    assert job["served_by"] == world.civitai.storage.url.split("//")[1]  # the storage host the API redirected to
    names = [s["name"] for s in job["steps"]]
    assert names[:2] == ["plan", "plan"] and "download" in names and "identify" in names and "register" in names
    assert all(s["state"] == "done" for s in job["steps"])
    record = world.hub.catalogue.by_hash(job["result"]["sha256"])
    assert record and Path(record[0].path).is_file()
    # The same reference again: already installed, no second download.
    downloads = len(world.civitai.api.requests("/api/download/models/2002"))
    again = wait_job(world, requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1001@2002"},
                                          headers=PAGE, timeout=5).json()["id"])
    assert again["result"]["status"] == "already-installed"
    assert len(world.civitai.api.requests("/api/download/models/2002")) == downloads


def test_cancel_keeps_the_part_and_the_next_install_resumes(world: World) -> None:
    job = requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1002@2003"}, headers=PAGE, timeout=5).json()
    running = wait_job(world, job["id"], ("downloading",), check=lambda j: j["bytes"] > 200_000)
    assert running["total"] == len(world.files["slow"])
    assert running["speed"] and running["speed"] > 0 and running["eta"] is not None
    cancelled = requests.delete(f"{world.url}{API}/installs/{job['id']}", headers=PAGE, timeout=5).json()
    assert cancelled["cancel_requested"]
    cancelled = wait_job(world, job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["error"] is None
    stopped_at = cancelled["bytes"]
    assert 0 < stopped_at < len(world.files["slow"])
    store = Path(world.hub.settings.store)
    assert [p.name for p in (store / ".incoming").glob("*.part")] == ["pixel-slow.safetensors.part"]
    assert not world.hub.catalogue.by_hash(hashlib.sha256(world.files["slow"]).hexdigest())
    resumed = wait_job(world, requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1002@2003"},
                                            headers=PAGE, timeout=5).json()["id"])
    assert resumed["state"] == "done", resumed
    assert resumed["resumed_from"] >= stopped_at
    ranges = [r.header("Range") for r in world.civitai.storage.requests("/files/3004/")]
    assert ranges[-1] == f"bytes={resumed['resumed_from']}-"
    assert resumed["result"]["sha256"] == hashlib.sha256(world.files["slow"]).hexdigest()


def test_a_failing_install_is_one_clear_line(world: World) -> None:
    job = wait_job(world, requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1003@2004"},
                                        headers=PAGE, timeout=5).json()["id"])
    assert job["state"] == "failed"
    assert "\n" not in job["error"] and "early access" in job["error"].lower()
    assert job["steps"][-1]["state"] == "failed"
    bad = wait_job(world, requests.post(f"{world.url}{API}/installs", json={"ref": "no such thing"},
                                        headers=PAGE, timeout=5).json()["id"])
    assert bad["state"] == "failed" and bad["error_type"] == "BadReferenceError"


@pytest.mark.parametrize("headers, why", [
    ({}, "X-Sdhub-UI"),
    ({**PAGE, "Origin": "https://evil.example"}, "own page"),
    ({**PAGE, "Sec-Fetch-Site": "cross-site"}, "own page"),
    ({**PAGE, "Host": "attacker.example"}, "127.0.0.1 only"),
])
def test_other_sites_cannot_start_installs(world: World, headers: dict, why: str) -> None:
    before = len(requests.get(f"{world.url}{API}/installs", timeout=5).json()["installs"])
    resp = requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1001@2002"}, headers=headers, timeout=5)
    assert resp.status_code == 403 and why in resp.json()["error"]
    assert len(requests.get(f"{world.url}{API}/installs", timeout=5).json()["installs"]) == before


def test_search_across_the_three_sources(world: World) -> None:
    found = requests.get(f"{world.url}{API}/ui/search", params={"q": "pixel"}, headers=PAGE, timeout=20).json()
    assert {r["source"] for r in found["results"]} == {"civitai", "hf", "liblib"} and found["errors"] == {}
    early = next(r for r in found["results"] if r["ref"] == "civitai:1003@2004")
    assert early["early_access_until"].startswith("2099-01-01") and early["paid"] is True
    only = requests.get(f"{world.url}{API}/ui/search", params={"q": "pixel", "source": "hf"}, headers=PAGE,
                        timeout=20).json()
    assert [r["ref"] for r in only["results"]] == ["hf:acme/pixel-lora"]
    refused = requests.get(f"{world.url}{API}/ui/search", params={"q": "pixel"},
                           headers={**PAGE, "Origin": "https://evil.example"}, timeout=5)
    assert refused.status_code == 403


def test_plain_serve_needs_its_token_for_installs(world: World) -> None:
    from hub.server.app import create_app
    from hub.server.runner import BackgroundServer

    with BackgroundServer(create_app(world.hub)) as server:
        resp = requests.post(f"{server.url}{API}/installs", json={"ref": "civitai:1001@2002"}, headers=PAGE, timeout=5)
        assert resp.status_code == 403 and "read-only" in resp.json()["error"]
        assert requests.get(f"{server.url}/", timeout=5).status_code == 200  # the page itself is there to read


def test_resources_of_an_uploaded_workflow(world: World) -> None:
    body = json.dumps(world.workflow()).encode()
    resp = requests.post(f"{world.url}{API}/resources", params={"filename": "my workflow.json"}, data=body,
                         headers=PAGE, timeout=30)
    assert resp.status_code == 200, resp.text
    rows = {r["name"]: r for r in resp.json()["resources"]}
    assert rows["juggernaut-xl.safetensors"]["state"] == "have"
    assert rows["pixel-art-xl.safetensors"]["state"] in ("fetchable", "have")
    assert rows["mystery-style.safetensors"]["state"] == "unknown"
    assert "sdhub-ui-drop" not in resp.text and "my workflow.json" in resp.text  # the name, not the temp path
    empty = requests.post(f"{world.url}{API}/resources", params={"filename": "x.json"}, data=b"", headers=PAGE, timeout=5)
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    broken = requests.post(f"{world.url}{API}/resources", params={"filename": "x.json"}, data=b"{nope", headers=PAGE,
                           timeout=5)
    assert broken.status_code == 200 and broken.json()["errors"][0]["file"] == "x.json"


def test_cards_say_what_fits_and_what_is_on_disk(world: World) -> None:
    lora, ckpt = world.catalogued["lora"], world.catalogued["checkpoint"]
    cards = requests.get(f"{world.url}{API}/ui/cards", params={"sha256": f"{lora},{ckpt}"}, timeout=5).json()["cards"]
    assert cards[lora]["fits"]["role"] == "bases"
    assert "juggernaut-xl.safetensors" in [f["name"] for f in cards[lora]["fits"]["files"]]
    assert ckpt not in [f["sha256"] for f in cards[ckpt]["fits"]["files"]] and cards[ckpt]["fits"]["role"] == "addons"
    assert lora in [f["sha256"] for f in cards[ckpt]["fits"]["files"]]
    assert cards[lora]["trigger_words"] == ["neonglow", "glowing lines"]
    assert cards[lora]["notes"]["notes"] == "works best at 0.7"
    assert cards[lora]["disk"] == "ok" and cards[lora]["preview"]
    img = requests.get(world.url + cards[lora]["preview"], timeout=5)
    assert img.status_code == 200 and img.content.startswith(b"\x89PNG")
    assert cards[ckpt]["evidence"] and cards[ckpt]["preview"] is None
    bad = requests.get(f"{world.url}{API}/ui/cards", params={"sha256": "zz"}, timeout=5)
    assert bad.status_code == 400


def test_missing_and_changed_files_are_flagged(world: World, tmp_path: Path) -> None:
    from hub.server.cards import disk_state

    rec = world.hub.catalogue.by_hash(world.catalogued["lora"])[0]
    assert disk_state(rec) == ("ok", None)
    moved = rec.__class__(**{**rec.__dict__, "path": str(tmp_path / "gone.safetensors")})
    assert disk_state(moved)[0] == "missing"
    grown = rec.__class__(**{**rec.__dict__, "size": rec.size + 1})
    assert disk_state(grown)[0] == "changed"


def test_update_check_asks_the_source(world: World) -> None:
    job = wait_job(world, requests.post(f"{world.url}{API}/installs", json={"ref": "civitai:1001@2002"},
                                        headers=PAGE, timeout=5).json()["id"])
    sha = job["result"]["sha256"]
    first = requests.post(f"{world.url}{API}/ui/updates", json={"sha256": [sha]}, headers=PAGE, timeout=10).json()
    assert first["updates"][sha]["update"] is False and first["updates"][sha]["checked"] == ["civitai"]
    model = world.civitai.models[1001]
    model.versions.insert(0, CVersion(2099, "v2.0", "SDXL 1.0", files=[CFile(3099, "pixel-art-xl-v2.safetensors",
                                                                             world.files["pixel"])]))
    world.civitai.served[3099] = world.civitai.served[3003]
    try:
        later = requests.post(f"{world.url}{API}/ui/updates", json={"sha256": [sha]}, headers=PAGE, timeout=10).json()
    finally:
        model.versions.pop(0)
    assert later["updates"][sha]["update"] is True
    assert later["updates"][sha]["version_name"] == "v2.0" and "2099" in later["updates"][sha]["latest"]


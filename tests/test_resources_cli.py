"""`sdhub resources` and `sdhub install --from` end to end: images/workflows made as the UIs make them, fake sources."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("PIL")  # the tests build images with Pillow, as the UIs do

from hub.api import Hub  # noqa: E402
from tests.fake_civitai import CFile, CModel, CVersion, civitai_hashes, fake_civitai  # noqa: E402,F401
from tests.fake_hf import HFRepo, fake_hub  # noqa: E402,F401
from tests.fake_liblib import fake_liblib  # noqa: E402,F401
from tests.resource_files import comfy_api, comfy_ui, png, write_json  # noqa: E402
from tests.source_helpers import env_for, sdxl_lora_bytes  # noqa: E402


@pytest.fixture
def world(fake_civitai, fake_liblib, fake_hub, tmp_path, monkeypatch):
    lora = sdxl_lora_bytes(tmp_path, seed=21)
    have = sdxl_lora_bytes(tmp_path, seed=22)
    hf_file = sdxl_lora_bytes(tmp_path, seed=23)
    fake_civitai.add(CModel(1001, "Pixel Art XL", "LORA", versions=[
        CVersion(2002, "v1.1", "SDXL 1.0", files=[CFile(3003, "pixel-art-xl.safetensors", lora)])]))
    fake_hub.app.add(HFRepo("acme/flux", {"ae.safetensors": hf_file}, commit="e" * 40))
    env = env_for(civitai=fake_civitai, liblib=fake_liblib, hf=fake_hub.endpoints)
    env.update({"SDHUB_RETRY_MAX_WAIT": "0.02", "SDHUB_RETRY_ATTEMPTS": "2"})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    have_path = tmp_path / "models" / "mine.safetensors"
    have_path.parent.mkdir()
    have_path.write_bytes(have)
    with Hub() as h:
        h.register_file(have_path)
    return {"civitai": fake_civitai, "hf": fake_hub, "lora": lora, "have": have, "have_path": have_path,
            "hf_file": hf_file}


def infotext(model_hash: str, lora_hash: str, extra: str = "", lora: str = "pixel") -> str:
    return (f"a castle <lora:{lora}:0.8>{extra}\nNegative prompt: blur\nSteps: 20, Sampler: Euler, Seed: 1, "
            f'Model hash: {model_hash}, Model: mine, Lora hashes: "{lora}: {lora_hash}", Version: v1.10.1')


def by_hash_requests(world) -> int:
    return len(world["civitai"].api.requests("/api/v1/model-versions/by-hash"))


def test_resources_folder_states_and_one_request_per_hash(run_cli, world, tmp_path):
    have_v2 = hashlib.sha256(world["have"]).hexdigest()[:10]
    lora_v3 = civitai_hashes(world["lora"])["AutoV3"].lower()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):  # five images sharing one checkpoint and one LoRA: two hashes, one lookup for the LoRA
        png(folder / f"img{i}.png", parameters=infotext(have_v2, lora_v3, "" if i else " <lora:mystery:1>"))
    png(folder / "unknown.png", parameters=infotext(have_v2, "0123456789ab", lora="other"))
    (folder / "plain.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # corrupt: one line, the batch goes on
    result = run_cli("resources", str(folder), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["files_read"] == 6 and len(data["errors"]) == 1 and "corrupt PNG" in data["errors"][0]["error"]
    rows = {(r["kind"], r["name"]): r for r in data["resources"]}
    ckpt = rows[("checkpoint", "mine")]
    assert ckpt["state"] == "have" and ckpt["path"] == str(world["have_path"]) and ckpt["count"] == 6
    lora = rows[("lora", "pixel")]
    assert lora["state"] == "fetchable" and lora["install_ref"] == "civitai:1001@2002" and lora["weight"] == 0.8
    assert lora["count"] == 5
    missing = [r for r in data["resources"] if r["hash"] == "0123456789ab"][0]
    assert missing["state"] == "unknown" and missing["install_ref"] is None
    mystery = rows[("lora", "mystery")]
    assert mystery["state"] == "unknown" and mystery["note"] == "named only, no hash or link"
    assert data["resources"][0]["name"] == "mine"  # most used first
    assert by_hash_requests(world) == 2  # the LoRA hash and the unknown one; the catalogued one not at all
    again = run_cli("resources", str(folder), "--json")  # answers remembered on disk: no request at all
    rows = {(r["kind"], r["name"]): r for r in json.loads(again.stdout)["resources"]}
    assert rows[("lora", "pixel")]["install_ref"] == "civitai:1001@2002"
    assert [r for r in json.loads(again.stdout)["resources"] if r["hash"] == "0123456789ab"][0]["state"] == "unknown"
    assert by_hash_requests(world) == 2


def test_resources_workflow_refs_and_hosts(run_cli, world, tmp_path):
    hf = world["hf"].endpoints[0]
    models = [{"name": "ae.safetensors", "url": f"{hf}/acme/flux/resolve/main/ae.safetensors", "directory": "vae"},
              {"name": "evil.safetensors", "url": "https://evil.example/evil.safetensors", "directory": "loras"}]
    wf = write_json(tmp_path / "wf.json", comfy_ui(top_models=models))
    result = run_cli("resources", str(wf), "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["resources"]}
    assert rows["ae.safetensors"]["state"] == "fetchable" and rows["ae.safetensors"]["source"] == "hf"
    assert rows["evil.safetensors"]["state"] == "unknown" and "--allow-host evil.example" in rows["evil.safetensors"]["note"]
    assert rows["sd_xl_base_1.0.safetensors"]["state"] == "unknown"
    api = write_json(tmp_path / "api.json", comfy_api(ckpt="mine.safetensors"))
    rows = {r["name"]: r for r in json.loads(run_cli("resources", str(api), "--json").stdout)["resources"]}
    assert rows["mine.safetensors"]["state"] == "have"  # exact file name in the catalogue
    close = {r["name"]: r for r in json.loads(run_cli("resources", str(write_json(
        tmp_path / "api2.json", comfy_api(ckpt="mine-v2.safetensors"))), "--json").stdout)["resources"]}
    assert close["mine-v2.safetensors"]["state"] == "unknown"  # never substituted...
    assert close["mine-v2.safetensors"]["closest"] == [str(world["have_path"])]  # ...only listed
    assert by_hash_requests(world) == 0


def test_resources_bad_inputs_one_line_each(run_cli, world, tmp_path):
    (tmp_path / "bad.json").write_text("not json")
    plain = tmp_path / "nometa.png"
    from PIL import Image
    Image.new("RGB", (4, 4)).save(plain)
    good = png(tmp_path / "good.png", prompt=json.dumps(comfy_api()))
    result = run_cli("resources", str(tmp_path / "bad.json"), str(plain), str(good), str(tmp_path / "gone.png"))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 3 and "not JSON" in errors[0] and "no metadata" in errors[1] and "no such" in errors[2]
    assert "Traceback" not in result.output
    assert "sd_xl_base_1.0.safetensors" in result.stdout


# -- install --from ---------------------------------------------------------------------------------


def _scene(world, tmp_path, *, ae_hash: str | None = None, extra_models=()):
    hf = world["hf"].endpoints[0]
    ae = {"name": "ae.safetensors", "url": f"{hf}/acme/flux/resolve/main/ae.safetensors", "directory": "vae"}
    if ae_hash:
        ae["hash"], ae["hash_type"] = ae_hash, "SHA256"
    wf = write_json(tmp_path / "wf.json", comfy_ui(top_models=[ae, *extra_models]))
    api = comfy_api(ckpt="mine.safetensors")
    api = {k: v for k, v in api.items() if k in ("4", "3")}  # a checkpoint we have, nothing else
    lora_v3 = civitai_hashes(world["lora"])["AutoV3"].lower()
    img = png(tmp_path / "img.png", prompt=json.dumps(api),
              parameters=f"x <lora:pixel:0.7>\nSteps: 5, Seed: 1, Lora hashes: \"pixel: {lora_v3}\"")
    return wf, img


def test_install_from_into_comfyui_places_each_file(run_cli, world, tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    wf, img = _scene(world, tmp_path, ae_hash=hashlib.sha256(world["hf_file"]).hexdigest())
    dry = run_cli("install", "--from", str(wf), "--from", str(img), "--into", f"comfyui={comfy}", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = {r["name"]: r for r in json.loads(dry.stdout)["results"]}
    assert planned["ae.safetensors"]["outcome"] == "planned"
    assert planned["ae.safetensors"]["placed"] == str(comfy / "models" / "vae" / "ae.safetensors")
    assert not (comfy / "models").exists()  # a dry run writes nothing
    with Hub() as h:
        assert len(h.list()) == 1
    result = run_cli("install", "--from", str(wf), "--from", str(img), "--into", f"comfyui={comfy}", "--json")
    assert result.exit_code == 0, result.output  # the unknown ones are reported, not guessed, not failures
    rows = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert rows["ae.safetensors"]["outcome"] == "installed"
    assert (comfy / "models/vae/ae.safetensors").read_bytes() == world["hf_file"]
    assert rows["pixel"]["outcome"] == "installed"
    assert (comfy / "models/loras/pixel-art-xl.safetensors").read_bytes() == world["lora"]
    assert rows["mine.safetensors"]["outcome"] == "have"
    assert (comfy / "models/checkpoints/mine.safetensors").samefile(world["have_path"])
    assert rows["sd_xl_base_1.0.safetensors"]["outcome"] == "unknown"
    assert not (comfy / "models/checkpoints/sd_xl_base_1.0.safetensors").exists()
    with Hub() as h:
        assert len(h.list()) == 3
    again = run_cli("install", "--from", str(img), "--into", f"comfyui={comfy}", "--json")
    assert again.exit_code == 0, again.output
    assert {r["outcome"] for r in json.loads(again.stdout)["results"]} == {"have"}


def test_install_from_workflow_hash_must_match(run_cli, world, tmp_path):
    wf, _img = _scene(world, tmp_path, ae_hash="ab" * 32)
    result = run_cli("install", "--from", str(wf))
    assert result.exit_code == 1
    assert any("names SHA-256 " + "ab" * 32 in line for line in result.stderr.splitlines() if line.startswith("Error:"))
    with Hub() as h:
        assert [r.name for r in h.list()] == ["mine.safetensors"]  # nothing downloaded


def test_install_from_unknown_host_needs_allow_host(run_cli, world, tmp_path):
    from tests.fake_http import FakeServer, ServedFile

    data = sdxl_lora_bytes(tmp_path, seed=31)
    other = FakeServer("elsewhere")
    served = ServedFile(data, filename="far.safetensors")
    other.route("GET", r"/files/far.safetensors")(served.reply)
    other.start()
    try:
        url = f"{other.url}/files/far.safetensors"
        wf = write_json(tmp_path / "far.json", {"nodes": [], "models": [
            {"name": "far.safetensors", "url": url, "directory": "loras", "hash": hashlib.sha256(data).hexdigest()}]})
        refused = run_cli("install", "--from", str(wf))
        assert refused.exit_code == 0 and "--allow-host 127.0.0.1" in refused.stdout
        assert other.requests("/files") == []
        comfy = tmp_path / "C"
        comfy.mkdir()
        (tmp_path / "sdhub-home").mkdir(exist_ok=True)
        (tmp_path / "sdhub-home" / "config.toml").write_text(f'[ui]\ncomfyui = "{comfy}"\n')
        ok = run_cli("install", "--from", str(wf), "--allow-host", "127.0.0.1", "--into", "comfyui", "--json")
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["results"][0]["outcome"] == "installed"
        assert (comfy / "models/loras/far.safetensors").read_bytes() == data
    finally:
        other.stop()


def test_install_from_bad_into(run_cli, world, tmp_path):
    wf, _img = _scene(world, tmp_path)
    for into, msg in (("comfyui", "where is comfyui"), ("krita=/x", "unknown UI"), (f"a1111={tmp_path}/nope", "not a folder")):
        result = run_cli("install", "--from", str(wf), "--into", into)
        assert result.exit_code != 0 and msg in result.stderr and "Traceback" not in result.output
    with Hub() as h:
        assert len(h.list()) == 1

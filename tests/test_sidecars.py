"""Sidecars other tools keep beside a model are read on `sdhub scan`, offline, once, with where each fact came from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from safetensors_files import SDXL_LORA_KOHYA, write_safetensors
from test_scan import catalogue_backend  # noqa: F401  (SQLite, and PostgreSQL where one is set up)


@pytest.fixture
def a1111(tmp_path: Path) -> Path:
    root = tmp_path / "webui" / "models" / "Lora"
    lora = root / "pixel_style.safetensors"
    write_safetensors(lora, SDXL_LORA_KOHYA, {"ss_output_name": "pixel_style"}, fill=b"\x07")
    sha = hashlib.sha256(lora.read_bytes()).hexdigest()
    (root / "pixel_style.civitai.info").write_text(json.dumps({
        "id": 456, "modelId": 123, "name": "v1.0", "baseModel": "SDXL 1.0", "trainedWords": ["pixel art", "8bit"],
        "model": {"name": "Pixel Style", "type": "LORA", "nsfw": False},
        "files": [{"name": "pixel_style.safetensors", "primary": True, "hashes": {"SHA256": sha.upper()}}],
    }, indent=4))
    (root / "pixel_style.json").write_text(json.dumps({
        "activation text": "pixel art, 8bit", "preferred weight": 0.8, "negative text": "blurry",
        "notes": "my favourite", "sd version": "SDXL"}, indent=4))
    (root / "pixel_style.preview.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    # A second LoRA whose Stability Matrix sidecar names other bytes.
    other = root / "liar.safetensors"
    write_safetensors(other, SDXL_LORA_KOHYA, {"ss_output_name": "liar"}, fill=b"\x09")
    (root / "liar.cm-info.json").write_text(json.dumps({
        "ModelId": 9, "VersionId": 10, "ModelName": "Not This", "TrainedWords": ["wrong"],
        "Hashes": {"SHA256": "ab" * 32}}))
    (root / "liar.metadata.json").write_text(json.dumps({
        "model_name": "Liar LM", "notes": "lm notes", "usage_tips": "{\"strength\": 0.6}", "base_model": "SDXL 1.0"}))
    return root


def _scan(run_cli, path: Path):  # type: ignore[no-untyped-def]
    result = run_cli("scan", "--json", str(path))
    return result, json.loads(result.stdout)


def test_scan_reads_sidecars_with_provenance(run_cli, a1111: Path) -> None:  # type: ignore[no-untyped-def]
    result, report = _scan(run_cli, a1111)
    assert report["summary"]["added"] == 2
    info = json.loads(run_cli("info", "--json", str(a1111 / "pixel_style.safetensors")).stdout)
    meta = info["metadata"]
    assert meta["model_id"] == {"value": "123", "from": str(a1111 / "pixel_style.civitai.info")}
    assert meta["trained_words"]["value"] == ["pixel art", "8bit"]
    assert meta["base_model"]["value"] == "SDXL 1.0"
    assert meta["notes"] == {"value": "my favourite", "from": str(a1111 / "pixel_style.json")}
    assert meta["preferred_weight"]["value"] == 0.8 and meta["negative_text"]["value"] == "blurry"
    assert meta["sd_version"]["value"] == "SDXL"
    assert meta["preview"]["value"] == str(a1111 / "pixel_style.preview.png")
    assert {s["format"] for s in info["sidecars"]} == {"civitai_info", "a1111", "preview"}
    # The Civitai ids are linked as a source (offline), so `list --source civitai` and search find it.
    assert [s["model_id"] for s in info["sources"]] == ["123"]
    found = json.loads(run_cli("list", "--json", "--source", "civitai").stdout)
    assert [r["name"] for r in found] == ["pixel_style.safetensors"]
    assert json.loads(run_cli("list", "--json", "-t", "8bit").stdout)[0]["metadata"]["model_name"]["value"] == \
        "Pixel Style"


def test_a_contradicting_sidecar_is_reported_not_trusted(run_cli, a1111: Path) -> None:  # type: ignore[no-untyped-def]
    result, report = _scan(run_cli, a1111)
    bad = [e for e in report["files"] if e["status"] == "distrusted"]
    assert [Path(e["path"]).name for e in bad] == ["liar.cm-info.json"]
    assert "SHA256" in bad[0]["message"]
    assert report["summary"]["distrusted"] == 1
    info = json.loads(run_cli("info", "--json", str(a1111 / "liar.safetensors")).stdout)
    assert info["sources"] == []
    assert "wrong" not in json.dumps(info["metadata"])
    assert info["metadata"]["model_name"]["value"] == "Liar LM"  # the Lora-Manager sidecar has no hash: kept
    assert info["metadata"]["preferred_weight"]["value"] == 0.6
    problems = [s for s in info["sidecars"] if s["problem"]]
    assert len(problems) == 1 and problems[0]["problem"].startswith("not trusted")


def test_each_sidecar_is_read_once(run_cli, a1111: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, a1111)
    from hub.interop import sidecars

    calls: list[str] = []
    real = sidecars.read_sidecar

    def counting(fmt, path, name):  # type: ignore[no-untyped-def]
        calls.append(str(path))
        return real(fmt, path, name)

    monkeypatch.setattr(sidecars, "read_sidecar", counting)
    _scan(run_cli, a1111)
    assert calls == []
    note = a1111 / "pixel_style.json"
    note.write_text(json.dumps({"notes": "changed my mind"}))
    _, report = _scan(run_cli, a1111)
    assert report["summary"]["unchanged"] == 2
    assert sorted(Path(c).name for c in calls) == ["pixel_style.civitai.info", "pixel_style.json",
                                                   "pixel_style.preview.png"]
    info = json.loads(run_cli("info", "--json", str(a1111 / "pixel_style.safetensors")).stdout)
    assert info["metadata"]["notes"]["value"] == "changed my mind"
    note.unlink()
    _scan(run_cli, a1111)
    info = json.loads(run_cli("info", "--json", str(a1111 / "pixel_style.safetensors")).stdout)
    assert "notes" not in info["metadata"] and len(info["sidecars"]) == 2


def test_parsers(tmp_path: Path) -> None:
    from hub.interop.sidecars import contradiction, find_sidecars, read_sidecar

    swarm = tmp_path / "foo.swarm.json"
    swarm.write_text(json.dumps({"modelspec.title": "Foo", "modelspec.trigger_phrase": "foo style",
                                 "modelspec.hash_sha256": "0x" + "cd" * 32, "modelspec.lora_default_weight": "0.7"}))
    data = read_sidecar("swarm", swarm, "foo.safetensors")
    assert data["model_name"] == "Foo" and data["trained_words"] == ["foo style"] and data["preferred_weight"] == 0.7
    assert data["hashes"] == {"autov3": "cd" * 32}
    assert contradiction(data["hashes"], {"autov3": "cd" * 32}) is None
    assert "AUTOV3" in (contradiction(data["hashes"], {"autov3": "ef" * 32}) or "")
    broken = tmp_path / "foo.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        read_sidecar("a1111", broken, "foo.safetensors")
    (tmp_path / "foo.safetensors").write_bytes(b"")
    (tmp_path / "foo.jpg").write_bytes(b"")
    assert [f for f, _ in find_sidecars(tmp_path / "foo.safetensors")] == ["swarm", "a1111", "preview"]

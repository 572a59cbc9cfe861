"""`sdhub scan --hf-cache`: the user's Hugging Face cache registered in place, with repo, revision and path."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


def test_scan_hf_cache_registers_in_place(run_cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--acme--pixel"
    blob = write_safetensors(repo / "blobs" / ("ab" * 20), SDXL_LORA_KOHYA, {"ss_output_name": "p"}, fill=b"\x05")
    snap = repo / "snapshots" / ("c" * 40) / "loras"
    snap.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snap), snap / "pixel.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    result = run_cli("scan", "--hf-cache", "--json")
    assert result.exit_code == 0, result.output
    [entry] = [e for e in json.loads(result.stdout)["files"] if e["status"] == "added"]
    assert entry["path"] == str((snap / "pixel.safetensors").parent.resolve() / "pixel.safetensors")
    [rec] = json.loads(run_cli("list", "--json", "--source", "hf").stdout)
    [src] = rec["sources"]
    assert (src["model_id"], src["version_id"]) == ("acme/pixel", "c" * 40)
    again = json.loads(run_cli("scan", "--hf-cache", "--json").stdout)
    assert again["summary"]["unchanged"] == 1
    assert len(json.loads(run_cli("list", "--json", "--source", "hf").stdout)[0]["sources"]) == 1

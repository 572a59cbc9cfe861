"""Installs write the sidecars UIs read and link the new file into the [ui] folders (or --into)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fake_civitai import fake_civitai  # noqa: F401
from tests.fake_hf import fake_hub  # noqa: F401
from tests.fake_liblib import fake_liblib  # noqa: F401
from tests.test_install_cli import world  # noqa: F401


def test_install_writes_sidecars_and_links_into_ui(world, run_cli, tmp_path: Path, sdhub_home: Path):  # type: ignore[no-untyped-def]
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / "folder_paths.py").write_text("")
    sdhub_home.mkdir(parents=True, exist_ok=True)
    (sdhub_home / "config.toml").write_text(f'[ui]\ncomfyui = "{comfy}"\n\n[sidecars]\npreview = false\n')
    result = run_cli("install", "civitai:1001", "--json")
    assert result.exit_code == 0, result.output
    [out] = json.loads(result.stdout)
    model = Path(out["path"])
    info = json.loads(model.with_name("pixel-art-xl.civitai.info").read_text())
    assert info["id"] == 2002 and info["trainedWords"] == ["pixel art"]
    cm = json.loads(model.with_name("pixel-art-xl.cm-info.json").read_text())
    assert cm["ModelId"] == 1001 and cm["VersionId"] == 2002 and cm["Hashes"]["SHA256"] == out["record"]["hashes"]["sha256"].upper()
    link = comfy / "models" / "loras" / "pixel-art-xl.safetensors"
    assert link.is_symlink() and os.readlink(link) == str(model)
    assert any("ComfyUI: " in line for line in out["placed"])
    # The sidecars agree with the file: a scan of the store trusts them.
    scan = json.loads(run_cli("scan", "--json", str(model.parent)).stdout)
    assert scan["summary"]["distrusted"] == 0


def test_install_into_a_named_ui_folder(world, run_cli, tmp_path: Path):  # type: ignore[no-untyped-def]
    a1111 = tmp_path / "webui"
    (a1111 / "models" / "Lora").mkdir(parents=True)
    (a1111 / "webui.py").write_text("")
    result = run_cli("install", "civitai:1001", "--into", f"a1111={a1111}")
    assert result.exit_code == 0, result.output
    assert (a1111 / "models" / "Lora" / "pixel-art-xl.safetensors").is_symlink()
    assert "AUTOMATIC1111: " in result.stdout

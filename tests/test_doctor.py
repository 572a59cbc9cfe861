"""`sdhub doctor [--fix]`: what is wrong, and only safe repairs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


def test_doctor_reports_and_fixes_only_what_is_safe(run_cli, tmp_path: Path, sdhub_home: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "m"
    a = write_safetensors(root / "a.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "a"}, fill=b"\x07")
    shutil.copy(a, root / "a_copy.safetensors")
    gone = write_safetensors(root / "gone.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "g"}, fill=b"\x08")
    ui = tmp_path / "ComfyUI"
    ui.mkdir()
    (ui / "folder_paths.py").write_text("")
    assert run_cli("scan", str(root)).exit_code == 0
    assert run_cli("link", str(ui), "--layout", "comfyui").exit_code == 0
    gone.unlink()
    incoming = sdhub_home / "models" / ".incoming"
    incoming.mkdir(parents=True)
    old_part = incoming / "x.safetensors.part"
    old_part.write_bytes(b"x" * 10)
    os.utime(old_part, (1, 1))
    (incoming / "fresh.safetensors.part").write_bytes(b"y")
    result = run_cli("doctor", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["summary"] == {"dangling-link": 1, "duplicate": 1, "missing": 1, "orphan-part": 2}
    dup = [f for f in report["findings"] if f["problem"] == "duplicate"][0]
    assert dup["wasted_bytes"] == a.stat().st_size
    text = run_cli("doctor", "--fix").stdout
    assert "fixed: removed the link sdhub made" in text and "fixed: removed (untouched for over a day)" in text
    assert not old_part.exists() and (incoming / "fresh.safetensors.part").exists()
    assert (root / "a_copy.safetensors").exists()  # a duplicate is reported, never deleted
    assert not (ui / "models" / "loras" / "gone.safetensors").is_symlink()

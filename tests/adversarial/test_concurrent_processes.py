"""Several sdhub processes on one SQLite catalogue at once (issue 18): scans of the same folder, installs
of the same and of different models. Each finishes (a writer waits for the other's transaction), none
prints "database is locked" or a traceback, and every file is catalogued exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adversarial_proc import run_sdhub
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors
from source_helpers import env_for, sdxl_lora_bytes
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401


def _together(*commands: list[str], timeout: float = 180) -> list[tuple[int, str, str]]:
    """Start every command at once, then collect (exit code, stdout, stderr) of each."""
    procs = [subprocess.Popen([sys.executable, "-c", "from hub.cli import main; main()", *cmd],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for cmd in commands]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"{proc.args} hung")
        results.append((proc.returncode, out, err))
    return results


def _clean(results: list[tuple[int, str, str]]) -> None:
    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in out + err and "locked" not in err.lower(), err


def _listed() -> list[dict]:  # type: ignore[type-arg]
    res = run_sdhub("list", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.timeout(300)
def test_two_scans_of_one_folder_catalogue_each_file_once(tmp_path: Path, sdhub_home: Path) -> None:
    folder = tmp_path / "models"
    for i in range(24):
        write_safetensors(folder / f"sub{i % 3}" / f"lora{i:02d}.safetensors", SDXL_LORA_KOHYA,
                          {"ss_base_model_version": "sdxl_base_v1-0"}, fill=bytes([i + 1, 9]))
    _clean(_together(["scan", str(folder)], ["scan", str(folder)], ["scan", str(folder / "sub1")]))
    paths = [r["path"] for r in _listed()]
    assert len(paths) == 24 and len(set(paths)) == 24


@pytest.fixture
def civ(fake_civitai, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for n in range(3):
        fake_civitai.add(CModel(1100 + n, f"LoRA {n}", "LORA", versions=[
            CVersion(1200 + n, "v1", "SDXL 1.0", files=[CFile(1300 + n, f"c{n}.safetensors",
                                                               sdxl_lora_bytes(tmp_path, seed=40 + n))])]))
    for k, v in env_for(civitai=fake_civitai).items():
        monkeypatch.setenv(k, v)
    return fake_civitai


@pytest.mark.timeout(300)
def test_concurrent_installs_and_a_scan_share_one_catalogue(civ, tmp_path: Path, sdhub_home: Path) -> None:
    folder = tmp_path / "local"
    for i in range(8):
        write_safetensors(folder / f"local{i}.safetensors", SDXL_LORA_KOHYA, fill=bytes([i + 60]))
    results = _together(
        ["install", "civitai:1100@1200", "civitai:1101@1201"],
        ["install", "civitai:1100@1200", "civitai:1102@1202"],  # the same model as the first, at the same time
        ["install", "civitai:1102@1202"],
        ["scan", str(folder)],
    )
    _clean(results)
    names = sorted(r["name"] for r in _listed())
    assert names == sorted(["c0.safetensors", "c1.safetensors", "c2.safetensors",
                            *(f"local{i}.safetensors" for i in range(8))])
    assert not list(sdhub_home.rglob("*.part"))
    store = [p.name for p in sdhub_home.rglob("c*.safetensors") if not p.is_symlink()]
    assert sorted(store) == ["c0.safetensors", "c1.safetensors", "c2.safetensors"]  # each downloaded into place once

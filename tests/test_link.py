"""`sdhub link`: the catalogue in a UI's own folders, idempotent, recorded, never touching a user's file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


@pytest.fixture
def store(tmp_path: Path, run_cli) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "store"
    write_safetensors(root / "a" / "pixel_style.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "p"}, fill=b"\x07")
    write_safetensors(root / "b" / "pixel_style.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "q"}, fill=b"\x08")
    write_safetensors(root / "a" / "ink.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "ink"}, fill=b"\x09")
    assert run_cli("scan", str(root)).exit_code == 0
    return root


@pytest.fixture
def comfy(tmp_path: Path) -> Path:
    ui = tmp_path / "ComfyUI"
    (ui / "models" / "loras").mkdir(parents=True)
    (ui / "folder_paths.py").write_text("# ComfyUI\n")
    return ui


def _link(run_cli, *args: str):  # type: ignore[no-untyped-def]
    result = run_cli("link", *args, "--json")
    return result, json.loads(result.stdout) if result.stdout.strip().startswith("{") else None


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = p.read_text(errors="replace")[:20]
    return out


def test_link_is_idempotent_and_says_the_mode(run_cli, store: Path, comfy: Path) -> None:  # type: ignore[no-untyped-def]
    result, report = _link(run_cli, str(comfy), "--layout", "comfyui")
    assert result.exit_code == 0, result.output
    assert report["summary"] == {"linked": 3} and report["modes_used"] == {"symlink": 3}
    loras = comfy / "models" / "loras"
    names = sorted(p.name for p in loras.iterdir())
    # Two different files called pixel_style: the second gets a deterministic suffix from its SHA256.
    assert names[0] == "ink.safetensors" and names[1] == "pixel_style-" + names[1].split("-")[1]
    assert "pixel_style.safetensors" in names and len(names) == 3
    assert os.readlink(loras / "pixel_style.safetensors") == str(store / "a" / "pixel_style.safetensors")
    before = _tree(comfy)
    result, report = _link(run_cli, str(comfy), "--layout", "comfyui")
    assert report["summary"] == {"unchanged": 3} and _tree(comfy) == before
    text = run_cli("link", str(comfy), "--layout", "comfyui").stdout
    assert "3 unchanged; 3 by symlink" in text


def test_not_a_ui_folder_is_refused_unless_forced(run_cli, store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "somewhere"
    target.mkdir()
    result = run_cli("link", str(target), "--layout", "a1111")
    assert result.exit_code == 1
    assert "does not look like a stable-diffusion-webui folder" in result.stderr and "--force" in result.stderr
    assert list(target.iterdir()) == []
    result, report = _link(run_cli, str(target), "--layout", "a1111", "--force", "--family-folders")
    assert result.exit_code == 0
    assert sorted(p.relative_to(target).as_posix() for p in (target / "models").rglob("*.safetensors"))[0] \
        .startswith("models/Lora/sdxl/")


def test_a_users_file_is_never_overwritten_and_prune_removes_only_ours(run_cli, store: Path, comfy: Path) -> None:  # type: ignore[no-untyped-def]
    loras = comfy / "models" / "loras"
    (loras / "ink.safetensors").write_text("the user's own")
    result, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--kind", "lora")
    assert (loras / "ink.safetensors").read_text() == "the user's own"
    ink = [e for e in report["entries"] if e["target"].endswith("ink.safetensors")]
    assert Path(ink[0]["path"]).name.startswith("ink-") and ink[0]["status"] == "linked"
    # --check: a foreign model file, a dangling link after the store file went away.
    (store / "a" / "pixel_style.safetensors").unlink()
    result, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--check")
    assert result.exit_code == 1
    states = {Path(e["path"]).name: e["status"] for e in report["entries"]}
    assert states["ink.safetensors"] == "foreign"
    assert states["pixel_style.safetensors"] == "dangling"
    # Forget the file; --prune removes sdhub's link, not the user's file.
    assert run_cli("rm", str(store / "a" / "pixel_style.safetensors")).exit_code == 0
    result, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--prune", "--dry-run")
    assert (loras / "pixel_style.safetensors").is_symlink()
    result, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--prune")
    assert [Path(e["path"]).name for e in report["entries"] if e["status"] == "pruned"] == ["pixel_style.safetensors"]
    assert not (loras / "pixel_style.safetensors").is_symlink()
    assert (loras / "ink.safetensors").read_text() == "the user's own"
    _, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--check")
    assert {e["status"] for e in report["entries"]} == {"unchanged", "foreign"}


def test_falls_back_to_hardlink_and_says_so(run_cli, store: Path, comfy: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    def no_symlinks(*a: object, **k: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    result = run_cli("link", str(comfy), "--layout", "comfyui")
    assert result.exit_code == 0
    assert "3 linked; 3 by hardlink" in result.stdout
    assert "symlink: Operation not permitted; used hardlink" in result.stderr
    link = comfy / "models" / "loras" / "ink.safetensors"
    assert not link.is_symlink() and link.stat().st_ino == (store / "a" / "ink.safetensors").stat().st_ino
    _, report = _link(run_cli, str(comfy), "--layout", "comfyui")
    assert report["summary"] == {"unchanged": 3}
    _, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--mode", "copy", "--kind", "nothing")
    assert report["summary"] == {}


def test_copy_mode_and_an_interrupted_run_is_finished(run_cli, store: Path, comfy: Path) -> None:  # type: ignore[no-untyped-def]
    loras = comfy / "models" / "loras"
    # An interrupted earlier run left a correct link that was never recorded: adopted, not duplicated.
    os.symlink(store / "a" / "ink.safetensors", loras / "ink.safetensors")
    _, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--mode", "copy")
    states = {Path(e["path"]).name: (e["status"], e["mode"]) for e in report["entries"]}
    assert states["ink.safetensors"] == ("adopted", "symlink")
    copied = [n for n, (s, m) in states.items() if m == "copy"]
    assert len(copied) == 2 and all(not (loras / n).is_symlink() for n in copied)
    assert not any(p.name.startswith(".sdhub-tmp-") for p in loras.iterdir())
    _, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--mode", "copy")
    assert report["summary"] == {"unchanged": 3}
    _, report = _link(run_cli, str(comfy), "--layout", "comfyui", "--dry-run", "--prune")
    assert report["summary"] == {"unchanged": 3}

"""Item 1 of issue 18: a FIFO (or other non-regular file) named like a model never blocks a command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adversarial_proc import run_sdhub


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "trap.safetensors"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", [["info"], ["identify"], ["hash"], ["identify", "--json"], ["info", "--json"]])
def test_fifo_is_refused_not_opened(fifo: Path, command: list[str]) -> None:
    result = run_sdhub(*command, fifo, timeout=60)
    assert result.returncode != 0
    assert "not a regular file" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_fifo_named_pt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trap.ckpt"
    os.mkfifo(path)
    result = run_sdhub("identify", path, timeout=60)
    assert result.returncode != 0 and "not a regular file" in result.stderr


def test_scan_lists_fifo_as_error_and_goes_on(tmp_path: Path) -> None:
    from safetensors_files import SDXL_LORA_KOHYA, write_safetensors

    root = tmp_path / "models"
    write_safetensors(root / "good.safetensors", SDXL_LORA_KOHYA, {"ss_base_model_version": "sdxl_base_v1-0"})
    os.mkfifo(root / "trap.safetensors")
    result = run_sdhub("scan", "--json", root, timeout=120)
    import json

    data = json.loads(result.stdout)
    by_name = {Path(e["path"]).name: e for e in data["files"]}
    assert by_name["trap.safetensors"]["status"] == "error"
    assert "not a regular file" in by_name["trap.safetensors"]["message"]
    assert by_name["good.safetensors"]["status"] == "added"
    assert result.returncode != 0  # an error entry makes the scan exit non-zero


def test_scan_of_fifo_itself(fifo: Path) -> None:
    result = run_sdhub("scan", fifo, timeout=60)
    assert result.returncode != 0 and "not a regular file" in result.stdout + result.stderr


def test_generate_with_fifo_model_is_refused(fifo: Path, tmp_path: Path) -> None:
    result = run_sdhub("generate", fifo, "-p", "x", "-o", tmp_path / "out.png", timeout=120)
    assert result.returncode != 0 and "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_api_register_refuses_fifo(fifo: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    from hub.errors import FileAccessError

    with pytest.raises(FileAccessError, match="not a regular file"):
        hub_instance.register_file(fifo)
    assert hub_instance.list() == []


def test_read_header_refuses_device() -> None:
    from hub.errors import FileAccessError
    from hub.files.safetensors_header import read_header

    with pytest.raises(FileAccessError, match="not a regular file"):
        read_header("/dev/zero")


def test_generate_with_fifo_lora_is_refused(tmp_path: Path) -> None:
    from safetensors_files import SD15_UNET_MARKERS, write_safetensors

    model = write_safetensors(tmp_path / "m.safetensors", SD15_UNET_MARKERS)
    lora = tmp_path / "l.safetensors"
    os.mkfifo(lora)
    result = run_sdhub("generate", model, "--family", "sd1", "--lora", lora, "-p", "x", "--offline", timeout=120)
    assert result.returncode == 1
    assert f"Error: {lora}: not a regular file (a named pipe)" in result.stderr and "Traceback" not in result.stderr

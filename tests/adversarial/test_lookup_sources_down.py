"""Item 8 of issue 18: `lookup` when sources are down: every source's error shown, exit 1 in JSON mode too."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


def _dead_url() -> str:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def sources_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDHUB_CIVITAI_URL", _dead_url())
    monkeypatch.setenv("SDHUB_LIBLIB_URL", _dead_url())
    monkeypatch.setenv("SDHUB_LIBLIB_OPENAPI_URL", _dead_url())
    monkeypatch.setenv("SDHUB_HF_ENDPOINTS", _dead_url())


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_safetensors(tmp_path / "lora.safetensors", SDXL_LORA_KOHYA,
                             {"ss_base_model_version": "sdxl_base_v1-0"}, fill=b"\x05")


def test_lookup_json_exits_1_when_every_file_failed(run_cli, sources_down, model: Path) -> None:
    t0 = time.monotonic()
    res = run_cli("lookup", model, "--json")
    assert time.monotonic() - t0 < 60
    assert res.exit_code == 1
    [entry] = json.loads(res.stdout)
    assert entry["found"] == [] and entry["error"]
    assert "Traceback" not in res.output


def test_lookup_names_every_source_that_is_down(run_cli, sources_down, model: Path) -> None:
    res = run_cli("lookup", model, "--json")
    error = json.loads(res.stdout)[0]["error"]
    assert "civitai" in error and "liblib" in error, error
    text = run_cli("lookup", model)
    assert text.exit_code == 1 and "civitai" in text.stdout and "liblib" in text.stdout

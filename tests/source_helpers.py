"""Shared helpers for the source tests: a SourceContext aimed at fake servers, and small model files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from hub.config import load_settings
from hub.sources.download import RetryPolicy
from hub.sources.protocol import SourceContext
from tests.safetensors_files import SDXL_LORA_KOHYA, write_safetensors

FAST_RETRY = RetryPolicy(attempts=3, base_wait=0.01, max_wait=0.05)


def make_ctx(connections: int = 1, **env: str) -> SourceContext:
    """A context whose settings come from the real loader, with ``env`` overriding the process env."""
    merged = dict(os.environ)
    merged.update(env)
    settings = load_settings(merged)
    return SourceContext.create(settings, retry=dataclasses.replace(FAST_RETRY), connections=connections, timeout=(2.0, 5.0))


def sdxl_lora_bytes(tmp: Path, seed: int = 1, name: str = "lora.safetensors") -> bytes:
    """A small real kohya SDXL LoRA (real key names and shapes; filled data, so hashes differ by seed)."""
    path = write_safetensors(tmp / f"seed{seed}-{name}", SDXL_LORA_KOHYA,
                             metadata={"ss_base_model_version": "sdxl_base_v1-0"},
                             fill=bytes([seed % 251 + 1, 7, 3]))
    data = path.read_bytes()
    path.unlink()
    return data


def env_for(**servers: Any) -> dict[str, str]:
    env: dict[str, str] = {}
    if "civitai" in servers:
        env["SDHUB_CIVITAI_URL"] = servers["civitai"].api.url
    if "liblib" in servers:
        env["SDHUB_LIBLIB_URL"] = servers["liblib"].site.url
        env["SDHUB_LIBLIB_OPENAPI_URL"] = servers["liblib"].openapi.url
    if "hf" in servers:
        env["SDHUB_HF_ENDPOINTS"] = ",".join(servers["hf"])
    return env

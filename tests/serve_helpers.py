"""Running ``sdhub serve``'s app for real (uvicorn on a loopback port, on a thread) and filling a store for it."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from headers import write_tensors

# A tiny but valid safetensors file with real bytes (so Range and hashes mean something).
SMALL_TENSORS = {
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": ("F16", [4, 320]),
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": ("F16", [320, 4]),
}


def write_model(path: Path, salt: str = "") -> tuple[Path, str]:
    """A small model file at ``path`` (``salt`` makes its bytes differ) and its SHA256."""
    write_tensors(path, SMALL_TENSORS, {"salt": salt} if salt else None)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def running_server(hub: Any, **options: Any) -> Iterator[Any]:
    """``create_app(hub, **options)`` served on 127.0.0.1 at a free port; yields the BackgroundServer (``.url``)."""
    from hub.server.app import create_app
    from hub.server.runner import BackgroundServer

    with BackgroundServer(create_app(hub, **options)) as server:
        yield server

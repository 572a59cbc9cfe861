"""Real GGUF files for the tests, written by the gguf package's own GGUFWriter (llama.cpp's gguf-py).

The header (metadata and tensor infos) is exactly what GGUFWriter writes; the data region is a hole of
the true size (``truncate``), so a quantised Flux costs a few hundred KB of disk. Tensor names and shapes
come from the full-size specs (``tests/data/headers``), as ComfyUI-GGUF's convert.py keeps them: original
names without the ``model.diffusion_model.`` prefix, 2-D weights quantised where their rows fit the block
size, and a reshaped tensor's shape before reshaping in ``comfy.gguf.orig_shape.<name>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

gguf = pytest.importorskip("gguf")  # in the dev extra
import numpy as np  # noqa: E402

Tensors = dict[str, tuple[str, list[int]]]


def nbytes(qtype: str, shape: list[int]) -> int:
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    n = int(np.prod(shape)) if shape else 1
    return -(-n // block) * size


def write_gguf(path: Path, arch: str, tensors: Tensors, metadata: dict[str, Any] | None = None,
               orig_shapes: dict[str, list[int]] | None = None, cut: int = 0) -> Path:
    """A GGUF file of ``tensors`` ({name: (ggml type, torch shape)}); ``cut`` bytes short of its true size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in (metadata or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
    for name, shape in (orig_shapes or {}).items():
        writer.add_array(f"comfy.gguf.orig_shape.{name}", shape)
    for name, (qtype, shape) in tensors.items():
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(qtype, shape),
                               raw_dtype=gguf.GGMLQuantizationType[qtype])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    size = path.stat().st_size
    data_start = -(-size // 32) * 32
    total = 0
    for qtype, shape in tensors.values():
        total = -(-total // 32) * 32 + nbytes(qtype, shape)
    with open(path, "r+b") as f:
        f.truncate(data_start + total - cut)
    return path


def quantise(tensors: dict[str, tuple[str, list[int]]], qtype: str, strip: str = "") -> Tensors:
    """ComfyUI-GGUF's choice: 2-D weights whose rows fit ``qtype``'s block are quantised, the rest F16/F32."""
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]][0]
    out: Tensors = {}
    for name, (dtype, shape) in tensors.items():
        if not name.startswith(strip):
            continue
        key = name[len(strip):]
        if len(shape) == 2 and shape[-1] % block == 0 and name.endswith(".weight"):
            out[key] = (qtype, list(shape))
        elif len(shape) <= 1:
            out[key] = ("F32", list(shape))
        else:
            out[key] = ("F16", list(shape))
    return out

"""Build model files for the identification tests: sparse full-size safetensors and tiny real ones.

The full-size specs in ``tests/data/headers/*.json.gz`` come from ``tests/make_headers.py`` (real model
classes on the meta device, original-layout names). ``write_sparse`` turns one into a valid
safetensors file whose header is real and whose data region is a hole (``truncate``), so a 24 GB
Flux file costs a few hundred KB of disk and the container's size checks still pass.
"""

from __future__ import annotations

import gzip
import json
import math
import struct
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data" / "headers"

DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "I16": 16, "U16": 16, "F16": 16,
              "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64}

Tensors = dict[str, tuple[str, list[int]]]


def fixture_names() -> list[str]:
    return sorted(p.name.removesuffix(".json.gz") for p in DATA_DIR.glob("*.json.gz"))


@cache
def _load(name: str) -> str:
    return gzip.decompress((DATA_DIR / f"{name}.json.gz").read_bytes()).decode()


def load_spec(name: str) -> dict[str, Any]:
    """``{"about", "metadata", "tensors": {name: [dtype, shape]}}`` (a fresh copy each call)."""
    return json.loads(_load(name))


def header_bytes(tensors: Tensors, metadata: dict[str, str] | None = None) -> tuple[bytes, int]:
    """The 8-byte length + padded JSON header, and the size of the data region it describes."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name in sorted(tensors):
        dtype, shape = tensors[name]
        nbytes = math.prod(shape) * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the writer pads the header to a multiple of 8 with spaces
    return struct.pack("<Q", len(raw)) + raw, offset


def write_sparse(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> Path:
    """A valid safetensors file of the true size whose data region is a hole."""
    head, data_size = header_bytes(tensors, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + data_size)
    return path


def write_fixture(directory: Path, name: str, filename: str | None = None,
                  metadata: dict[str, str] | None = None, drop_metadata: bool = False) -> Path:
    """Write fixture ``name`` as a sparse file; ``metadata`` replaces/extends the stored metadata."""
    spec = load_spec(name)
    meta = {} if drop_metadata else dict(spec["metadata"])
    if metadata:
        meta.update(metadata)
    tensors = {k: (d, s) for k, (d, s) in spec["tensors"].items()}
    return write_sparse(directory / (filename or f"{name}.safetensors"), tensors, meta or None)


def write_tensors(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> Path:
    """A small file with real (deterministic, non-zero) data bytes: for code that reads the data too."""
    head, data_size = header_bytes(tensors, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = bytes(range(1, 251))
    data = (pattern * (data_size // len(pattern) + 1))[:data_size]
    path.write_bytes(head + data)
    return path


def raw_header_file(path: Path, header_json: bytes, data_size: int = 0, length: int | None = None) -> Path:
    """A file with an arbitrary (possibly invalid) header: for the bad-input tests."""
    n = len(header_json) if length is None else length
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + header_json)
        f.truncate(8 + len(header_json) + data_size)
    return path

"""GGUF headers (llama.cpp / ComfyUI-GGUF files): metadata and tensor list, never the tensor data.

The layout (ggml's docs/gguf.md, versions 2 and 3; little-endian)::

    "GGUF"  u32 version  u64 tensor_count  u64 kv_count
    kv_count x  (string key, u32 value_type, value)       string = u64 length + UTF-8 bytes
    tensor_count x  (string name, u32 n_dims, u64 x n_dims ne, u32 ggml_type, u64 offset)

``ne`` lists dimensions innermost first, so the PyTorch shape is ``ne`` reversed. ComfyUI-GGUF keeps a
tensor's shape before it reshaped it for quantisation in ``comfy.gguf.orig_shape.<name>``, which wins.
Every count and length is checked against the bytes that remain before anything is allocated, so a
damaged or hostile file fails with one :class:`hub.errors.ModelFileError` naming it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import EmptyFileError, FileAccessError, InvalidHeaderError, TruncatedFileError, UnsupportedFormatError
from .regular import open_regular

MAGIC = b"GGUF"
#: The ggml tensor types (ggml.h ``enum ggml_type``).
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
              11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
              18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8",
              25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
              39: "MXFP4"}
#: (elements per block, bytes per block) of the types whose size the truncation check knows (ggml-common.h).
GGML_BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "F64": (1, 8), "I8": (1, 1), "I16": (1, 2),
               "I32": (1, 4), "I64": (1, 8), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24),
               "Q8_0": (32, 34), "Q8_1": (32, 36), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144),
               "Q5_K": (256, 176), "Q6_K": (256, 210), "Q8_K": (256, 292)}
# value_type -> struct format of a scalar
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
#: Bounds far above real files (a Flux GGUF has ~780 tensors and ~10 keys; an LLM's vocabulary
#: array 150,000 strings), far below what would exhaust memory.
MAX_TENSORS = 1_000_000
MAX_KEYS = 100_000
MAX_ARRAY = 10_000_000
MAX_STRING = 16 * 1024 * 1024
MAX_DIMS = 8
#: Metadata values kept (arrays longer than this, such as tokenizer vocabularies, are summarised).
KEEP_ARRAY = 64


@dataclass
class GGUFTensor:
    name: str
    shape: list[int]
    type: str
    offset: int


@dataclass
class GGUFHeader:
    version: int
    tensors: list[GGUFTensor] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    header_size: int = 0

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None


class _Reader:
    """Sequential reads over a descriptor with a buffer, each checked against the file's size."""

    def __init__(self, fd: int, size: int, path: str) -> None:
        self.fd, self.size, self.path = fd, size, path
        self.pos = 0
        self.buf = b""
        self.buf_start = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise TruncatedFileError(self.path, f"GGUF header ends inside {what} (offset {self.pos:,}, file "
                                                f"{self.size:,} bytes)")
        end = self.pos + n
        if not (self.buf_start <= self.pos and end <= self.buf_start + len(self.buf)):
            chunk = max(n, 1 << 20)
            try:
                self.buf = os.pread(self.fd, min(chunk, self.size - self.pos), self.pos)
            except OSError as exc:
                raise FileAccessError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            self.buf_start = self.pos
            if len(self.buf) < n:
                raise TruncatedFileError(self.path, f"GGUF header ends inside {what}")
        out = self.buf[self.pos - self.buf_start: end - self.buf_start]
        self.pos = end
        return out

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("<Q", what)
        if n > MAX_STRING:
            raise InvalidHeaderError(self.path, f"GGUF {what} claims {n:,} bytes (limit {MAX_STRING:,})")
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHeaderError(self.path, f"GGUF {what} is not UTF-8") from None

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY and depth < 2:
            itype = self.unpack("<I", what)
            count = self.unpack("<Q", what)
            if count > MAX_ARRAY:
                raise InvalidHeaderError(self.path, f"GGUF {what} array claims {count:,} items")
            if itype in _SCALARS and count > KEEP_ARRAY:  # skip without decoding (vocabulary scores...)
                self.take(count * struct.calcsize(_SCALARS[itype]), what)
                return f"<{count} values>"
            items = [self.value(itype, what, depth + 1) for _ in range(count)]
            return items if count <= KEEP_ARRAY else f"<{count} values>"
        raise InvalidHeaderError(self.path, f"GGUF {what} has unknown value type {vtype}")


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse the GGUF header at ``path`` (raises a ModelFileError subclass naming the file and the reason)."""
    p = os.fspath(path)
    fd = open_regular(p)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise EmptyFileError(p, "the file is empty (0 bytes)")
        r = _Reader(fd, size, p)
        if r.take(min(4, size), "the magic") != MAGIC:
            raise UnsupportedFormatError(p, "not a GGUF file (no GGUF magic)")
        version = r.unpack("<I", "the version")
        if version not in (2, 3):
            raise InvalidHeaderError(p, f"GGUF version {version} is not read (versions 2 and 3 are)")
        n_tensors = r.unpack("<Q", "the tensor count")
        n_keys = r.unpack("<Q", "the metadata count")
        if n_tensors > MAX_TENSORS or n_keys > MAX_KEYS:
            raise InvalidHeaderError(p, f"GGUF header claims {n_tensors:,} tensors and {n_keys:,} metadata keys")
        header = GGUFHeader(version)
        for _ in range(n_keys):
            key = r.string("a metadata key")
            vtype = r.unpack("<I", f"metadata {key!r}")
            header.metadata[key] = r.value(vtype, f"metadata {key!r}")
        seen: set[str] = set()
        for _ in range(n_tensors):
            name = r.string("a tensor name")
            n_dims = r.unpack("<I", f"tensor {name!r}")
            if n_dims > MAX_DIMS:
                raise InvalidHeaderError(p, f"GGUF tensor {name!r} has {n_dims} dimensions")
            ne = [r.unpack("<Q", f"tensor {name!r}") for _ in range(n_dims)]
            ttype = r.unpack("<I", f"tensor {name!r}")
            offset = r.unpack("<Q", f"tensor {name!r}")
            if name in seen:
                raise InvalidHeaderError(p, f"GGUF tensor {name!r} is listed twice")
            seen.add(name)
            shape = list(reversed(ne))
            orig = header.metadata.get(f"comfy.gguf.orig_shape.{name}")
            if isinstance(orig, list) and all(isinstance(d, int) for d in orig):
                shape = list(orig)
            header.tensors.append(GGUFTensor(name, shape, GGML_TYPES.get(ttype, f"type_{ttype}"), offset))
        header.header_size = r.pos
        _check_data_fits(header, size, p)
        return header
    finally:
        os.close(fd)


def _check_data_fits(header: GGUFHeader, size: int, path: str) -> None:
    """The tensor data the header describes must lie inside the file (an interrupted download does not)."""
    align = header.metadata.get("general.alignment", 32)
    align = align if isinstance(align, int) and 0 < align <= 1 << 20 else 32
    start = -(-header.header_size // align) * align
    end = start
    for t in header.tensors:
        block = GGML_BLOCKS.get(t.type)
        if block is None:
            continue
        numel = 1
        for d in t.shape:
            numel *= d
        end = max(end, start + t.offset + -(-numel // block[0]) * block[1])
    if end > size:
        raise TruncatedFileError(path, f"GGUF tensor data ends at byte {end:,} but the file has {size:,}: "
                                       "an interrupted download or copy")


def is_gguf_name(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(".gguf")

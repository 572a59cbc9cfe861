"""Read and validate a safetensors header without touching tensor data.

Reads the 8-byte length and the JSON header only, then enforces the same rules as the reference
Rust implementation (``safetensors/src/tensor.rs``): header length limit, UTF-8 JSON object starting
with ``{``, known dtypes, integer shapes, string-only ``__metadata__``, no duplicate keys, and data
offsets that are consistent with dtype x shape, contiguous from 0 with no overlap or hole, and end
exactly at the end of the file. A file that passes is one the safetensors library would open.

Why hand-rolled instead of ``safetensors.safe_open``: we need the raw ``data_offsets`` and
per-tensor dtype/shape for thousands of tensors, and must not import torch or numpy. The cost is
dominated by ``json.loads`` (about 1.5 ms for the 2,500-tensor SDXL header); every check after it
runs as C-level bulk operations (``map``, ``sorted``, list comparison) rather than a Python loop
per tensor, and the cyclic GC is paused while the parser allocates thousands of small objects.
"""

from __future__ import annotations

import gc
import json
import math
import operator
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, NamedTuple

from ..errors import (
    EmptyFileError,
    FileAccessError,
    HeaderTooLargeError,
    InvalidHeaderError,
    InvalidOffsetsError,
    NotSafetensorsError,
    TruncatedFileError,
)

MAX_HEADER_SIZE = 100_000_000  # the reference implementation's limit
METADATA_KEY = "__metadata__"

# Bits per element, as in the reference implementation's Dtype enum (F4 and F6 are sub-byte).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
_U64 = 1 << 64


class TensorInfo(NamedTuple):
    """One tensor as the header describes it (offsets relative to the start of the data region)."""

    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]


class TensorTable(Mapping[str, TensorInfo]):
    """``{name: TensorInfo}`` built on access from the parsed JSON, so reading a header stays cheap."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, dict[str, Any]]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> TensorInfo:
        entry = self._raw[name]
        begin, end = entry["data_offsets"]
        return TensorInfo(entry["dtype"], tuple(entry["shape"]), (begin, end))

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: tensors, ``__metadata__``, and where the data region starts.

    ``raw`` is the parsed JSON minus ``__metadata__`` (``{name: {"dtype", "shape", "data_offsets"}}``);
    identification reads it directly because building tuples for every tensor would double the cost.
    """

    path: str
    header_size: int
    file_size: int
    metadata: dict[str, str]
    raw: dict[str, dict[str, Any]]

    @property
    def data_start(self) -> int:
        return 8 + self.header_size

    @property
    def tensors(self) -> TensorTable:
        return TensorTable(self.raw)

    def shape(self, name: str) -> tuple[int, ...] | None:
        entry = self.raw.get(name)
        return None if entry is None else tuple(entry["shape"])

    def dtype(self, name: str) -> str | None:
        entry = self.raw.get(name)
        return None if entry is None else entry["dtype"]


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and validate the header of the safetensors file at ``path``.

    Raises a :class:`hub.errors.ModelFileError` subclass naming the file and the exact problem;
    :class:`hub.errors.FileAccessError` when the file cannot be opened.
    """
    p = os.fspath(path)
    from .regular import open_regular

    fd = open_regular(p)  # a FIFO named *.safetensors must not block the open
    try:
        file_size = os.fstat(fd).st_size
        if file_size == 0:
            raise EmptyFileError(p, "empty file (0 bytes): not a safetensors file")
        prefix = os.pread(fd, 8, 0)
        if len(prefix) < 8:
            raise TruncatedFileError(
                p, f"only {file_size} bytes: too short for the 8-byte safetensors header length")
        (n,) = struct.unpack("<Q", prefix)
        _check_length(p, n, file_size, prefix, fd)
        raw = os.pread(fd, n, 8)
    except OSError as exc:
        raise FileAccessError(f"{p}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) != n:
        raise TruncatedFileError(p, f"header claims {n} bytes but only {len(raw)} could be read")
    return parse_header(raw, file_size, p)


def _check_length(path: str, n: int, file_size: int, prefix: bytes, fd: int) -> None:
    if n > MAX_HEADER_SIZE or 8 + n > file_size:
        what = _sniff(prefix + os.pread(fd, 56, 8))
        if what is not None:
            raise NotSafetensorsError(path, f"not a safetensors file: it looks like {what}")
    if n > MAX_HEADER_SIZE:
        raise HeaderTooLargeError(
            path, f"header length {n:,} bytes is over the {MAX_HEADER_SIZE:,}-byte limit: corrupt or hostile file")
    if 8 + n > file_size:
        raise TruncatedFileError(
            path, f"header length {n:,} bytes runs past the end of the {file_size:,}-byte file "
                  "(truncated download, or not a safetensors file)")
    if n < 2:
        raise InvalidHeaderError(path, f"header length {n} is too small to hold a JSON object")


def _sniff(head: bytes) -> str | None:
    """A readable guess of what a file that is not safetensors actually is."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive (a PyTorch .ckpt/.pt saved under a .safetensors name?)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (a legacy PyTorch checkpoint?)"
    lower = head.lstrip().lower()
    if lower.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "an HTML/XML page (a failed download or a login page?)"
    if lower.startswith((b"{", b"[")):
        return "JSON text (an API error response?)"
    if head.startswith(b"GGUF"):
        return "a GGUF file"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (the real file was never downloaded)"
    return None


def _reject_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text}")


def _reject_constant(text: str) -> Any:
    raise ValueError(f"invalid number {text}")


def parse_header(raw: bytes, file_size: int, path: str = "<bytes>") -> SafetensorsHeader:
    """Validate header bytes (without the length prefix) for a file of ``file_size`` bytes."""
    n = len(raw)
    if raw[:1] != b"{":
        raise InvalidHeaderError(path, "safetensors header does not start with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidHeaderError(path, f"header is not valid UTF-8 (byte {exc.start})") from None
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parse builds thousands of acyclic objects; GC passes would only cost time
    try:
        doc = json.loads(text, parse_float=_reject_float, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise InvalidHeaderError(path, f"header is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidHeaderError(path, "header JSON is nested too deeply") from None
    finally:
        if gc_was_enabled:
            gc.enable()
    if type(doc) is not dict:
        raise InvalidHeaderError(path, f"header is a JSON {type(doc).__name__}, not an object")

    had_metadata = METADATA_KEY in doc
    metadata = doc.pop(METADATA_KEY, None)
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict or not set(map(type, metadata.values())) <= {str}:
        raise InvalidHeaderError(path, "__metadata__ must map strings to strings (arbitrary JSON is not allowed)")

    data_size = file_size - 8 - n
    census = _Census(raw, doc, metadata, had_metadata)
    if not census.pairs_match:
        _find_duplicate(text, path)
    _validate_tensors(census, doc, data_size, path)
    return SafetensorsHeader(path=path, header_size=n, file_size=file_size, metadata=metadata, raw=doc)


# Characters counted in one pass over the header bytes (see _Census).
_COUNTED = b":-e"
_DELETE_OTHERS = bytes(c for c in range(256) if c not in _COUNTED)


def _counts(data: bytes) -> tuple[int, int, int]:
    kept = data.translate(None, _DELETE_OTHERS)
    return kept.count(b":"), kept.count(b"-"), kept.count(b"e")


class _Census:
    """Cheap facts about the header text that stand in for per-element Python checks.

    Outside JSON strings a header holds only punctuation, integers and the literals true/false/null
    (floats are refused by the parser). Counting a character in the whole text and subtracting its
    occurrences inside the decoded strings (names, metadata, and the fixed inner keys) gives its
    count outside strings, so: ':' outside = key/value pairs (fewer pairs after parsing means a
    duplicate key was dropped), '-' outside = negative numbers, 'e' outside = true/false. One
    ``bytes.translate`` pass over each text replaces a Python loop over every dimension. A ``\\u``
    escape could hide a character from the count, so such headers (rare) are checked exactly.
    """

    def __init__(self, raw: bytes, doc: dict[str, Any], metadata: dict[str, str], had_metadata: bool) -> None:
        entries = doc.values()
        inner_keys = sum(map(len, entries)) if set(map(type, entries)) <= {dict} else -1
        plain = inner_keys == 3 * len(doc) and not _has_unicode_escape(raw)
        if not plain:
            self.pairs_match = self.numbers_plain = False
            return
        colons, minus, e = _counts(raw)
        n_colons, n_minus, n_e = _counts("".join(doc).encode())
        m_colons, m_minus, m_e = _counts("".join(chain(metadata, metadata.values())).encode())
        # each tensor object has the keys dtype, shape, data_offsets: one 'e' each, no ':' or '-';
        # dtype values are upper case; "__metadata__" has one 'e'.
        pairs = len(doc) + had_metadata + len(metadata) + inner_keys
        self.pairs_match = colons - n_colons - m_colons == pairs
        self.numbers_plain = (minus - n_minus - m_minus == 0
                              and e - n_e - m_e - 3 * len(doc) - had_metadata == 0)


def _has_unicode_escape(raw: bytes) -> bool:
    """Whether a ``\\u`` escape occurs; searched only between the first and last backslash
    (memchr-fast), which in practice is the metadata block at the start of the header."""
    first = raw.find(b"\\")
    if first < 0:
        return False
    return raw.find(b"\\u", first, raw.rfind(b"\\") + 2) >= 0


def _find_duplicate(text: str, path: str) -> None:
    """The slow exact duplicate-key search (only when the census could not rule duplicates out)."""
    seen_dupe: list[str] = []

    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items) and not seen_dupe:
            keys = [k for k, _ in items]
            seen_dupe.append(next(k for k in keys if keys.count(k) > 1))
        return out

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        json.loads(text, object_pairs_hook=hook)
    finally:
        if gc_was_enabled:
            gc.enable()
    if seen_dupe:
        raise InvalidHeaderError(path, f"duplicate key {seen_dupe[0]!r} in the header")


def _validate_tensors(census: _Census, doc: dict[str, Any], data_size: int, path: str) -> None:
    names = list(doc)
    entries = list(doc.values())
    if not entries:
        if data_size != 0:
            raise InvalidOffsetsError(path, f"no tensors, yet {data_size:,} data bytes follow the header")
        return
    if not set(map(type, entries)) <= {dict}:
        bad = next(k for k, v in doc.items() if type(v) is not dict)
        raise InvalidHeaderError(path, f"tensor {bad!r} is not an object with dtype, shape and data_offsets")
    try:
        dtypes = list(map(operator.itemgetter("dtype"), entries))
        shapes = list(map(operator.itemgetter("shape"), entries))
        offsets = list(map(operator.itemgetter("data_offsets"), entries))
    except KeyError as exc:
        missing = exc.args[0]
        bad = next(k for k, v in doc.items() if missing not in v)
        raise InvalidHeaderError(path, f"tensor {bad!r} has no {missing!r}") from None
    if not set(dtypes) <= DTYPE_BITS.keys():
        bad = next(k for k, d in zip(names, dtypes) if d not in DTYPE_BITS)
        raise InvalidHeaderError(path, f"tensor {bad!r} has unknown dtype {doc[bad]['dtype']!r}")
    if not set(map(type, shapes)) <= {list}:
        bad = next(k for k, s in zip(names, shapes) if type(s) is not list)
        raise InvalidHeaderError(path, f"tensor {bad!r}: shape must be a list of integers")
    if not set(map(type, offsets)) <= {list} or set(map(len, offsets)) != {2}:
        bad = next(k for k, o in zip(names, offsets) if type(o) is not list or len(o) != 2)
        raise InvalidHeaderError(path, f"tensor {bad!r}: data_offsets must be [begin, end]")

    # Numbers must be non-negative integers. Floats and NaN were refused by the parser; true/false
    # (bool is an int in Python) and negative numbers the census rules out for the usual header. A
    # dimension of any other type must be caught before the arithmetic below: a string or list would
    # turn math.prod into sequence repetition (["x", 10**12] asks for a terabyte), so one C-level
    # type pass over the dimensions sends such headers to the exact check. Offsets of the wrong type
    # make the subtraction raise TypeError.
    exact = not census.numbers_plain or not set(map(type, chain.from_iterable(shapes))) <= {int}
    if exact:
        _check_numbers_exactly(names, shapes, offsets, doc, path)
    try:
        # dtype x shape must fill whole bytes and equal end - begin.
        nbits = list(map(operator.mul, map(math.prod, shapes), map(DTYPE_BITS.__getitem__, dtypes)))
        flat_offsets = list(chain.from_iterable(offsets))
        begins = flat_offsets[0::2]
        ends = flat_offsets[1::2]
        sizes = list(map(operator.sub, ends, begins))
    except TypeError:
        _check_numbers_exactly(names, shapes, offsets, doc, path)
        raise  # unreachable: the exact check names the culprit
    if list(map(operator.mul, sizes, repeat(8))) != nbits:
        if not exact:  # a string dimension multiplies into a str: name the culprit first
            _check_numbers_exactly(names, shapes, offsets, doc, path)
        bad = next((k for k, b in zip(names, nbits) if b % 8), None)
        if bad is not None:
            raise InvalidHeaderError(path, f"tensor {bad!r}: {doc[bad]['dtype']} x {doc[bad]['shape']} is not "
                                           "a whole number of bytes")
        nbytes = [b // 8 for b in nbits]
        i = next(i for i, (a, b) in enumerate(zip(sizes, nbytes)) if a != b)
        raise InvalidOffsetsError(
            path, f"tensor {names[i]!r}: data_offsets {offsets[i]} hold {sizes[i]:,} bytes but "
                  f"{dtypes[i]} x {shapes[i]} needs {nbytes[i]:,}")
    if 0 in sizes and not exact:
        # an empty tensor hides its other dimensions from the size check: bound them explicitly
        _check_numbers_exactly(names, shapes, offsets, doc, path)

    # Contiguous from 0, no overlap, no hole: sorted begins must be 0 followed by the sorted ends
    # (an exact chain, since every size >= 0); a zero-size tensor must sit on a chain boundary.
    # This also bounds every offset to [0, data_size].
    sorted_begins = sorted(begins)
    sorted_ends = sorted(ends)
    if sorted_begins[0] != 0 or sorted_begins[1:] != sorted_ends[:-1]:
        raise InvalidOffsetsError(path, _offset_problem(names, begins, ends))
    if 0 in sizes:
        # the chain check holds for the non-empty tensors alone; an empty one must sit on a boundary
        boundaries = {e for e, size in zip(ends, sizes) if size}
        boundaries.add(0)
        for name, b, s in zip(names, begins, sizes):
            if s == 0 and b not in boundaries:
                raise InvalidOffsetsError(path, f"tensor {name!r}: empty tensor at offset {b} inside another tensor")
    if sorted_ends[-1] != data_size:
        if sorted_ends[-1] > data_size:
            raise TruncatedFileError(
                path, f"the tensors need {sorted_ends[-1]:,} data bytes after the header but the file holds "
                      f"only {data_size:,} (truncated download?)")
        raise InvalidOffsetsError(
            path, f"{data_size - sorted_ends[-1]:,} bytes after the last tensor are not described by the "
                  "header (safetensors allows no trailing data)")


def _check_numbers_exactly(names: list[str], shapes: list[Any], offsets: list[Any], doc: dict[str, Any],
                           path: str) -> None:
    """The slow, per-element check: every dimension and offset an int in [0, 2**64), and the element
    count, multiplied in order as the reference implementation does, never past 2**64 (an empty
    tensor's zero dimension does not excuse an overflow before it)."""
    for name, shape, offs in zip(names, shapes, offsets):
        count = 1
        for d in shape:
            if type(d) is not int or not 0 <= d < _U64:
                raise InvalidHeaderError(path, f"tensor {name!r}: shape {shape!r} is not a list of sizes")
            count *= d
            if count >= _U64:
                raise InvalidHeaderError(path, f"tensor {name!r}: shape {shape!r} overflows a 64-bit element count")
        for x in offs:
            if type(x) is not int or not 0 <= x < _U64:
                raise InvalidOffsetsError(
                    path, f"tensor {name!r}: data_offsets {offs!r} are not non-negative integers")


def _offset_problem(names: list[str], begins: list[int], ends: list[int]) -> str:
    """Name the first tensor that breaks contiguity, in offset order (error path only)."""
    order = sorted(range(len(names)), key=lambda i: (begins[i], ends[i]))
    expected = 0
    for i in order:
        if begins[i] != expected:
            if begins[i] < expected:
                return (f"tensor {names[i]!r} at [{begins[i]}, {ends[i]}] overlaps the previous tensor "
                        f"(which ends at {expected})")
            return f"hole of {begins[i] - expected:,} bytes before tensor {names[i]!r} at offset {begins[i]}"
        expected = ends[i]
    return "data offsets are not contiguous"


def header_size_of(path: str | os.PathLike[str]) -> int:
    """Only the declared header length (for tools that want to skip the header)."""
    from .regular import open_regular

    fd = open_regular(path)
    try:
        prefix = os.pread(fd, 8, 0)
    finally:
        os.close(fd)
    if len(prefix) < 8:
        raise TruncatedFileError(str(path), "too short for a safetensors header")
    return int(struct.unpack("<Q", prefix)[0])


SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


def is_safetensors_name(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(SAFETENSORS_SUFFIXES)

"""The safetensors header reader: accepts what the safetensors library accepts, rejects what it rejects.

Every bad-input case is also handed to ``safetensors.safe_open`` (the reference Rust parser): the
test proves both refuse it, and that ours says why with a specific error naming the file.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest
from safetensors import safe_open

import hub.files.safetensors_header as sth
from hub.errors import (
    EmptyFileError,
    HeaderError,
    HeaderTooLargeError,
    InvalidHeaderError,
    InvalidOffsetsError,
    ModelFileError,
    NotSafetensorsError,
    TruncatedFileError,
)
from hub.files.safetensors_header import MAX_HEADER_SIZE, read_header
from tests.headers import (
    fixture_names,
    header_bytes,
    load_spec,
    raw_header_file,
    write_fixture,
    write_tensors,
)


def library_rejects(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="numpy") as f:
            list(f.keys())
    except Exception:  # noqa: BLE001 - SafetensorError and friends: any refusal counts
        return True
    return False


def tensor(dtype: str = "F16", shape: list[int] | None = None, begin: int = 0, end: int | None = None) -> dict:
    shape = [2, 2] if shape is None else shape
    if end is None:
        end = begin + 8
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def write_doc(tmp_path: Path, doc: object, data_size: int, name: str = "bad.safetensors") -> Path:
    return raw_header_file(tmp_path / name, json.dumps(doc).encode(), data_size)


# -- valid files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sd15", "sdxl_base", "flux_dev", "sd3_medium", "lora_sdxl_kohya", "vae_flux"])
def test_full_size_fixture_matches_reference_parser(tmp_path: Path, name: str) -> None:
    path = write_fixture(tmp_path, name)
    header = read_header(path)
    spec = load_spec(name)
    assert len(header.tensors) == len(spec["tensors"])
    assert header.metadata == spec["metadata"]
    assert header.data_start == 8 + header.header_size
    assert header.file_size == os.path.getsize(path)
    with safe_open(str(path), framework="numpy") as f:
        keys = set(f.keys())
        assert keys == set(header.tensors)
        assert (f.metadata() or {}) == header.metadata
        for key in sorted(keys)[:: max(1, len(keys) // 25)]:
            info = header.tensors[key]
            assert list(info.shape) == f.get_slice(key).get_shape()
            assert info.dtype == spec["tensors"][key][0]


def test_every_fixture_reads(tmp_path: Path) -> None:
    for name in fixture_names():
        header = read_header(write_fixture(tmp_path, name))
        assert len(header.tensors) == len(load_spec(name)["tensors"])


def test_tensor_table_gives_offsets_and_real_data_positions(tmp_path: Path) -> None:
    tensors = {"a": ("F32", [2, 3]), "b": ("U8", [5]), "c": ("BF16", [])}
    path = write_tensors(tmp_path / "t.safetensors", tensors, {"k": "v"})
    header = read_header(path)
    data = path.read_bytes()
    for name, (dtype, shape) in tensors.items():
        info = header.tensors[name]
        begin, end = info.data_offsets
        assert info.dtype == dtype and list(info.shape) == shape
        assert end - begin == sth.DTYPE_BITS[dtype] // 8 * max(1, int.__mul__(*shape) if len(shape) == 2 else
                                                                 (shape[0] if shape else 1))
        assert len(data[header.data_start + begin: header.data_start + end]) == end - begin
    assert header.shape("a") == (2, 3) and header.dtype("b") == "U8" and header.shape("zz") is None


def test_edge_cases_the_format_allows(tmp_path: Path) -> None:
    # empty tensors, 0-rank tensors, metadata only, unicode names and \u escapes are all valid
    path = write_tensors(tmp_path / "edge.safetensors",
                         {"empty": ("F32", [0, 4]), "scalar": ("F64", []), "é-name": ("I8", [3])},
                         {"note": "a: b - c", "json": json.dumps({"x": [1, 2]})})
    header = read_header(path)
    assert header.tensors["empty"].shape == (0, 4)
    assert header.tensors["scalar"].shape == ()
    assert "é-name" in header.tensors
    assert not library_rejects(path)

    only_meta = raw_header_file(tmp_path / "meta.safetensors", b'{"__metadata__":{"a":"b"}}')
    assert read_header(only_meta).tensors == {} or len(read_header(only_meta).tensors) == 0

    escaped = json.dumps({"t\\u00e9": tensor("F16", [4], 0, 8)}).encode().replace(b"\\\\u", b"\\u")
    path = raw_header_file(tmp_path / "escaped.safetensors", escaped, 8)
    assert list(read_header(path).tensors) == ["té"]
    assert not library_rejects(path)


def test_never_reads_tensor_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_fixture(tmp_path, "flux_dev")  # a 23.8 GB file (sparse)
    reads: list[tuple[int, int]] = []
    real_pread = os.pread

    def spy(fd: int, n: int, offset: int) -> bytes:
        reads.append((offset, n))
        return real_pread(fd, n, offset)

    monkeypatch.setattr(sth.os, "pread", spy)
    header = read_header(path)
    assert header.file_size > 20 * 1024**3
    assert max(offset + n for offset, n in reads) <= header.data_start


# -- bad input: each case is refused by the reference parser and by ours, with a specific error ----
# The README forbids duplicate keys, but the Rust parser deserialises into a HashMap and keeps the
# last one: where the duplicates are identical it accepts the file. We refuse it (stricter).
STRICTER_THAN_REFERENCE = {"identical duplicate tensor name"}


def _bad_cases(tmp: Path) -> list[tuple[str, Path, type[ModelFileError], str]]:
    cases: list[tuple[str, Path, type[ModelFileError], str]] = []

    def add(label: str, path: Path, error: type[ModelFileError], words: str) -> None:
        cases.append((label, path, error, words))

    empty = tmp / "empty.safetensors"
    empty.write_bytes(b"")
    add("empty file", empty, EmptyFileError, "empty")
    short = tmp / "short.safetensors"
    short.write_bytes(b"\x10\x00\x00")
    add("shorter than the length prefix", short, TruncatedFileError, "too short")
    add("length past end of file", raw_header_file(tmp / "past.safetensors", b"{}", length=4096),
        TruncatedFileError, "runs past the end")
    big = tmp / "big.safetensors"
    big.write_bytes(struct.pack("<Q", MAX_HEADER_SIZE + 1) + b"{}" + b" " * 6)
    add("header over 100 MB", big, HeaderTooLargeError, "limit")
    add("invalid JSON", raw_header_file(tmp / "json.safetensors", b'{"a": {"dtype": "F16",'),
        InvalidHeaderError, "not valid JSON")
    add("not starting with {", raw_header_file(tmp / "start.safetensors", b' {"a":1}'), InvalidHeaderError,
        "does not start")
    add("JSON array", raw_header_file(tmp / "array.safetensors", b"[1, 2]"), InvalidHeaderError,
        "does not start")
    add("not UTF-8", raw_header_file(tmp / "utf.safetensors", b'{"\xff\xfe": 1}'), InvalidHeaderError, "UTF-8")
    add("unknown dtype", write_doc(tmp, {"a": tensor("F17")}, 8, "dtype.safetensors"), InvalidHeaderError,
        "unknown dtype")
    add("float in shape", write_doc(tmp, {"a": tensor("F16", [2.0, 2])}, 8, "float.safetensors"),
        InvalidHeaderError, "not valid JSON")
    add("negative dimension", write_doc(tmp, {"a": tensor("F16", [-2, -2])}, 8, "neg.safetensors"),
        InvalidHeaderError, "not a list of sizes")
    add("boolean dimension", write_doc(tmp, {"a": tensor("F16", [True, 4])}, 8, "bool.safetensors"),
        InvalidHeaderError, "not a list of sizes")
    add("string dimension", write_doc(tmp, {"a": tensor("F16", ["4"])}, 8, "str.safetensors"),
        InvalidHeaderError, "not a list of sizes")
    # a string or list dimension next to a big one must be refused before any arithmetic: multiplied
    # out it would be sequence repetition asking for a terabyte
    add("string dimension before a huge one", write_doc(tmp, {"a": tensor("F16", ["x", 10**12])}, 8,
                                                         "strbig.safetensors"), InvalidHeaderError, "not a list of sizes")
    add("list dimension before a huge one", write_doc(tmp, {"a": tensor("F16", [[2], 2**40])}, 8,
                                                       "listbig.safetensors"), InvalidHeaderError, "not a list of sizes")
    add("element count overflows before an empty dimension",
        write_doc(tmp, {"a": tensor("F16", [2**63, 4, 0], 0, 0)}, 0, "overflow.safetensors"),
        InvalidHeaderError, "overflows")
    add("non-string metadata", write_doc(tmp, {"__metadata__": {"n": 1}, "a": tensor()}, 8, "meta.safetensors"),
        InvalidHeaderError, "__metadata__")
    add("missing data_offsets", write_doc(tmp, {"a": {"dtype": "F16", "shape": [4]}}, 8, "miss.safetensors"),
        InvalidHeaderError, "has no 'data_offsets'")
    add("offsets not a pair", write_doc(tmp, {"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 4, 8]}},
                                        8, "pair.safetensors"), InvalidHeaderError, "[begin, end]")
    dup = b'{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}'
    add("identical duplicate tensor name", raw_header_file(tmp / "dup.safetensors", dup, 8), InvalidHeaderError,
        "duplicate")
    dup_moved = dup.replace(b"[0,8]}}", b"[8,16]}}")
    add("duplicate tensor name", raw_header_file(tmp / "dup1.safetensors", dup_moved, 16), InvalidHeaderError,
        "duplicate")
    dup_inner = b'{"a":{"dtype":"F16","dtype":"F16","shape":[4],"data_offsets":[0,8]}}'
    add("duplicate inner key", raw_header_file(tmp / "dup2.safetensors", dup_inner, 8), InvalidHeaderError,
        "duplicate")
    add("overlapping offsets", write_doc(tmp, {"a": tensor("F16", [4], 0, 8), "b": tensor("F16", [4], 4, 12)}, 12,
                                         "overlap.safetensors"), InvalidOffsetsError, "overlaps")
    add("hole between tensors", write_doc(tmp, {"a": tensor("F16", [4], 0, 8), "b": tensor("F16", [4], 16, 24)}, 24,
                                          "hole.safetensors"), InvalidOffsetsError, "hole")
    add("offsets out of bounds", write_doc(tmp, {"a": tensor("F16", [4], 0, 8)}, 4, "oob.safetensors"),
        TruncatedFileError, "holds only")
    add("trailing bytes", write_doc(tmp, {"a": tensor("F16", [4], 0, 8)}, 20, "trail.safetensors"),
        InvalidOffsetsError, "not described")
    add("size disagrees with dtype x shape", write_doc(tmp, {"a": tensor("F32", [4], 0, 8)}, 8, "size.safetensors"),
        InvalidOffsetsError, "needs 16")
    add("empty tensor inside another", write_doc(tmp, {"a": tensor("F16", [4], 0, 8), "z": tensor("F16", [0], 4, 4)},
                                                 8, "inside.safetensors"), InvalidOffsetsError, "inside another")
    add("no tensors but data", raw_header_file(tmp / "nodata.safetensors", b"{}", 16), InvalidOffsetsError,
        "no tensors")
    # not safetensors at all, under a .safetensors name
    zpath = tmp / "zip.safetensors"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    add("zip named .safetensors", zpath, NotSafetensorsError, "zip archive")
    html = tmp / "page.safetensors"
    html.write_bytes(b"<!DOCTYPE html><html><body>Please log in</body></html>")
    add("HTML page named .safetensors", html, NotSafetensorsError, "HTML")
    lfs = tmp / "lfs.safetensors"
    lfs.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    add("git-lfs pointer", lfs, NotSafetensorsError, "LFS")
    return cases


def test_bad_inputs_are_refused_like_the_reference_parser(tmp_path: Path) -> None:
    for label, path, error, words in _bad_cases(tmp_path):
        with pytest.raises(error) as info:
            read_header(path)
        assert isinstance(info.value, HeaderError), label
        message = str(info.value)
        assert str(path) in message, f"{label}: {message}"
        assert words in message, f"{label}: {message!r} lacks {words!r}"
        if label in STRICTER_THAN_REFERENCE:
            assert not library_rejects(path), f"{label}: the library now rejects it too; update the note"
        else:
            assert library_rejects(path), f"{label}: the safetensors library accepts it"


def test_truncated_download_of_a_real_header(tmp_path: Path) -> None:
    full = write_fixture(tmp_path, "sd15")
    size = full.stat().st_size
    with open(full, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = f.read(n // 2)
    cut_data = tmp_path / "cut_data.safetensors"
    with open(full, "rb") as src, open(cut_data, "wb") as dst:
        dst.write(src.read(8 + n))
        dst.truncate(size // 2)  # half the tensor data is missing
    with pytest.raises(TruncatedFileError, match="truncated download"):
        read_header(cut_data)
    cut_header = tmp_path / "cut_header.safetensors"
    cut_header.write_bytes(struct.pack("<Q", n) + head)
    with pytest.raises(TruncatedFileError, match="runs past the end"):
        read_header(cut_header)
    assert library_rejects(cut_data) and library_rejects(cut_header)


def test_duplicate_hidden_behind_a_unicode_escape_is_still_found(tmp_path: Path) -> None:
    # a \u escape could hide a ':' from the fast duplicate count; the exact path must catch it
    doc = (b'{"a\\u003ab":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},'
           b'"a":{"dtype":"F16","shape":[4],"data_offsets":[8,16]},"a":{"dtype":"F16","shape":[4],"data_offsets":[16,24]}}')
    path = raw_header_file(tmp_path / "esc_dup.safetensors", doc, 24)
    with pytest.raises(InvalidHeaderError, match="duplicate key 'a'"):
        read_header(path)
    assert library_rejects(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    from hub.errors import FileAccessError

    with pytest.raises(FileAccessError, match="no such file"):
        read_header(tmp_path / "nope.safetensors")
    with pytest.raises(FileAccessError, match="directory"):
        read_header(tmp_path)


def test_header_bytes_helper_pads_to_eight(tmp_path: Path) -> None:
    head, size = header_bytes({"x": ("F16", [3])})
    assert (len(head) - 8) % 8 == 0 and size == 6

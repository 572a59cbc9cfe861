"""Known-answer and bad-input tests for hub.files.fingerprint.

Expected values come from `expected_hashes`, which reads the file the plain way (A1111-style seek and
read for AutoV1, one hashlib/zlib/blake3 call per hash) and shares no code with the implementation.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import zlib
from pathlib import Path

import blake3
import numpy as np
import pytest
from safetensors.numpy import save_file

from hub.errors import FileAccessError, FileChangedError, SdhubError
from hub.files.fingerprint import (
    INLINE_LIMIT,
    Fingerprints,
    StatKey,
    fingerprint_file,
    normalize_hash_query,
    stat_key,
)

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def expected_hashes(path: Path, safetensors: bool) -> dict[str, object]:
    """The reference values, computed independently of hub.files.fingerprint."""
    sha = hashlib.sha256()
    b3 = blake3.blake3()
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(MiB):
            sha.update(block)
            b3.update(block)
            crc = zlib.crc32(block, crc)
        f.seek(0x100000)  # A1111 model_hash(): 64 KiB at 1 MiB, whatever read() returns
        autov1 = hashlib.sha256(f.read(0x10000)).hexdigest()[:8]
        autov3 = None
        if safetensors:
            f.seek(0)
            header_len = int.from_bytes(f.read(8), "little")
            f.seek(8 + header_len)
            body = hashlib.sha256()
            while block := f.read(MiB):
                body.update(block)
            autov3 = body.hexdigest()
    return {
        "size": path.stat().st_size,
        "sha256": sha.hexdigest(),
        "autov1": autov1,
        "autov2": sha.hexdigest()[:10],
        "autov3": autov3,
        "autov3_short": autov3[:12] if autov3 else None,
        "crc32": struct.pack("<I", crc).hex(),
        "crc32_zlib": format(crc, "08x"),
        "blake3": b3.hexdigest(),
    }


def write_random(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def write_raw_safetensors(path: Path, header: bytes, body_size: int, claimed_length: int | None = None) -> Path:
    """A safetensors file assembled by hand, so that tests can also break it on purpose."""
    length = len(header) if claimed_length is None else claimed_length
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", length))
        f.write(header)
        f.write(np.random.default_rng(1).bytes(body_size))
    return path


def tensor_header(body_size: int, extra: dict | None = None) -> bytes:
    header = {"lora_unet_down.weight": {"dtype": "U8", "shape": [body_size], "data_offsets": [0, body_size]}}
    header.update(extra or {})
    raw = json.dumps(header).encode()
    return raw + b" " * (-len(raw) % 8)


# ---------------------------------------------------------------------------------------------
# Known answers


def test_hello_world_matches_civitai_crc32_vector(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world")
    fp = fingerprint_file(path)
    assert fp.crc32 == "85114a0d"  # Civitai's HashTaskTests expects 85114A0D
    assert fp.crc32_zlib == "0d4a1185"  # zlib.crc32's own order
    assert fp.sha256 == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert fp.to_dict() == expected_hashes(path, safetensors=False)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    fp = fingerprint_file(path)
    assert fp.to_dict() == expected_hashes(path, safetensors=False)
    assert fp.sha256 == EMPTY_SHA256
    assert fp.blake3 == EMPTY_BLAKE3
    assert fp.autov1 == "e3b0c442"
    assert fp.crc32 == "00000000"
    assert fp.size == 0
    assert fp.autov3 is None and fp.autov3_error is None


def test_under_one_mib_has_autov1_of_nothing(tmp_path: Path) -> None:
    path = write_random(tmp_path / "small.ckpt", 300 * 1024)
    fp = fingerprint_file(path)
    assert fp.autov1 == "e3b0c442"  # A1111 reads 0 bytes at offset 1 MiB
    assert fp.to_dict() == expected_hashes(path, safetensors=False)


@pytest.mark.parametrize("size", [MiB + 64 * 1024, MiB + 32 * 1024, 2 * MiB + 1])
@pytest.mark.parametrize("chunk_size", [64 * 1024, 96 * 1024, 8 * MiB])
def test_autov1_window_and_chunk_boundaries(tmp_path: Path, size: int, chunk_size: int) -> None:
    """1 MiB + 64 KiB is exactly the AutoV1 window; +32 KiB cuts it short; 96 KiB chunks split it."""
    path = write_random(tmp_path / "model.ckpt", size, seed=size)
    fp = fingerprint_file(path, chunk_size=chunk_size)
    expected = expected_hashes(path, safetensors=False)
    assert fp.to_dict() == expected
    assert fp.autov1 != "e3b0c442"
    if size == MiB + 64 * 1024:
        with open(path, "rb") as f:
            assert fp.autov1 == hashlib.sha256(f.read()[-64 * 1024 :]).hexdigest()[:8]


def test_safetensors_with_metadata_header(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    rng = np.random.default_rng(7)
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": rng.standard_normal((4, 320)).astype(np.float16),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": rng.standard_normal((320, 4)).astype(np.float16),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": np.array(4.0, dtype=np.float16),
    }
    metadata = {"ss_network_dim": "4", "ss_base_model_version": "sd_v1", "ss_tag_frequency": "x" * 3000}
    save_file(tensors, str(path), metadata=metadata)
    fp = fingerprint_file(path)
    expected = expected_hashes(path, safetensors=True)
    assert fp.to_dict() == expected
    assert fp.autov3 is not None and fp.autov3 != fp.sha256
    assert fp.autov3_short == fp.autov3[:12]
    assert fp.autov3_error is None

    # AutoV3 ignores the header: changing only the metadata keeps it, and changes SHA256.
    other = tmp_path / "lora_renamed_meta.safetensors"
    save_file(tensors, str(other), metadata={**metadata, "ss_output_name": "something else"})
    fp_other = fingerprint_file(other)
    assert fp_other.autov3 == fp.autov3
    assert fp_other.sha256 != fp.sha256


@pytest.mark.parametrize("chunk_size", [64 * 1024, 8 * MiB])
def test_safetensors_body_starting_in_a_later_chunk(tmp_path: Path, chunk_size: int) -> None:
    header = tensor_header(3 * MiB, extra={"__metadata__": {"notes": "n" * 200_000}})
    path = write_raw_safetensors(tmp_path / "big_header.safetensors", header, 3 * MiB)
    fp = fingerprint_file(path, chunk_size=chunk_size)
    assert fp.to_dict() == expected_hashes(path, safetensors=True)


def test_safetensors_detected_by_content_not_name(tmp_path: Path) -> None:
    path = write_raw_safetensors(tmp_path / "model.bin", tensor_header(2 * MiB), 2 * MiB)
    assert fingerprint_file(path).to_dict() == expected_hashes(path, safetensors=True)


def test_large_sparse_safetensors(tmp_path: Path) -> None:
    """A header-only sparse file with a real size: hashing must stream it, not load it."""
    size = 300 * MiB
    path = tmp_path / "checkpoint.safetensors"
    header = tensor_header(size)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
    os.truncate(path, 8 + len(header) + size)
    seen: list[int] = []
    fp = fingerprint_file(path, progress=seen.append)
    assert fp.to_dict() == expected_hashes(path, safetensors=True)
    assert sum(seen) == fp.size == 8 + len(header) + size
    assert len(seen) > 1


def test_to_dict_shape_and_round_trip(tmp_path: Path) -> None:
    path = write_raw_safetensors(tmp_path / "x.safetensors", tensor_header(1000), 1000)
    fp = fingerprint_file(path)
    data = fp.to_dict()
    assert set(data) == {"sha256", "autov1", "autov2", "autov3", "autov3_short", "crc32", "crc32_zlib", "blake3", "size"}
    assert Fingerprints.from_dict(json.loads(json.dumps(data))) == fp
    for key, value in data.items():
        if isinstance(value, str):
            assert value == value.lower() and all(c in "0123456789abcdef" for c in value), key
    assert (len(fp.sha256), len(fp.autov1 or ""), len(fp.autov2), len(fp.autov3 or ""), len(fp.crc32), len(fp.blake3)) == (
        64, 8, 10, 64, 8, 64
    )


def test_matching_kinds_by_prefix_any_case(tmp_path: Path) -> None:
    path = write_raw_safetensors(tmp_path / "x.safetensors", tensor_header(5000), 5000)
    fp = fingerprint_file(path)
    assert fp.matching_kinds(fp.sha256[:8].upper()) == ["sha256", "autov2"]
    assert "autov3" in fp.matching_kinds(fp.autov3_short or "")
    assert fp.matching_kinds(fp.crc32.upper()) == ["crc32"]
    assert fp.matching_kinds(fp.blake3) == ["blake3"]
    with pytest.raises(ValueError):
        normalize_hash_query("abc123")  # too short to mean anything
    with pytest.raises(ValueError):
        normalize_hash_query("not-a-hash-at-all")


def test_stat_key_tracks_device_inode_size_mtime(tmp_path: Path) -> None:
    path = write_random(tmp_path / "a.bin", 100)
    key = stat_key(path)
    st = os.stat(path)
    assert key == StatKey(st.st_dev, st.st_ino, 100, st.st_mtime_ns)
    assert stat_key(str(path)) == key
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert stat_key(path).mtime_ns == key.mtime_ns + 1_000_000_000
    with open(path, "ab") as f:
        f.write(b"x")
    assert stat_key(path).size == 101
    with pytest.raises(FileAccessError, match="gone.bin"):
        stat_key(tmp_path / "gone.bin")


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    path = write_random(tmp_path / "p.bin", 5 * MiB + 3)
    seen: list[int] = []
    fingerprint_file(path, progress=seen.append, chunk_size=MiB)
    assert seen == [MiB] * 5 + [3]


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sdhub-hash"]


def test_no_threads_left_behind(tmp_path: Path) -> None:
    path = write_random(tmp_path / "t.bin", 3 * MiB)
    fingerprint_file(path, chunk_size=MiB)

    def truncate(_n: int) -> None:
        os.truncate(path, MiB)

    with pytest.raises(FileChangedError):
        fingerprint_file(path, chunk_size=MiB, progress=truncate)
    assert _hash_threads() == []


# ---------------------------------------------------------------------------------------------
# Bad input


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match="nowhere.safetensors: no such file"):
        fingerprint_file(tmp_path / "nowhere.safetensors")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match="is a directory"):
        fingerprint_file(tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileAccessError, match="not a regular file"):
        fingerprint_file(fifo)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write_random(tmp_path / "locked.safetensors", 10)
    path.chmod(0)
    try:
        with pytest.raises(FileAccessError, match="locked.safetensors: permission denied"):
            fingerprint_file(path)
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize("size", [200 * 1024, 3 * MiB], ids=["inline", "threaded"])
def test_file_deleted_while_hashed(tmp_path: Path, size: int) -> None:
    path = write_random(tmp_path / "vanishing.ckpt", size)
    with pytest.raises(FileAccessError, match="vanishing.ckpt: vanished while it was being hashed"):
        fingerprint_file(path, chunk_size=MiB, progress=lambda _n: path.unlink(missing_ok=True))


def test_file_replaced_while_hashed(tmp_path: Path) -> None:
    path = write_random(tmp_path / "model.ckpt", 3 * MiB)
    replacement = write_random(tmp_path / "new.ckpt", 3 * MiB, seed=9)

    def replace(_n: int) -> None:
        if replacement.exists():
            os.replace(replacement, path)

    with pytest.raises(FileChangedError, match="replaced"):
        fingerprint_file(path, chunk_size=MiB, progress=replace)


def test_file_truncated_while_hashed(tmp_path: Path) -> None:
    path = write_random(tmp_path / "model.ckpt", 4 * MiB)
    with pytest.raises(FileChangedError, match=r"model.ckpt changed while it was being hashed \(size"):
        fingerprint_file(path, chunk_size=MiB, progress=lambda _n: os.truncate(path, 2 * MiB))


def test_file_growing_while_hashed(tmp_path: Path) -> None:
    path = write_random(tmp_path / "download.safetensors", 3 * MiB)

    def append(_n: int) -> None:
        with open(path, "ab") as f:
            f.write(b"more")

    with pytest.raises(FileChangedError, match="download.safetensors changed"):
        fingerprint_file(path, chunk_size=MiB, progress=append)


@pytest.mark.parametrize("size", [200 * 1024, 3 * MiB], ids=["inline", "threaded"])
def test_file_rewritten_in_place_same_size(tmp_path: Path, size: int) -> None:
    """Same size, new content: only the timestamps tell, so the file starts with an old mtime."""
    path = write_random(tmp_path / "model.ckpt", size)
    os.utime(path, (1_600_000_000, 1_600_000_000))
    done = []

    def overwrite(_n: int) -> None:
        if not done:
            done.append(True)
            with open(path, "r+b") as f:
                f.write(b"\0" * 4096)

    with pytest.raises(FileChangedError, match="modification time changed"):
        fingerprint_file(path, chunk_size=MiB, progress=overwrite)


def test_file_rewritten_with_mtime_put_back(tmp_path: Path) -> None:
    """A writer that restores the mtime (as some sync tools do) still moves the inode change time."""
    path = write_random(tmp_path / "model.ckpt", 3 * MiB)
    st = os.stat(path)

    def overwrite_and_restore(_n: int) -> None:
        with open(path, "r+b") as f:
            f.write(b"\0" * 4096)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    with pytest.raises(FileChangedError, match="inode change time changed"):
        fingerprint_file(path, chunk_size=MiB, progress=overwrite_and_restore)


def test_file_growing_faster_than_it_is_read(tmp_path: Path) -> None:
    """A writer appending a full chunk per chunk read must not keep the reader going forever."""
    path = write_random(tmp_path / "endless.bin", 2 * MiB)
    block = bytes(MiB)

    def append_chunk(_n: int) -> None:
        with open(path, "ab") as f:
            f.write(block)

    with pytest.raises(FileChangedError, match="endless.bin changed"):
        fingerprint_file(path, chunk_size=MiB, progress=append_chunk)
    assert path.stat().st_size < 10 * MiB


@pytest.mark.parametrize("body_size", [1000, 3 * MiB], ids=["inline", "threaded"])
def test_header_length_past_end_of_file(tmp_path: Path, body_size: int) -> None:
    header = tensor_header(body_size)
    path = write_raw_safetensors(tmp_path / "broken.safetensors", header, body_size, claimed_length=10 * body_size)
    fp = fingerprint_file(path)
    assert fp.autov3 is None and fp.autov3_short is None
    assert fp.autov3_error is not None
    assert fp.autov3_error.startswith("not a valid safetensors file: header length")
    assert "past the end of the file" in fp.autov3_error
    expected = expected_hashes(path, safetensors=False)
    assert fp.to_dict() == expected  # every other hash is still there


def test_header_length_over_safetensors_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge_header.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 200_000_000) + b"{")
    os.truncate(path, 210_000_000)  # long enough that only the limit refuses it
    fp = fingerprint_file(path)
    assert fp.autov3 is None
    assert "over the 100000000-byte safetensors limit" in (fp.autov3_error or "")


def test_header_not_closed(tmp_path: Path) -> None:
    path = write_raw_safetensors(tmp_path / "cut.safetensors", b'{"a": 1' + b"x" * 9, 1000)
    fp = fingerprint_file(path)
    assert fp.autov3 is None
    assert fp.autov3_error == "not a valid safetensors file: the header does not end with '}'"


def test_safetensors_name_with_other_content(tmp_path: Path) -> None:
    path = write_random(tmp_path / "fake.safetensors", 5000)
    path.write_bytes(struct.pack("<Q", 16) + b"PK\x03\x04" + bytes(4992))
    fp = fingerprint_file(path)
    assert fp.autov3 is None
    assert fp.autov3_error == "not a valid safetensors file: the header does not start with '{'"


def test_other_formats_simply_have_no_autov3(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"PK\x03\x04" + bytes(5000))  # a torch zip checkpoint starts like this
    fp = fingerprint_file(path)
    assert fp.autov3 is None and fp.autov3_error is None


def test_errors_are_sdhub_errors() -> None:
    assert issubclass(FileAccessError, SdhubError) and issubclass(FileChangedError, SdhubError)


def test_inline_limit_is_where_threads_start(tmp_path: Path) -> None:
    """Both code paths give identical answers around the switch-over size."""
    for size in (INLINE_LIMIT, INLINE_LIMIT + 1):
        path = write_random(tmp_path / f"edge{size}.bin", size, seed=size)
        assert fingerprint_file(path).to_dict() == expected_hashes(path, safetensors=False)

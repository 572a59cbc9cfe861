"""Every hash the Stable Diffusion ecosystem identifies a model file by, from one read of the file.

Civitai looks a file up by SHA256, AutoV1, AutoV2, AutoV3, CRC32 or BLAKE3; A1111 writes AutoV2 and
AutoV3 short hashes into image infotext; InvokeAI uses BLAKE3. Model files are gigabytes, so the file is
read once and every hash is fed from the same buffers:

* the main thread reads large chunks (``readinto`` into a small ring of preallocated buffers, so
  there is no allocation per chunk) and hands each chunk to the hashing threads;
* one thread per hash stream: SHA-256 of the whole file, SHA-256 of the AutoV3 body, BLAKE3, CRC32.
  hashlib, zlib and blake3 release the GIL on large buffers, so on a 2-core machine the two SHA-256
  streams really run side by side and reading overlaps hashing. A buffer goes back to the reader
  only when every thread is done with it.

Algorithms (see the reference notes, sources.md §2) and the choices made where sources differ:

* **SHA256**: SHA-256 of the whole file. **AutoV2** is its first 10 hex digits.
* **AutoV1**: SHA-256 of the 0x10000 bytes at offset 0x100000 (1 MiB), first 8 hex. Like A1111's
  ``model_hash`` we hash whatever bytes are there: a file under 1 MiB gives the hash of nothing,
  ``e3b0c442``; a file between 1 MiB and 1 MiB + 64 KiB gives the hash of its tail. (Civitai shows
  no AutoV1 for files under 2 MiB; we still compute A1111's value because that is what infotexts of
  such files carry.)
* **AutoV3**: SHA-256 of a safetensors file's body, ``[8 + n, EOF)`` where ``n`` is the u64
  little-endian header length in bytes 0-7, i.e. the JSON header is excluded (A1111's
  ``addnet_hash_safetensors``, kohya's ``sshs_model_hash``). Stored as 64 hex, shown as 12.
  Whether a file is safetensors is decided by its *content*, not its name: ``n`` is between 2 and
  100 MB (the safetensors library's own header limit), ``8 + n`` is within the file, the header
  starts with ``{`` and ends with ``}`` (or the spaces safetensors pads with). A file that fails
  this gets ``autov3 = None``; ``autov3_error`` explains why when the file claims to be
  safetensors (its name ends in ``.safetensors``/``.sft``, or byte 8 is ``{``), and stays ``None``
  for other formats (``.ckpt``, ``.pt``, ``.bin``), which simply have no AutoV3. Civitai's scanner
  treats headers of 16 MiB or more differently from A1111; we follow A1111 up to 100 MB.
* **CRC32**: CRC-32 (IEEE) of the whole file. Civitai publishes the four CRC bytes in
  little-endian order (``"hello world"`` -> ``85114a0d``), which is ``zlib.crc32``'s value
  byte-swapped; zlib's own order (``0d4a1185``) is kept as ``crc32_zlib``.
* **BLAKE3**: BLAKE3-256 of the whole file.

All values are lowercase hex; display code may upper-case them as Civitai does.

A file that changes while it is hashed (size, mtime or inode differ before and after, or fewer or
more bytes were read than its size) raises :class:`FileChangedError`; a file that is missing,
unreadable or vanishes meanwhile raises :class:`FileAccessError`. Either way no partial result is
returned.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import blake3 as blake3_module

from ..errors import FileAccessError, FileChangedError, FingerprintError
from ..limits import Budget

PathLike = str | os.PathLike[str]
ProgressCallback = Callable[[int], None]

#: Bytes per read. 8 MiB keeps per-chunk Python overhead negligible (256 chunks per 2 GiB); 4 and
#: 16 MiB measured no better.
CHUNK_SIZE = 8 * 1024 * 1024
#: Buffers in flight. The slowest hash thread may lag the fastest by this many chunks, which lets
#: the scheduler keep both cores busy even though the threads do unequal work per chunk.
RING_SIZE = 4
#: Files up to this size are hashed in the calling thread: starting threads costs more than it saves.
INLINE_LIMIT = 1024 * 1024

AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
#: The safetensors format refuses headers larger than this (safetensors' MAX_HEADER_SIZE).
MAX_SAFETENSORS_HEADER = 100_000_000
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")

_HEX_DIGITS = frozenset("0123456789abcdef")
#: Shortest hash prefix accepted for lookups: what image infotexts carry (AutoV1, CRC32 are 8 hex).
MIN_PREFIX_LENGTH = 8


@dataclass(frozen=True)
class Fingerprints:
    """The six hashes of one file, as lowercase hex, plus its size in bytes."""

    size: int
    sha256: str
    autov1: str | None
    autov3: str | None
    autov3_error: str | None
    crc32: str
    crc32_zlib: str
    blake3: str

    @property
    def autov2(self) -> str:
        """A1111's checkpoint short hash: the first 10 hex of the SHA-256."""
        return self.sha256[:10]

    @property
    def autov3_short(self) -> str | None:
        """The 12-hex form Civitai displays and A1111 writes for LoRAs."""
        return self.autov3[:12] if self.autov3 else None

    def to_dict(self) -> dict[str, Any]:
        """The stored/JSON shape: every hash by its lowercase Civitai name, and the size."""
        return {
            "sha256": self.sha256,
            "autov1": self.autov1,
            "autov2": self.autov2,
            "autov3": self.autov3,
            "autov3_short": self.autov3_short,
            "crc32": self.crc32,
            "crc32_zlib": self.crc32_zlib,
            "blake3": self.blake3,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprints:
        """Rebuild from :meth:`to_dict` output (derived keys are ignored; ``autov3_error`` optional)."""
        return cls(
            size=int(data["size"]),
            sha256=str(data["sha256"]).lower(),
            autov1=_lower_or_none(data.get("autov1")),
            autov3=_lower_or_none(data.get("autov3")),
            autov3_error=data.get("autov3_error"),
            crc32=str(data["crc32"]).lower(),
            crc32_zlib=str(data["crc32_zlib"]).lower(),
            blake3=str(data["blake3"]).lower(),
        )

    def matching_kinds(self, query: str) -> list[str]:
        """Which hashes ``query`` (a full hash or a prefix of at least 8 hex, any case) matches.

        Lets callers that hold a Fingerprints answer "is this the file the infotext names?" the
        same way the catalogue's lookup does.
        """
        prefix = normalize_hash_query(query)
        kinds = []
        for kind, value in self.to_dict().items():
            if kind == "size" or not isinstance(value, str):
                continue
            if value.startswith(prefix):
                kinds.append(kind)
        return kinds


def _lower_or_none(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def normalize_hash_query(query: str) -> str:
    """Lowercase a user-typed hash or hash prefix, refusing what cannot be one.

    Raises ValueError: a lookup by fewer than 8 hex would match far too much to be meaningful.
    """
    text = query.strip().lower()
    if len(text) < MIN_PREFIX_LENGTH or not set(text) <= _HEX_DIGITS:
        raise ValueError(
            f"{query!r} is not a hash: expected at least {MIN_PREFIX_LENGTH} hexadecimal characters"
        )
    return text


class StatKey(NamedTuple):
    """What must be unchanged for a cached fingerprint to still describe the file."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def from_stat(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def stat_key(path: PathLike) -> StatKey:
    """The cache key of ``path`` (one ``stat`` call, no read). Raises FileAccessError if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileAccessError(f"{os.fspath(path)}: no such file") from None
    except OSError as exc:
        raise FileAccessError(f"{os.fspath(path)}: cannot stat: {exc.strerror or exc}") from None
    return StatKey.from_stat(st)


# --------------------------------------------------------------------------------------------
# The hashes, each fed (view, offset) chunks in file order.


class _Safetensors:
    """What the first bytes say about the file being safetensors, and where its body starts."""

    def __init__(self, path: Path, size: int, head: bytes) -> None:
        self.body_start: int | None = None
        self.error: str | None = None
        self.header_end_check: int | None = None  # offset of the header's last byte, checked later
        claims = path.name.lower().endswith(SAFETENSORS_SUFFIXES) or head[8:9] == b"{"
        problem = self._problem(size, head)
        if problem is None:
            (length,) = struct.unpack_from("<Q", head, 0)
            self.body_start = 8 + length
            self.header_end_check = 8 + length - 1
        elif claims:
            self.error = f"not a valid safetensors file: {problem}"

    @staticmethod
    def _problem(size: int, head: bytes) -> str | None:
        if size < 10 or len(head) < 9:
            return f"the file is only {size} bytes, too short for a header"
        (length,) = struct.unpack_from("<Q", head, 0)
        if length > MAX_SAFETENSORS_HEADER:
            return f"header length {length} is over the {MAX_SAFETENSORS_HEADER}-byte safetensors limit"
        if 8 + length > size:
            return f"header length {length} runs past the end of the file ({size} bytes)"
        if length < 2:
            return f"header length {length} is too short for a JSON header"
        if head[8:9] != b"{":
            return "the header does not start with '{'"
        return None

    def check_header_end(self, view: memoryview, offset: int) -> None:
        """The header must end with '}' (or safetensors' space padding); seen as the chunk passes."""
        at = self.header_end_check
        if at is None or not offset <= at < offset + len(view):
            return
        self.header_end_check = None
        if view[at - offset] not in b"} ":
            self.body_start = None
            self.error = "not a valid safetensors file: the header does not end with '}'"


class _Hashers:
    """The hash objects of one file and the functions that feed them."""

    def __init__(self, body_start: int | None, blake3_threads: int) -> None:
        self.sha256 = hashlib.sha256()
        self.body = hashlib.sha256() if body_start is not None else None
        self.body_start = body_start or 0
        self.blake3 = blake3_module.blake3(max_threads=blake3_threads)
        self.crc = 0
        self.autov1 = hashlib.sha256()

    def feed_sha256(self, view: memoryview, offset: int) -> None:
        self.sha256.update(view)

    def feed_body(self, view: memoryview, offset: int) -> None:
        assert self.body is not None
        skip = self.body_start - offset
        if skip <= 0:
            self.body.update(view)
        elif skip < len(view):
            self.body.update(view[skip:])

    def feed_blake3(self, view: memoryview, offset: int) -> None:
        self.blake3.update(view)

    def feed_crc32(self, view: memoryview, offset: int) -> None:
        self.crc = zlib.crc32(view, self.crc)

    def feed_autov1(self, view: memoryview, offset: int) -> None:
        start = max(AUTOV1_OFFSET - offset, 0)
        end = min(AUTOV1_OFFSET + AUTOV1_LENGTH - offset, len(view))
        if start < end:
            self.autov1.update(view[start:end])

    def feeders(self) -> list[Callable[[memoryview, int], None]]:
        """One entry per hashing thread. A thread each, rather than BLAKE3 and CRC32 sharing one,
        measured a few percent faster on 2 cores: smaller work items let the scheduler fill gaps."""
        result = [self.feed_sha256, self.feed_blake3, self.feed_crc32]
        if self.body is not None:
            result.insert(1, self.feed_body)
        return result


# --------------------------------------------------------------------------------------------
# The pipeline: a reader filling a ring of buffers, a thread per hash stream.


class _Chunk:
    """One filled buffer on its way through the hashing threads."""

    __slots__ = ("_free", "_lock", "_pending", "offset", "slot", "view")

    def __init__(self, slot: int, view: memoryview, offset: int, users: int, free: queue.SimpleQueue[int]) -> None:
        self.slot = slot
        self.view = view
        self.offset = offset
        self._pending = users
        self._lock = threading.Lock()
        self._free = free

    def release(self) -> None:
        """Called by each hashing thread when done; the last one gives the buffer back to the reader."""
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._free.put(self.slot)


class _HashThread:
    """A thread feeding every chunk it is given to one hash function, in order."""

    def __init__(self, feed: Callable[[memoryview, int], None]) -> None:
        self.feed = feed
        self.inbox: queue.SimpleQueue[_Chunk | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sdhub-hash", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            chunk = self.inbox.get()
            if chunk is None:
                return
            try:
                if self.error is None:
                    self.feed(chunk.view, chunk.offset)
            except Exception as exc:  # noqa: BLE001 - re-raised by the reader thread
                self.error = exc
            finally:
                chunk.release()


def _read_full(fd: int, view: memoryview) -> int:
    """Fill ``view`` unless the file ends first (a short read mid-file is legal, if rare)."""
    filled = 0
    while filled < len(view):
        got = os.readv(fd, [view[filled:]])
        if got == 0:
            break
        filled += got
    return filled


def fingerprint_file(
    path: PathLike,
    *,
    progress: ProgressCallback | None = None,
    chunk_size: int = CHUNK_SIZE,
    blake3_threads: int = 1,
    budget: Budget | None = None,
) -> Fingerprints:
    """Read ``path`` once and compute all six hashes (see the module docstring for the algorithms).

    ``progress`` is called in the calling thread with the number of bytes just read, after each
    chunk. ``chunk_size`` and ``blake3_threads`` are tuning knobs for benchmarks and tests; on the
    2-core reference machine one BLAKE3 thread is best because both cores already run SHA-256.
    ``budget`` (a :class:`hub.limits.Budget`) is checked after each chunk: past it the hashing stops
    with :class:`hub.errors.LimitExceededError`.
    """
    file_path = Path(path)
    name = os.fspath(path)
    if chunk_size < 64 * 1024:
        raise ValueError("chunk_size must be at least 64 KiB")
    from .regular import require_regular_file

    before = require_regular_file(file_path)
    try:
        fd = os.open(file_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileAccessError(f"{name}: vanished before it could be read") from None
    except PermissionError:
        raise FileAccessError(f"{name}: permission denied") from None
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot open: {exc.strerror or exc}") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise FileChangedError(f"{name} was replaced while it was being opened; hash it again")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        size = opened.st_size
        try:
            if size <= INLINE_LIMIT:
                hashers, safetensors, total = _hash_inline(fd, file_path, size, progress)
            else:
                hashers, safetensors, total = _hash_threaded(
                    fd, file_path, size, progress, chunk_size, blake3_threads, budget
                )
        except OSError as exc:
            raise FileAccessError(f"{name}: read failed: {exc.strerror or exc}") from None
        after_fd = os.fstat(fd)
    finally:
        os.close(fd)
    _check_unchanged(name, opened, after_fd, total)

    crc = hashers.crc & 0xFFFFFFFF
    return Fingerprints(
        size=total,
        sha256=hashers.sha256.hexdigest(),
        autov1=hashers.autov1.hexdigest()[:8],
        autov3=hashers.body.hexdigest() if hashers.body is not None and safetensors.body_start is not None else None,
        autov3_error=safetensors.error,
        crc32=crc.to_bytes(4, "little").hex(),
        crc32_zlib=f"{crc:08x}",
        blake3=hashers.blake3.hexdigest(),
    )


def _check_unchanged(name: str, opened: os.stat_result, after_fd: os.stat_result, total: int) -> None:
    """Refuse a result that may mix two versions of the file."""
    try:
        after_path = os.stat(name)
    except FileNotFoundError:
        raise FileAccessError(f"{name}: vanished while it was being hashed") from None
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot stat after hashing: {exc.strerror or exc}") from None
    if (after_path.st_dev, after_path.st_ino) != (opened.st_dev, opened.st_ino):
        raise FileChangedError(f"{name} was replaced by another file while it was being hashed; hash it again")
    changes = []
    if total != opened.st_size or after_fd.st_size != opened.st_size:
        changes.append(f"size {opened.st_size} -> {after_fd.st_size} bytes ({total} read)")
    if after_fd.st_mtime_ns != opened.st_mtime_ns:
        changes.append("modification time changed")
    elif after_fd.st_ctime_ns != opened.st_ctime_ns:
        changes.append("inode change time changed")
    if changes:
        raise FileChangedError(
            f"{name} changed while it was being hashed ({'; '.join(changes)}); "
            "hash it again once nothing is writing to it"
        )


def _first_bytes(view: memoryview, filled: int) -> bytes:
    return bytes(view[: min(filled, 9)])


def _hash_inline(
    fd: int, path: Path, size: int, progress: ProgressCallback | None
) -> tuple[_Hashers, _Safetensors, int]:
    """Small files: one read, every hash in this thread."""
    data = bytearray(size + 1)  # one spare byte notices a file that grew since the stat
    view = memoryview(data)
    filled = _read_full(fd, view)
    view = view[:filled]
    safetensors = _Safetensors(path, size, _first_bytes(view, filled))
    safetensors.check_header_end(view, 0)
    hashers = _Hashers(safetensors.body_start, blake3_threads=1)
    for feed in (*hashers.feeders(), hashers.feed_autov1):
        feed(view, 0)
    if filled and progress is not None:
        progress(filled)
    return hashers, safetensors, filled


def _hash_threaded(
    fd: int,
    path: Path,
    size: int,
    progress: ProgressCallback | None,
    chunk_size: int,
    blake3_threads: int,
    budget: Budget | None = None,
) -> tuple[_Hashers, _Safetensors, int]:
    """Large files: read into a ring of buffers while one thread per hash stream consumes them."""
    buffers = [memoryview(bytearray(chunk_size)) for _ in range(RING_SIZE)]
    free: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(RING_SIZE):
        free.put(slot)

    # The first chunk tells whether there is an AutoV3 body to hash; read it before starting threads.
    slot = free.get()
    filled = _read_full(fd, buffers[slot])
    safetensors = _Safetensors(path, size, _first_bytes(buffers[slot], filled))
    hashers = _Hashers(safetensors.body_start, blake3_threads=blake3_threads)
    workers = [_HashThread(feed) for feed in hashers.feeders()]
    offset = 0
    try:
        while filled:
            view = buffers[slot][:filled]
            safetensors.check_header_end(view, offset)
            hashers.feed_autov1(view, offset)
            chunk = _Chunk(slot, view, offset, len(workers), free)
            for worker in workers:
                worker.inbox.put(chunk)
            offset += filled
            if progress is not None:
                progress(filled)
            if budget is not None:
                budget.check()
            if filled < chunk_size or offset > size:
                # End of file (_read_full only stops short there), or the file grew since the stat:
                # stop rather than chase a writer; _check_unchanged reports the size mismatch.
                break
            slot = free.get()
            filled = _read_full(fd, buffers[slot])
            for worker in workers:
                if worker.error is not None:
                    raise FingerprintError(f"{path}: hashing failed: {worker.error!r}") from worker.error
    finally:
        for worker in workers:
            worker.inbox.put(None)
        for worker in workers:
            worker.thread.join()
    for worker in workers:
        if worker.error is not None:
            raise FingerprintError(f"{path}: hashing failed: {worker.error!r}") from worker.error
    return hashers, safetensors, offset

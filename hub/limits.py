"""What reading one file may cost: the caps that keep a hostile or damaged file from hanging sdhub.

A pickle checkpoint is a program run by our restricted unpickler, and a zip member is inflated by
zlib: both can be made to cost far more than the file's size (a "billion laughs" pickle of shared
references, a deflate bomb whose member claims 100 bytes). Everything that could be made to grow
is bounded here, and a file past a bound fails with :class:`hub.errors.LimitExceededError` naming
the file and the limit, so a scan records that one file as an error and goes on with the next.

The caps are plain module constants so a caller (or a test) may change them; they are read at
each use. The defaults are far above what real checkpoints need: an SDXL checkpoint's pickle is
0.4 MB and holds 2,500 tensors; a training checkpoint with optimizer state a few MB.

:class:`Budget` is the time and memory allowance of one step on one file (identifying it, hashing
it). It is checked cooperatively, from the loops that do the work (the unpickler every few
thousand opcodes, the tensor walk, the hashing loop after each chunk): a read blocked inside the
operating system is not interrupted by it.
"""

from __future__ import annotations

import os
import sys
import time

from .errors import LimitExceededError

MiB = 1024 * 1024

#: Bytes of pickle the unpickler may consume: a zip's data.pkl as actually inflated (never its
#: declared size), a legacy file's object pickles as actually read. Reading a torch checkpoint costs
#: about 15x its data.pkl in memory (the unpickler's memo, one zip entry per storage; measured by
#: bench/bench_memory.py), so this cap and the memory budget below agree: a checkpoint this size
#: (180,000 tensors; SDXL has 2,514) fits the budget, a larger one is refused for its size.
MAX_PICKLE_BYTES = 24 * MiB
#: Entries in a checkpoint zip's central directory (a torch zip has one per storage, plus a few;
#: zipfile keeps ~0.5 KB per entry, before any budget can be checked).
MAX_ZIP_ENTRIES = 200_000
#: Dict entries the tensor walk may look at (each container is visited once, however often the
#: pickle refers to it).
MAX_WALK_ENTRIES = 4_000_000
#: Items the pickle's calls may copy in all (arguments, containers rebuilt from others): a call
#: repeated on one large tuple costs this much without the pickle growing. SDXL's copies 150,000.
MAX_PICKLE_COPIES = 100_000_000
#: Nodes in one dict key or set element (hashing a key walks all of it, shared parts every time).
MAX_KEY_NODES = 1_000
#: Characters in one tensor name, and dimensions of one tensor.
MAX_NAME_CHARS = 4_096
MAX_TENSOR_DIMS = 64

#: Identifying one file (reading its pickle and listing its tensors).
IDENTIFY_SECONDS = 30.0
#: Growth of the process's resident memory while one pickle is read.
IDENTIFY_MEMORY_BYTES = 512 * MiB

#: Hashing one file may take this long plus one second per HASH_MIN_BYTES_PER_SECOND of its size
#: (generous: only a read that has all but stalled runs out).
HASH_SECONDS = 60.0
HASH_MIN_BYTES_PER_SECOND = 1 * MiB


def human_bytes(n: int) -> str:
    if n >= 1024 * MiB:
        return f"{n / (1024 * MiB):g} GiB"
    if n >= MiB:
        return f"{n / MiB:g} MiB"
    return f"{n:,} bytes"


def _seconds(s: float) -> str:
    return f"{s:.1f}".rstrip("0").rstrip(".")


def _statm_rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows: no memory budget
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """The process's resident memory now (Linux), else its peak so far (macOS, BSD), else None."""
    rss = _statm_rss()
    return rss if rss is not None else _peak_rss()


class Budget:
    """The time (and optionally memory) one step on one file may take; :meth:`check` raises past it.

    ``memory_bytes`` bounds the growth of the process's resident memory since the budget was made.
    """

    __slots__ = ("path", "what", "seconds", "deadline", "memory_bytes", "rss_start")

    def __init__(self, path: object, what: str, seconds: float | None, memory_bytes: int | None = None) -> None:
        self.path = str(path)
        self.what = what
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.memory_bytes = memory_bytes
        self.rss_start = resident_bytes() if memory_bytes is not None else None

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise LimitExceededError(self.path, f"{self.what} took longer than {_seconds(self.seconds)} s and was "
                                                "stopped (a hostile or damaged file?)")
        if self.rss_start is not None and self.memory_bytes is not None:
            now = resident_bytes()
            if now is not None and now - self.rss_start > self.memory_bytes:
                raise LimitExceededError(self.path, f"{self.what} needed more than {human_bytes(self.memory_bytes)} "
                                                    "of memory and was stopped (a hostile or damaged file?)")


def hash_budget(path: object, size: int) -> Budget:
    """The time hashing a file of ``size`` bytes may take (no memory cap: hashing uses a fixed ring)."""
    return Budget(path, "hashing", HASH_SECONDS + size / HASH_MIN_BYTES_PER_SECOND)


__all__ = [
    "Budget", "HASH_MIN_BYTES_PER_SECOND", "HASH_SECONDS", "IDENTIFY_MEMORY_BYTES", "IDENTIFY_SECONDS",
    "MAX_KEY_NODES", "MAX_NAME_CHARS", "MAX_PICKLE_BYTES", "MAX_PICKLE_COPIES", "MAX_TENSOR_DIMS", "MAX_WALK_ENTRIES",
    "MAX_ZIP_ENTRIES", "hash_budget", "resident_bytes",
]

"""The local side of a download: free space checked first, one process per ``.part`` (a lock file beside it), the
atomic move into place, and disk errors said in words (a full disk is not a network failure).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...errors import (
    DownloadError,
    LocalWriteError,
    full_disk_reason,
)
from .transfer import DownloadResult


def check_free_space(directory: Path, needed: int, margin: int = 0) -> None:
    """Refuse to start a download the disk cannot hold (a full disk mid-file helps nobody)."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if needed + margin > free:
        raise LocalWriteError(
            f"not enough free space in {directory}: the download needs {_fmt_size(needed)}"
            f" (+{_fmt_size(margin)} margin), only {_fmt_size(free)} is free"
        )


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# -- file lock -------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (created if needed).

    Two ``sdhub install`` of the same file: the second blocks here until the first is done, then
    finds the file in the catalogue instead of downloading it again. ``on_wait`` is called once if
    we have to wait (to tell the user why nothing happens).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting = [on_wait]

    def waited() -> None:
        if waiting[0] is not None:
            waiting[0]()
            waiting[0] = None

    while True:
        fh = open(path, "a+b")
        try:
            _acquire(fh, path, timeout, waited)
        except BaseException:
            fh.close()
            raise
        # The holder before us removes the lock file when done; if we locked a file that has been
        # unlinked meanwhile, lock the new one instead (otherwise two processes would both "hold" it).
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        _release(fh)
        fh.close()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # no lock files left lying around the store
        _release(fh)
        fh.close()


def _acquire(fh: Any, path: Path, timeout: float | None, on_wait: Callable[[], None] | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        try:
            if os.name == "nt":  # pragma: no cover - exercised on Windows only
                import msvcrt

                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadError(f"timed out waiting for another sdhub process that holds {path}") from None
            time.sleep(0.05)


def _release(fh: Any) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        with contextlib.suppress(OSError):
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def hash_prefix(path: Path, hasher: Any, length: int) -> None:
    remaining = length
    with open(path, "rb") as fh:
        while remaining > 0:
            block = fh.read(min(8 * 1024 * 1024, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)


def write_error_message(what: str, path: Path, exc: OSError) -> str:
    where = exc.filename or path
    reason = full_disk_reason(exc)
    if reason is None:
        return f"{what}: cannot write {where}: {exc.strerror or exc}"
    return (f"{what}: {reason}: cannot write {where} ({exc.strerror or exc}); free some space or point SDHUB_STORE "
            f"at a bigger disk, then run the same command again to resume")


def finish(result: DownloadResult, target: Path) -> Path:
    """Move a verified ``.part`` to ``target`` atomically (same directory, so same filesystem)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(result.part_path, target)
    return target

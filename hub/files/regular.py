"""File-type checks and permissions for every path sdhub opens or creates.

Opening a FIFO (or a character device) for reading blocks until a writer appears, so a FIFO named
``x.safetensors`` would hang ``info``/``identify`` forever: every path that comes in is checked with
:func:`require_regular_file` (``stat``, ``S_ISREG``) before it is opened, and :func:`open_regular`
opens with ``O_NONBLOCK`` and re-checks the opened descriptor, so a swap between the check and the
open cannot block either.

Files sdhub creates for the user (generated images, installed models, sidecars) get the mode the
user's umask gives a new file (``0666 & ~umask``), not the 0600 ``tempfile.mkstemp`` uses:
:func:`apply_umask_mode` fixes a temporary file's mode before it is renamed into place.
"""

from __future__ import annotations

import os
import stat
import threading

from ..errors import FileAccessError

__all__ = ["apply_umask_mode", "open_regular", "require_regular_file", "umask_file_mode"]

_umask_lock = threading.Lock()


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def require_regular_file(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat`` of ``path``; :class:`FileAccessError` unless it is a regular file (directories included)."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise FileAccessError(f"{name}: no such file") from None
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot stat: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileAccessError(f"{name}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise FileAccessError(f"{name}: not a regular file ({_kind(st.st_mode)})")
    return st


def check_not_special(path: str | os.PathLike[str]) -> None:
    """Like :func:`require_regular_file` but lets directories through (diffusers folders are paths too)."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError:
        return  # the caller reports missing/unreadable paths in its own words
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise FileAccessError(f"{name}: not a regular file ({_kind(st.st_mode)})")


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor for the regular file ``path``; never blocks on a FIFO or device."""
    name = os.fspath(path)
    require_regular_file(name)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise FileAccessError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise FileAccessError(f"{name}: is a directory, not a file") from None
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileAccessError(f"{name}: not a regular file ({_kind(st.st_mode)})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status`` on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere os.umask can only be read by setting it (briefly, under a lock)
        value = os.umask(0o022)
        os.umask(value)
    return value


def umask_file_mode(directory: bool = False) -> int:
    """The mode a plain ``open(path, "w")`` (or ``mkdir``) would give under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def apply_umask_mode(target: int | str | os.PathLike[str], *, directory: bool = False) -> None:
    """Give a file made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the mode the umask asks for.

    Best effort: a filesystem without modes (some network mounts) keeps what it has.
    """
    try:
        if isinstance(target, int):
            os.fchmod(target, umask_file_mode(directory))
        else:
            os.chmod(target, umask_file_mode(directory))
    except OSError:
        pass

"""Progress reporting: the protocol the engine calls, a tqdm bar for the CLI and a callback for programs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol


class Progress(Protocol):
    """Receives byte counts; implementations must be thread-safe (parallel ranges report at once)."""

    def start(self, total: int | None, initial: int, description: str) -> None: ...

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class TqdmProgress:
    """A tqdm bar on stderr: bytes, speed and ETA, for people (the CLI disables it for --json/-q)."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self._kwargs = tqdm_kwargs
        self._bar: Any = None
        self._lock = threading.Lock()

    def start(self, total: int | None, initial: int, description: str) -> None:
        from tqdm import tqdm

        with self._lock:
            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=description[-40:],
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                dynamic_ncols=True,
                leave=False,
                **self._kwargs,
            )

    def update(self, n: int) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


class CallbackProgress:
    """Adapts a plain ``callback(done_bytes, total_bytes)`` to :class:`Progress`."""

    def __init__(self, callback: Callable[[int, int | None], None]) -> None:
        self.callback = callback
        self.done = 0
        self.total: int | None = None
        self._lock = threading.Lock()

    def start(self, total: int | None, initial: int, description: str) -> None:
        with self._lock:
            self.total, self.done = total, initial
        self.callback(self.done, self.total)

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            done = self.done
        self.callback(done, self.total)

    def close(self) -> None:
        pass

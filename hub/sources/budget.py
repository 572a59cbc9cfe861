"""A time budget for calls into sources, so one source that never answers cannot hang `search` or `lookup`.

Sources are often third-party plugins; a bug (a lock never released, a socket without a timeout, a
``sleep`` left in) would otherwise stall the whole command. The call runs on a daemon thread and is
abandoned when its budget is spent: the command reports that source and goes on with the others. The
abandoned thread cannot be killed; it ends with the process (a library caller keeps it until then).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import SourceTimeoutError

T = TypeVar("T")


def call_within(seconds: float, source: str, action: str, fn: Callable[[], T]) -> T:
    """``fn()``'s result or exception, or :class:`SourceTimeoutError` when it takes longer than ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"sdhub-{source}-{action}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SourceTimeoutError(f"source {source!r} gave no answer to {action} within {seconds:g} s "
                                 f"(its time budget: SDHUB_SOURCE_TIMEOUT)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]

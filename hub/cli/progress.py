"""tqdm progress bars on stderr, in the ``ProgressFactory`` shape the library takes."""

from __future__ import annotations

from collections.abc import Callable

MIN_BYTES_FOR_BAR = 64 * 1024 * 1024


def byte_progress(min_bytes: int = MIN_BYTES_FOR_BAR) -> Callable[[str, int], Callable[[int], None]]:
    """A factory: ``factory(label, total)`` returns a callback for byte increments (bar shown for big files only)."""
    from tqdm import tqdm

    def factory(label: str, total: int) -> Callable[[int], None]:
        if total < min_bytes:
            return lambda _n: None
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label[:40], leave=False)

        def update(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return update

    return factory

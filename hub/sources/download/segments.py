"""The parallel transfer: a large file split into ranges fetched over several connections, each range's progress
recorded in the state file so an interrupted download resumes range by range.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from ...errors import (
    DownloadError,
    SdhubError,
)
from .disk import hash_prefix
from .http import describe_network_error, origin, redact_url
from .state import PartState
from .transfer import DownloadResult, FetchRequest, Restart, Stop, parse_content_range

if TYPE_CHECKING:
    from .engine import Downloader


def split_segments(total: int, connections: int) -> list[list[int]]:
    n = max(1, min(connections, total))
    step = -(-total // n)
    return [[i, min(i + step, total), 0] for i in range(0, total, step)]


def run_segments(
    dl: Downloader,
    ctx: FetchRequest,
    part: Path,
    state_path: Path,
    state: PartState,
    name: str,
    first: requests.Response | None,
) -> DownloadResult:
    """Fill the ``.part`` with several ranged connections; the state file records each segment's progress."""
    assert state.segments is not None and state.total is not None
    total = state.total
    resumed_from = sum(s[2] for s in state.segments)
    if not part.exists() or part.stat().st_size != total:
        with open(part, "ab") as fh:
            fh.truncate(total)  # sparse: the blocks are allocated as segments arrive
    # Later segments go straight to the final URL (the signed storage link) when we have it.
    if first is not None:
        direct_url = first.url
        served_by = urlsplit(first.url).netloc
    else:
        probe = dl.open_response(ctx, ctx.url, {"Range": "bytes=0-0", **dl.validators(state)})
        try:
            dl.raise_for(probe, ctx)
            if probe.status_code != 206:
                raise Restart()
            direct_url, served_by = probe.url, urlsplit(probe.url).netloc
        finally:
            probe.close()
    same_origin = origin(direct_url) == origin(ctx.url)
    lock = threading.Lock()
    errors: list[BaseException] = []
    last_saved = [resumed_from]

    def save_state() -> None:
        with lock:
            state.save(state_path)

    def worker(index: int, initial: requests.Response | None) -> None:
        seg = state.segments[index]  # type: ignore[index]
        attempt = 0
        resp = initial
        while seg[0] + seg[2] < seg[1]:
            if dl.stop_event.is_set() or errors:
                if resp is not None:
                    resp.close()
                raise Stop()
            pos = seg[0] + seg[2]
            try:
                if resp is None:
                    extra = {"Range": f"bytes={pos}-{seg[1] - 1}", **dl.validators(state)}
                    resp = dl.open_response(ctx, direct_url, extra, auth=same_origin)
                    if resp.status_code in (401, 403, 404, 410) and direct_url != ctx.url:
                        # The signed storage link expired: fall back to the original URL.
                        resp.close()
                        resp = dl.open_response(ctx, ctx.url, extra)
                    dl.raise_for(resp, ctx)
                    if resp.status_code != 206:
                        raise Restart()
                    start, _total = parse_content_range(resp.headers.get("Content-Range"))
                    if start != pos:
                        raise Restart()
                with open(part, "r+b") as out:
                    out.seek(pos)
                    for chunk in resp.iter_content(chunk_size=dl.options.chunk_size):
                        if dl.stop_event.is_set() or errors:
                            raise Stop()
                        if not chunk:
                            continue
                        room = seg[1] - (seg[0] + seg[2])
                        chunk = chunk[:room]
                        out.write(chunk)
                        with lock:
                            seg[2] += len(chunk)
                        attempt = 0
                        if dl.progress:
                            dl.progress.update(len(chunk))
                        if seg[0] + seg[2] >= seg[1]:
                            break
                        done_now = sum(s[2] for s in state.segments)  # type: ignore[union-attr]
                        if done_now - last_saved[0] >= dl.options.state_every_bytes:
                            last_saved[0] = done_now
                            save_state()
                resp.close()
                resp = None
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
                if resp is not None:
                    resp.close()
                resp = None
                attempt += 1
                if attempt >= dl.options.retry.attempts:
                    raise
                dl.http.sleep(dl.options.retry.wait_for(attempt, None))

    if dl.progress:
        dl.progress.start(total, resumed_from, name)
    threads = []

    def run(index: int, initial: requests.Response | None) -> None:
        try:
            worker(index, initial)
        except Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    try:
        for i in range(len(state.segments)):
            initial = first if i == 0 and first is not None else None
            if initial is not None and state.segments[0][2] != 0:
                initial.close()
                initial = None
            t = threading.Thread(target=run, args=(i, initial), daemon=True, name=f"sdhub-range-{i}")
            threads.append(t)
            t.start()
        if first is not None and not threads:
            first.close()
        for t in threads:
            while t.is_alive():
                t.join(0.1)
    except KeyboardInterrupt:
        dl.stop_event.set()
        for t in threads:
            t.join(5)
        save_state()
        raise
    finally:
        if dl.progress:
            dl.progress.close()
    save_state()
    if errors:
        exc = errors[0]
        if isinstance(exc, Restart):
            raise exc
        if isinstance(exc, SdhubError):
            raise exc
        if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
            raise exc  # the disk, not the network: Downloader.fetch says so
        done = sum(s[2] for s in state.segments)
        raise DownloadError(
            f"{ctx.what}: download interrupted at {done} of {total} bytes ({describe_network_error(exc)});"
            f" run the same command again to resume from {part}"
        ) from None
    if dl.stop_event.is_set():
        raise KeyboardInterrupt
    sha256 = None
    if dl.options.hash_while_downloading:
        hasher = hashlib.sha256()
        hash_prefix(part, hasher, total)
        sha256 = hasher.hexdigest()
    return DownloadResult(
        part_path=part,
        filename=name,
        size=total,
        sha256=sha256,
        final_url=redact_url(direct_url),
        served_by=served_by,
        resumed_from=resumed_from,
        connections=len(state.segments),
    )

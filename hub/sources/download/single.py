"""The one-stream transfer: ``Range`` + ``If-Range`` resume, a server that ignores ranges, retries that keep the bytes
already written, and the hand-off to the ranged transfer when the file is large and ranges work.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from ...errors import (
    DownloadError,
)
from .disk import check_free_space, hash_prefix
from .http import describe_network_error, redact_url
from .segments import run_segments, split_segments
from .state import PartState
from .transfer import (
    DownloadResult,
    FetchRequest,
    Restart,
    content_range_total,
    parse_content_range,
    reject_non_model,
)

if TYPE_CHECKING:
    from .engine import Downloader


def run_single(
    dl: Downloader,
    ctx: FetchRequest,
    part: Path,
    state_path: Path,
    state: PartState,
    name: str,
    pending: requests.Response | None = None,
    allow_parallel: bool = True,
) -> DownloadResult:
    """Stream ``ctx.url`` into ``part`` over one connection, resuming from the bytes already there.

    ``pending`` is a response already open (the one that named the file); a large file on a server that honours
    ranges is handed to :func:`run_segments` instead, unless an earlier attempt showed ranges do not work.
    """
    have = part.stat().st_size if part.exists() else 0
    resumed_from = have
    attempt = 0
    progress_started = False
    served_by = ""
    final_url = ctx.url
    hashing = dl.options.hash_while_downloading
    hasher = hashlib.sha256()
    hashed_upto = 0
    try:
        while True:
            extra: dict[str, str] = {}
            if have > 0:
                extra["Range"] = f"bytes={have}-"
                extra.update(dl.validators(state))
            if pending is not None and have == 0:
                resp, pending = pending, None
            else:
                resp = dl.open_response(ctx, ctx.url, extra)  # connection failures already retried inside
            try:
                dl.raise_for(resp, ctx)
                final_url, served_by = resp.url, urlsplit(resp.url).netloc
                if resp.status_code == 416:
                    total = content_range_total(resp.headers.get("Content-Range"))
                    if total is not None and total == have:
                        state.total = total
                        break
                    raise Restart()
                reject_non_model(resp, ctx, name)
                if resp.status_code == 206:
                    start, total = parse_content_range(resp.headers.get("Content-Range"))
                    if start != have:
                        raise Restart()
                else:
                    if have > 0:  # Range ignored (or If-Range said the file changed): start again
                        have = 0
                        resumed_from = 0
                        hasher, hashed_upto = hashlib.sha256(), 0
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else ctx.expected_size
                    if have == 0 and part.exists():
                        part.unlink()
                if total is not None and ctx.expected_size is not None and total != ctx.expected_size:
                    raise DownloadError(
                        f"{ctx.what}: the server sends {total} bytes but the source announced"
                        f" {ctx.expected_size}; refusing a file that is not the one published"
                    )
                state.total = total
                state.etag = resp.headers.get("ETag")
                state.last_modified = resp.headers.get("Last-Modified")
                state.save(state_path)
                if total is not None:
                    check_free_space(part.parent, total - have, dl.options.free_space_margin)
                # The parallel path: big file, ranges supported, more than one connection wanted.
                if (
                    allow_parallel
                    and have == 0
                    and total is not None
                    and dl.options.connections > 1
                    and total >= dl.options.parallel_min_size
                    and (resp.status_code == 206 or resp.headers.get("Accept-Ranges", "").lower() == "bytes")
                ):
                    state.segments = split_segments(total, dl.options.connections)
                    state.save(state_path)
                    return run_segments(dl, ctx, part, state_path, state, name, first=resp)
                if not progress_started and dl.progress:
                    dl.progress.start(total, have, name)
                    progress_started = True
                if hashing and hashed_upto < have:
                    hash_prefix(part, hasher, have)
                    hashed_upto = have
                with open(part, "ab") as out:
                    for chunk in resp.iter_content(chunk_size=dl.options.chunk_size):
                        if dl.stop_event.is_set():
                            raise KeyboardInterrupt
                        if not chunk:
                            continue
                        out.write(chunk)
                        if hashing:
                            hasher.update(chunk)
                        have += len(chunk)
                        hashed_upto = have
                        attempt = 0  # progress resets the retry budget
                        if dl.progress:
                            dl.progress.update(len(chunk))
                if total is None or have >= total:
                    if total is not None and have > total:
                        raise Restart()
                    break
                raise requests.ConnectionError("connection closed before the end of the file")
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                attempt += 1
                if attempt >= dl.options.retry.attempts:
                    raise DownloadError(
                        f"{ctx.what}: download interrupted at {have} bytes ({describe_network_error(exc)});"
                        f" run the same command again to resume from {part}"
                    ) from None
                dl.http.sleep(dl.options.retry.wait_for(attempt, None))
            finally:
                resp.close()
    finally:
        if progress_started and dl.progress:
            dl.progress.close()
    if hashing and hashed_upto < have:  # resumed a file that was complete already
        hasher = hashlib.sha256()
        hash_prefix(part, hasher, have)
    if not part.exists():
        part.touch()
    return DownloadResult(
        part_path=part,
        filename=name,
        size=have,
        sha256=hasher.hexdigest() if hashing else None,
        final_url=redact_url(final_url),
        served_by=served_by,
        resumed_from=resumed_from,
        connections=1,
    )

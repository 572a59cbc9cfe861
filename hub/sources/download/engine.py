"""The :class:`Downloader`: names the file, takes the lock beside its ``.part``, resumes what a state file describes,
and runs the one-stream (:mod:`.single`) or ranged (:mod:`.segments`) transfer, restarting when the server's copy
changed under us.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from pathlib import Path

import requests

from ...errors import (
    DownloadError,
    LocalWriteError,
)
from .disk import check_free_space, file_lock, write_error_message
from .http import (
    ErrorTranslator,
    HttpClient,
    describe_network_error,
    http_error,
    redact_url,
)
from .names import (
    filename_from_content_disposition,
    filename_from_url,
    sanitize_filename,
)
from .options import DownloadOptions
from .progress import Progress
from .segments import run_segments
from .single import run_single
from .state import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, PartState
from .transfer import DownloadResult, FetchRequest, Restart


class Downloader:
    """Fetch one URL into ``<dest_dir>/<filename>.part``; see the module docstring for the rules."""

    def __init__(
        self,
        options: DownloadOptions | None = None,
        *,
        http: HttpClient | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.options = options or DownloadOptions()
        self.http = http or HttpClient(
            retry=self.options.retry, timeout=self.options.timeout, user_agent=self.options.user_agent
        )
        self.progress = progress
        self.stop_event = threading.Event()
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._part: Path | None = None  # the .part being written (named when the disk fails)

    # ---- public ----
    def fetch(
        self,
        url: str,
        dest_dir: Path,
        *,
        filename: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
        translate: ErrorTranslator | None = None,
        what: str | None = None,
        size_hint: int | None = None,
    ) -> DownloadResult:
        """Download (or resume) ``url``; returns when ``.part`` holds the whole file.

        ``filename`` (from the source's API) wins over Content-Disposition; either way it is sanitised.
        The caller verifies ``sha256`` of the result and moves the ``.part`` into place.
        """
        dest_dir = Path(dest_dir)
        what = what or redact_url(url)
        try:
            return self._fetch(url, dest_dir, filename, headers, auth_headers, expected_size, expected_sha256,
                               translate, what, size_hint)
        except requests.RequestException as exc:  # anything the retry loops do not turn into our errors
            raise DownloadError(f"{what}: {describe_network_error(exc)}") from None
        except OSError as exc:  # requests' errors are OSErrors too: this is the local disk
            raise LocalWriteError(write_error_message(what, self._part or dest_dir, exc)) from None

    def _fetch(
        self,
        url: str,
        dest_dir: Path,
        filename: str | None,
        headers: Mapping[str, str] | None,
        auth_headers: Mapping[str, str] | None,
        expected_size: int | None,
        expected_sha256: str | None,
        translate: ErrorTranslator | None,
        what: str,
        size_hint: int | None,
    ) -> DownloadResult:
        self._part = None
        dest_dir.mkdir(parents=True, exist_ok=True)
        needed = expected_size if expected_size is not None else size_hint  # hint: an approximate size (Civitai's sizeKB)
        if needed is not None:
            check_free_space(dest_dir, max(needed - self._existing_bytes(dest_dir, filename), 0),
                             self.options.free_space_margin)
        self.stop_event.clear()
        self.requests_made = 0
        ctx = FetchRequest(
            url=url,
            headers=dict(headers or {}),
            auth_headers=dict(auth_headers or {}),
            expected_size=expected_size,
            expected_sha256=expected_sha256.lower() if expected_sha256 else None,
            translate=translate,
            what=what,
        )
        if filename:
            name = sanitize_filename(filename)
            with file_lock(dest_dir / (name + PART_SUFFIX + LOCK_SUFFIX), self.options.lock_timeout):
                return self._run(ctx, dest_dir, name)
        # Name unknown until the server answers: the first response names the file, and is reused
        # as the transfer itself unless an earlier .part of that name can be resumed.
        first = self.open_response(ctx, ctx.url, {})
        try:
            self.raise_for(first, ctx)
            name = self._name_from(first)
            with file_lock(dest_dir / (name + PART_SUFFIX + LOCK_SUFFIX), self.options.lock_timeout):
                return self._run(ctx, dest_dir, name, pending=first)
        finally:
            first.close()

    def cancel(self) -> None:
        """Ask running transfers to stop (the ``.part`` and its state stay resumable)."""
        self.stop_event.set()

    # ---- internals (open_response, raise_for, validators and stop_event are shared with .single and .segments) ----
    def _existing_bytes(self, dest_dir: Path, filename: str | None) -> int:
        if not filename:
            return 0
        part = dest_dir / (sanitize_filename(filename) + PART_SUFFIX)
        state = PartState.load(part.with_name(part.name[: -len(PART_SUFFIX)] + STATE_SUFFIX))
        if state and state.segments:
            return sum(s[2] for s in state.segments)
        return part.stat().st_size if part.exists() else 0

    def _count(self) -> None:
        with self._count_lock:
            self.requests_made += 1

    def _name_from(self, resp: requests.Response) -> str:
        raw = filename_from_content_disposition(resp.headers.get("Content-Disposition"))
        if raw is None:
            raw = filename_from_url(resp.url)
        return sanitize_filename(raw or "download.bin")

    def open_response(self, ctx: FetchRequest, url: str, extra: Mapping[str, str], auth: bool = True) -> requests.Response:
        self._count()
        headers = dict(ctx.headers)
        headers.update(extra)
        headers.setdefault("Accept-Encoding", "identity")  # byte ranges must address the real bytes
        return self.http.open(
            "GET", url, headers=headers, auth_headers=ctx.auth_headers if auth else None, stream=True
        )

    def raise_for(self, resp: requests.Response, ctx: FetchRequest) -> None:
        if resp.status_code < 400 or resp.status_code == 416:
            return
        try:
            err = ctx.translate(resp) if ctx.translate else None
            if err is None:
                err = http_error(resp, ctx.what)
        finally:
            resp.close()
        raise err

    def _run(
        self, ctx: FetchRequest, dest_dir: Path, name: str, pending: requests.Response | None = None
    ) -> DownloadResult:
        part = dest_dir / (name + PART_SUFFIX)
        self._part = part
        state_path = dest_dir / (name + STATE_SUFFIX)
        state = PartState.load(state_path) if part.exists() else None
        if state is not None and ctx.expected_sha256 and state.expected_sha256 not in (None, ctx.expected_sha256):
            state = None  # the source now publishes another file under this name: start over
        if state is None or not part.exists():
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            state = PartState(url=redact_url(ctx.url), expected_sha256=ctx.expected_sha256)
        if pending is not None and (state.segments or (part.exists() and part.stat().st_size > 0)):
            pending.close()  # there is something to resume: ask for the rest instead
            pending = None
        restarts = 0
        allow_parallel = True
        while True:
            try:
                if state.segments:
                    result = run_segments(self, ctx, part, state_path, state, name, first=None)
                else:
                    result = run_single(self, ctx, part, state_path, state, name, pending, allow_parallel)
                break
            except Restart:
                pending = None
                restarts += 1
                # Ranges did not work out (a server that advertises them but answers 200, or a copy
                # that changed under us): go on with one plain stream, which copes with either.
                allow_parallel = False
                if restarts > 2:
                    raise DownloadError(f"{ctx.what}: the server's file keeps changing during the download") from None
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                state = PartState(url=redact_url(ctx.url), expected_sha256=ctx.expected_sha256)
        with contextlib.suppress(FileNotFoundError):
            state_path.unlink()
        result.requests_made = self.requests_made
        return result

    def validators(self, state: PartState) -> dict[str, str]:
        # If-Range needs a strong validator: a weak ETag cannot be used, fall back to Last-Modified.
        if state.etag and not state.etag.startswith("W/"):
            return {"If-Range": state.etag}
        if state.last_modified:
            return {"If-Range": state.last_modified}
        return {}

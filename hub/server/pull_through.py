"""Pull-through (``sdhub serve --upstream``): a file the store lacks is fetched once and streamed to every waiting client.

A miss becomes an sdhub reference (``hf:org/repo/path@rev``, ``sha256:…``, ``civitai:@version/file``) and one
*flight*: a background thread that plans it with the owning source and runs sdhub's own install (mirror fallback,
resume, SHA256 verification, identification, registration), exactly as ``sdhub install`` would. Concurrent requests
for the same reference join the flight in progress (single flight: one upstream download however many clients ask).

Each client is streamed the bytes as they arrive in the download's ``.part`` (one connection, so the file grows in
order), but never the last byte before the download is verified: a file that fails verification is cut off, so no
client ever receives it whole. The stream's descriptor survives the move of the verified file into the store. A client
that disconnects does not stop the flight; the next request finds the file in the store.

Only with ``--upstream`` and the server's bearer token in the request: a read-only server never reaches the internet.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import (
    AccessDeniedError,
    AuthRequiredError,
    BadReferenceError,
    NotInCatalogueError,
    RemoteNotFoundError,
    SdhubError,
)
from .common import error_reply, refuse_unauthorised, state_of

log = logging.getLogger("sdhub.serve")
CHUNK = 1024 * 1024
PLAN_TIMEOUT = 120.0  # seconds a request waits for the upstream metadata before giving up
STALL_TIMEOUT = 600.0  # seconds without a new byte before a waiting client is cut off


@dataclass
class Flight:
    """One upstream fetch and what its waiting clients need to know."""

    ref: str
    plan: Any = None
    done: int = 0  # bytes in the .part known to be written
    total: int | None = None
    part: Path | None = None
    path: str | None = None  # the verified file in the store, once installed
    error: SdhubError | None = None
    finished: bool = False
    planned: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()


class _FlightProgress:
    """The downloader's progress, kept on the flight so that streams know how far the ``.part`` is valid."""

    def __init__(self, flight: Flight) -> None:
        self.flight = flight

    def start(self, total: int | None, initial: int, description: str) -> None:
        self.flight.total, self.flight.done = total, initial
        self.flight.notify()

    def update(self, n: int) -> None:
        self.flight.done += n
        self.flight.notify()

    def close(self) -> None:
        self.flight.notify()


class PullThrough:
    """Single-flight fetches for one server; ``upstream_downloads`` counts the flights started (for tests/bench)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.flights: dict[str, Flight] = {}
        self.lock = threading.Lock()
        self.upstream_downloads = 0

    def join(self, ref: str) -> Flight:
        """The flight for ``ref``: the one in progress, or a new one started now."""
        with self.lock:
            flight = self.flights.get(ref)
            if flight is not None and not flight.finished:
                return flight
            flight = Flight(ref)
            self.flights[ref] = flight
            self.upstream_downloads += 1
        threading.Thread(target=self._run, args=(flight,), name=f"sdhub-pull {ref}", daemon=True).start()
        return flight

    def _run(self, flight: Flight) -> None:
        from ..sources.download.names import sanitize_filename
        from ..sources.install import INCOMING_DIR, build_context, install_plan, parse_ref, plan_for

        try:
            log.info("pull-through: fetching %s", flight.ref)
            # One connection: the .part then grows in order, so waiting clients can be streamed from it.
            ctx = build_context(self.hub, progress=_FlightProgress(flight), connections=1)
            source, plan = plan_for(self.hub, parse_ref(self.hub, flight.ref), ctx)
            incoming = Path(self.hub.settings.store).expanduser() / INCOMING_DIR
            flight.plan, flight.total = plan, plan.size
            flight.part = incoming / (sanitize_filename(plan.filename) + ".part")
            flight.planned.set()
            result = install_plan(self.hub, source, plan, ctx)
            flight.path = str(result.path)
            log.info("pull-through: %s is in the store (%s)", flight.ref, result.status)
        except SdhubError as exc:
            flight.error = exc
            log.info("pull-through: %s failed: %s", flight.ref, exc)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must end the flight, not hang its clients
            flight.error = SdhubError(f"{flight.ref}: {type(exc).__name__}: {exc}")
            log.exception("pull-through: %s failed", flight.ref)
        finally:
            flight.finished = True
            flight.planned.set()
            flight.notify()

    # -- serving a flight --------------------------------------------------------------------------------
    def respond(self, request: Request, ref: str, headers_for: Any = None) -> Response:
        """The reply for ``ref`` being pulled through: headers from the plan, the body streamed as it arrives."""
        flight = self.join(ref)
        flight.planned.wait(PLAN_TIMEOUT)
        if flight.error is not None:
            return failure_reply(flight.error)
        if flight.plan is None:
            return error_reply(504, f"{ref}: the upstream source did not answer in time")
        plan = flight.plan
        size = plan.size if plan.size is not None else flight.total
        headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'inline; filename="{_ascii(plan.filename)}"'}
        if plan.sha256:
            headers["ETag"] = f'"{plan.sha256}"'
        if headers_for is not None:
            headers.update(headers_for(plan))
        start, end, status = 0, size, 200
        wanted = request.headers.get("range")
        if wanted and size is not None:
            parsed = _one_range(wanted, size)
            if parsed is None:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            start, end, status = parsed[0], parsed[1], 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        if end is not None:
            headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type="application/octet-stream")
        return StreamingResponse(self.stream(flight, start, end), status_code=status, headers=headers,
                                 media_type="application/octet-stream")

    def stream(self, flight: Flight, start: int, end: int | None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` as the flight writes them; the last one only once the file is verified."""
        fh = None
        pos, idle_since = start, time.monotonic()
        try:
            while end is None or pos < end:
                if fh is None:
                    fh = self._open(flight)
                    if fh is None:
                        if flight.finished:
                            raise _Cut(flight)
                        flight.wait(0.2)
                        continue
                    fh.seek(pos)
                verified = flight.finished and flight.error is None
                total = end if end is not None else flight.total
                limit = total if verified else min(flight.done, (total or flight.done + 1) - 1)
                if limit is None:
                    limit = os.fstat(fh.fileno()).st_size
                if pos < limit:
                    chunk = fh.read(min(CHUNK, limit - pos))
                    if chunk:
                        pos += len(chunk)
                        idle_since = time.monotonic()
                        yield chunk
                        continue
                    if verified:  # the verified file is shorter than promised: never pretend it is whole
                        raise _Cut(flight)
                if flight.finished and (flight.error is not None or (end is None and verified)):
                    if flight.error is not None:
                        raise _Cut(flight)
                    return
                if time.monotonic() - idle_since > STALL_TIMEOUT:
                    raise _Cut(flight)
                flight.wait(0.5)
        finally:
            if fh is not None:
                fh.close()

    @staticmethod
    def _open(flight: Flight) -> Any:
        for candidate in (flight.part, flight.path):
            if candidate is None:
                continue
            try:
                return open(candidate, "rb")  # noqa: SIM115 - closed by stream()
            except OSError:
                continue
        return None


class _Cut(Exception):
    """Ends a stream early (the connection is dropped): the flight failed or stalled."""

    def __init__(self, flight: Flight) -> None:
        super().__init__(f"pull-through of {flight.ref} stopped: {flight.error or 'no progress'}")


def _ascii(name: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in os.path.basename(name))


def _one_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` as [start, end); None when unsatisfiable or not one range."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(size - n, 0), size) if n > 0 else None
        start = int(first)
        stop = min(int(last) + 1, size) if last else size
    except ValueError:
        return None
    return (start, stop) if 0 <= start < stop else None


def failure_reply(exc: SdhubError) -> Response:
    """What a client is told when the upstream fetch failed: the source's one-line reason, with a fitting status."""
    status = 502
    if isinstance(exc, RemoteNotFoundError | NotInCatalogueError):
        status = 404
    elif isinstance(exc, BadReferenceError):
        status = 400
    elif isinstance(exc, AuthRequiredError | AccessDeniedError):
        status = 403
    return error_reply(status, str(exc), headers={"X-Error-Code": "EntryNotFound"} if status == 404 else None)


def puller(request: Request) -> PullThrough | Response | None:
    """This server's PullThrough when the request may use it; a 401 when only the token is missing; None otherwise."""
    state = state_of(request)
    if not state.upstream:
        return None
    refused = refuse_unauthorised(request, "pull-through")
    if refused is not None:
        return refused
    return state.extras["pull"]  # type: ignore[no-any-return]

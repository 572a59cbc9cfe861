"""A tiny real HTTP server for tests: routes, a request log, and a byte server with Range/If-Range.

The fakes for Civitai, LiblibAI and Hugging Face build on it. Everything is real HTTP on
127.0.0.1 (ThreadingHTTPServer, ``poll_interval=0.05`` so shutdown is fast); tests assert on
what the server received, never on our client's internals.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # When set, the body is streamed by this function instead (it gets the handler's wfile).
    stream: Callable[[Any], None] | None = None


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    hdrs = {"Content-Type": "application/json; charset=utf-8"}
    hdrs.update(headers or {})
    return Reply(status, hdrs, body)


Route = Callable[[Request], Reply]


class FakeServer:
    """Routes are (method, regex) → handler; unmatched paths get a 404 JSON body."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._connections: set[Any] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._connections.add(self.connection)

            def finish(self) -> None:
                with outer._lock:
                    outer._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                )
                with outer._lock:
                    outer.log.append(req)
                reply = outer.dispatch(req)
                self.send_response(reply.status)
                if reply.stream is None and "Content-Length" not in reply.headers:
                    reply.headers["Content-Length"] = str(len(reply.body))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.stream is not None and "Content-Length" not in reply.headers:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    if reply.stream is not None:
                        reply.stream(self)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_HEAD = do_PUT = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    return  # the client hung up (we test exactly that); not worth a traceback
                super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str) -> Callable[[Route], Route]:
        def deco(fn: Route) -> Route:
            self.routes.append((method.upper(), re.compile(pattern), fn))
            return fn

        return deco

    def dispatch(self, req: Request) -> Reply:
        for method, pattern, fn in self.routes:
            if (method == req.method or (method == "GET" and req.method == "HEAD")) and pattern.fullmatch(req.path):
                return fn(req)
        return json_reply({"error": f"no route for {req.method} {req.path}"}, 404)

    def start(self) -> FakeServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"{self.name}-server"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections: a stopped server is really gone."""
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def requests(self, path_prefix: str = "", method: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.log if r.path.startswith(path_prefix) and (method is None or r.method == method)]

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class ServedFile:
    """A file served with real Range semantics, plus fault switches tests turn on."""

    data: bytes
    filename: str | None = None
    content_disposition: str | None = None
    etag: str | None = None
    content_type: str = "application/octet-stream"
    # faults
    drop_after: int | None = None  # close the connection after this many body bytes (once per request count)
    drop_times: int = 0  # how many requests get dropped
    ignore_range: bool = False  # answer 200 with the whole body to a Range request
    throttle_bps: int | None = None  # bytes per second per connection
    status_queue: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)  # replies served first
    accept_ranges: bool = True

    def __post_init__(self) -> None:
        if self.etag is None:
            self.etag = '"' + hashlib.sha256(self.data).hexdigest()[:16] + '"'

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def reply(self, req: Request) -> Reply:
        if self.status_queue:
            status, headers, body = self.status_queue.pop(0)
            return Reply(status, dict(headers), body)
        total = len(self.data)
        start, end = 0, total - 1
        status = 200
        rng = req.header("Range")
        if_range = req.header("If-Range")
        use_range = rng is not None and self.accept_ranges and not self.ignore_range
        if use_range and if_range is not None and if_range != self.etag:
            use_range = False  # the validator does not match: whole file, 200
        if use_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
            if m:
                start = int(m.group(1))
                if start >= total:
                    return Reply(416, {"Content-Range": f"bytes */{total}"}, b"")
                end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
                status = 206
        headers = {
            "Content-Type": self.content_type,
            "Content-Length": str(end - start + 1),
            "ETag": self.etag or "",
        }
        if self.accept_ranges:
            headers["Accept-Ranges"] = "bytes"
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        if self.content_disposition is not None:
            headers["Content-Disposition"] = self.content_disposition
        elif self.filename:
            headers["Content-Disposition"] = f'attachment; filename="{self.filename}"'
        body = self.data[start : end + 1]
        drop = None
        if self.drop_after is not None and self.drop_times > 0 and req.method == "GET":
            self.drop_times -= 1
            drop = self.drop_after

        def stream(handler: Any) -> None:
            sent = 0
            step = 64 * 1024
            t0 = time.monotonic()
            while sent < len(body):
                piece = body[sent : sent + step]
                if drop is not None and sent + len(piece) > drop:
                    piece = piece[: max(drop - sent, 0)]
                    handler.wfile.write(piece)
                    handler.wfile.flush()
                    handler.close_connection = True
                    handler.connection.shutdown(2)
                    return
                handler.wfile.write(piece)
                sent += len(piece)
                if self.throttle_bps:
                    ahead = sent / self.throttle_bps - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)

        return Reply(status, headers, b"", stream=stream)

"""uvicorn around the app: in the foreground for ``sdhub serve``, on a background thread for tests and benchmarks.

The listening socket is bound here, before uvicorn starts, so that a taken port is one clear error and port 0 (any
free port) is known before the first request. uvicorn's own access log is off: it would print query strings, and a
Civitai client may put ``?token=`` there. The log here names method, path and status only.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ServerError

log = logging.getLogger("sdhub.serve")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ServerError (not an OSError traceback) when that is impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


class AccessLog:
    """ASGI middleware: one log line per request, without query string or headers (tokens live there)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %s", client[0], scope["method"], scope["path"], status[0] if status else "-")


def _config(app: Any, quiet: bool) -> Any:
    import uvicorn

    return uvicorn.Config(AccessLog(app), log_level="warning" if quiet else "info", access_log=False,
                          lifespan="off", timeout_keep_alive=30, server_header=False)


def run_forever(app: Any, *, host: str, port: int, announce: Callable[[str], None] | None = None) -> None:
    """Serve until Ctrl-C (uvicorn handles SIGINT/SIGTERM and finishes the requests in flight)."""
    import uvicorn

    sock = bind(host, port)
    bound = sock.getsockname()
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    if announce is not None:
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        announce(f"sdhub serve: http://{shown}:{bound[1]}")
    server = uvicorn.Server(_config(app, quiet=True))
    # uvicorn finishes the requests in flight on SIGINT/SIGTERM, then re-raises the signal: Ctrl-C and a service
    # manager's stop are the normal ends of a server, so they return here instead of ending as an error.
    previous = signal.signal(signal.SIGTERM, _stop) if threading.current_thread() is threading.main_thread() else None
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        sock.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if announce is not None:
        announce("sdhub serve: stopped")


class _Stopped(Exception):
    """SIGTERM arrived (after uvicorn's graceful shutdown)."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped()


class BackgroundServer:
    """The app on ``host`` at a free port, on a daemon thread; ``with BackgroundServer(app) as srv: srv.url``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.sock = bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = uvicorn.Server(_config(app, quiet=True))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"sdhub-serve-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServerError("the background server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

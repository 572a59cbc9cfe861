"""``sdhub ui``: the same server as ``sdhub serve``, on 127.0.0.1 only, with the page at ``/``.

The page may start installs and ask the sources without a token because nothing but this machine can reach
it (see :func:`hub.server.ui_api._refused` for what keeps other web sites out).
"""

from __future__ import annotations

import threading
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub

UI_HOST = "127.0.0.1"


def create_ui_app(hub: Hub) -> Any:
    """The server's app with the page's installs and remote search allowed (loopback only; no pull-through)."""
    from .app import create_app
    from .ui_api import enable_local_ui

    app = create_app(hub)
    enable_local_ui(app)
    return app


def serve_ui(hub: Hub | None = None, *, port: int = 8765, open_browser: bool = False,
             announce: Callable[[str], None] | None = None) -> None:
    """Serve the page on ``127.0.0.1:port`` until interrupted; ``open_browser`` opens it once it listens."""
    from . import require_server_libraries
    from .runner import run_forever

    require_server_libraries()
    own = hub is None
    if hub is None:
        from ..api import Hub

        hub = Hub()

    def listening(line: str) -> None:
        if announce is not None:
            announce(line.replace("sdhub serve", "sdhub ui"))
        if open_browser and line.startswith("sdhub serve: http"):
            url = line.split(": ", 1)[1] + "/"
            # uvicorn starts serving right after this line; the browser's first request simply waits for it.
            threading.Timer(0.3, webbrowser.open, args=(url,)).start()

    try:
        run_forever(create_ui_app(hub), host=UI_HOST, port=port, announce=listening)
    finally:
        if own:
            hub.close()

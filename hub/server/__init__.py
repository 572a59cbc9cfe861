"""``sdhub serve``: the store over HTTP, for the other machines of a studio.

Starlette (routing, ``FileResponse`` with ``Range``/``If-Range``/HEAD) served by uvicorn: both well kept, small, pure
ASGI, and installed with the ``serve`` extra (``pip install 'sdhub[serve]'``) so that ``import hub`` and every other
command stay light. Nothing here imports Starlette until a server is built.

The rooms inside (one module per idea):

- :mod:`.app`: ``create_app(hub, token=…, upstream=…)``, which mounts every router below;
- :mod:`.api_v1`: sdhub's own JSON API under ``/api/sdhub/v1`` (files, search, status), the ground for the web page;
- :mod:`.runner`: uvicorn in the foreground (``sdhub serve``) or on a background thread (tests, benchmarks);
- :mod:`.auth`: the bearer token (read from a file, never from the command line; never logged).

Read-only unless a token is given; binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ServerError

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
EXTRA_HINT = "pip install 'sdhub[serve]'"


def require_server_libraries() -> None:
    """One clear error when the ``serve`` extra is missing, instead of an ImportError deep in a request."""
    missing = []
    for name in ("starlette", "uvicorn"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ServerError(f"sdhub serve needs {' and '.join(missing)}: {EXTRA_HINT}")


def serve(hub: Hub | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          token_file: str | Path | None = None, upstream: bool = False,
          announce: Any = None) -> None:
    """Serve ``hub``'s store until interrupted (``sdhub serve``).

    ``token_file`` holds the bearer token that writes and pull-through need; without it the server is read-only.
    ``announce(line)`` is told where the server listens once it does.
    """
    require_server_libraries()
    from .app import create_app
    from .auth import read_token_file
    from .runner import run_forever

    token = read_token_file(token_file) if token_file is not None else None
    own = hub is None
    if hub is None:
        from ..api import Hub

        hub = Hub()
    try:
        app = create_app(hub, token=token, upstream=upstream)
        run_forever(app, host=host, port=port, announce=announce)
    finally:
        if own:
            hub.close()


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "require_server_libraries", "serve"]

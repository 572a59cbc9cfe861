"""The application factory: one Starlette app with every router of :mod:`hub.server` mounted.

Each router module exposes ``routes() -> list[BaseRoute]``; adding a room to the server is one line in
:func:`_routers`. Handlers find the hub, the token and the upstream switch on ``request.app.state.sdhub``
(:class:`hub.server.common.ServerState`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ..errors import ServerError
from .common import ServerState

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub


def _routers() -> list[list[BaseRoute]]:
    """Every room's routes, most specific first (the Hugging Face routes catch ``/{repo}/resolve/…`` last)."""
    from . import api_v1, civitai_compat, hf_compat, ui_api

    return [api_v1.routes(), ui_api.routes(), civitai_compat.routes(), hf_compat.routes()]


def create_app(hub: Hub, *, token: str | None = None, upstream: bool = False,
               extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The server for ``hub``'s store. ``token`` (None: read-only) guards writes and pull-through; ``upstream``
    lets a miss be fetched from the real sources."""
    if upstream and token is None:
        raise ServerError("--upstream needs --token-file: pull-through reaches the internet only for clients holding"
                          " the token")
    routes: list[BaseRoute] = list(extra_routes)
    for group in _routers():
        routes.extend(group)
    app = Starlette(routes=routes)
    state = ServerState(hub=hub, token=token, upstream=upstream)
    if upstream:
        from .pull_through import PullThrough

        state.extras["pull"] = PullThrough(hub)
    app.state.sdhub = state
    return app

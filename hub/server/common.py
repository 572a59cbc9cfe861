"""What every router shares: the server's state, JSON replies, error replies and the token check."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .auth import token_matches

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub
    from ..catalogue import FileRecord


@dataclass
class ServerState:
    """One server's settings, kept on ``app.state.sdhub``.

    ``lock`` serialises catalogue writes made on the server's behalf (registering a pulled-through file);
    reads need no lock (each catalogue call opens its own session).
    """

    hub: Hub
    token: str | None = None
    upstream: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return self.token is None


def state_of(request: Request) -> ServerState:
    return request.app.state.sdhub  # type: ignore[no-any-return]


class JSONReply(Response):
    """JSON with sdhub's conventions: UTF-8 kept as is, anything odd (datetimes, paths) as its string."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str).encode("utf-8")


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> JSONReply:
    """``{"error": message}`` with ``status``: the one shape of every refusal of the JSON API."""
    return JSONReply({"error": message}, status_code=status, headers=headers)


def authorised(request: Request) -> bool:
    """Whether the request carries the server's bearer token (never True on a read-only server)."""
    return token_matches(state_of(request).token, request.headers.get("authorization"))


def refuse_unauthorised(request: Request, what: str) -> JSONReply | None:
    """None when the request may do ``what`` (a write, a pull-through); else the 401/403 reply to send."""
    state = state_of(request)
    if state.token is None:
        return error_reply(403, f"this server is read-only: {what} needs `sdhub serve --token-file FILE`")
    if not authorised(request):
        sent = request.headers.get("authorization")
        message = f"{what} needs the server's token (Authorization: Bearer …)" if not sent else "wrong token"
        return error_reply(401, message, headers={"WWW-Authenticate": 'Bearer realm="sdhub"'})
    return None


class StoreFileResponse(FileResponse):
    """A store file with ``Range``/``If-Range``/HEAD (Starlette's), read in 1 MiB chunks (64 KiB costs a thread hop
    per chunk: a 2 GiB model would be 32,768 of them)."""

    chunk_size = 1024 * 1024


SHA256_HEX = frozenset("0123456789abcdef")


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in SHA256_HEX for c in value.lower())


def on_disk(record: FileRecord) -> bool:
    """A catalogued single file that is still there (diffusers folders are served file by file, not whole)."""
    return os.path.isfile(record.path)


def record_by_sha256(hub: Hub, digest: str) -> FileRecord | None:
    """The catalogued file with this SHA256, preferring a copy still on disk; None when there is none."""
    digest = digest.lower()
    found = [r for r in hub.catalogue.by_hash(digest) if (r.sha256 or "").lower() == digest]
    present = [r for r in found if on_disk(r)]
    return (present or found or [None])[0]


def serve_record(record: FileRecord, headers: dict[str, str] | None = None) -> Response:
    """The bytes of a catalogued file, named as catalogued, its SHA256 as the strong ETag."""
    all_headers = {"ETag": f'"{record.sha256}"'} if record.sha256 else {}
    all_headers.update(headers or {})
    return StoreFileResponse(record.path, headers=all_headers, filename=record.name,
                             media_type="application/octet-stream")

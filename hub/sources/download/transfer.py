"""One fetch's vocabulary: the request it serves, the result it returns, the signals that restart or stop it, and
the checks on a response (its Content-Range, an error page served in place of a model).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import requests

from ...errors import (
    DownloadError,
)
from .http import ErrorTranslator
from .options import NON_MODEL_CONTENT_TYPES, TEXT_FILE_SUFFIXES


@dataclass
class DownloadResult:
    """A complete ``.part`` file, not yet verified or moved: :mod:`hub.install` does that."""

    part_path: Path
    filename: str
    size: int
    sha256: str | None  # None when hash_while_downloading is off
    final_url: str
    served_by: str
    resumed_from: int = 0
    connections: int = 1
    requests_made: int = 0


class Restart(Exception):
    """The server's copy changed (If-Range failed) or ranges are unusable: start over from byte 0."""


class Stop(Exception):
    """Another segment failed or the user interrupted: stop this worker quietly."""


@dataclass
class FetchRequest:
    url: str
    headers: dict[str, str]
    auth_headers: dict[str, str]
    expected_size: int | None
    expected_sha256: str | None
    translate: ErrorTranslator | None
    what: str


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)


def parse_content_range(value: str | None) -> tuple[int, int | None]:
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        raise Restart()
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), total


def content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+\*/(\d+)", value or "", re.I)
    return int(m.group(1)) if m else None


def reject_non_model(resp: requests.Response, ctx: FetchRequest, name: str) -> None:
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype != "text/html" and name.lower().endswith(TEXT_FILE_SUFFIXES):
        return
    if ctype in NON_MODEL_CONTENT_TYPES:
        snippet = ""
        with contextlib.suppress(Exception):
            snippet = resp.raw.read(200, decode_content=True).decode("utf-8", "replace").replace("\n", " ")
        resp.close()
        raise DownloadError(
            f"{ctx.what}: the server sent a {ctype} page instead of a model file ({snippet[:100]!r});"
            " a login wall, a Cloudflare challenge or an outage page; nothing was saved"
        )

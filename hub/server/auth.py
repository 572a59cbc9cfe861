"""The bearer token: read from a file (a command-line argument would show in ``ps``), compared in constant time.

The token is never logged and never echoed back in an error: a refused request says only that a token is needed
or that the one sent is wrong.
"""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

from ..errors import ServerError

MAX_TOKEN_FILE = 4096


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in ``path`` (surrounding whitespace stripped); one clear error when it is missing, empty or odd."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise ServerError(f"cannot read the token file {p}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ServerError(f"the token file {p} is not a regular file")
    if st.st_size > MAX_TOKEN_FILE:
        raise ServerError(f"the token file {p} is {st.st_size} bytes; a token is one line")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerError(f"cannot read the token file {p}: {getattr(exc, 'strerror', None) or exc}") from exc
    token = text.strip()
    if not token:
        raise ServerError(f"the token file {p} is empty")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ServerError(f"the token file {p} must hold one token on one line (no spaces)")
    return token


def bearer_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """Whether the request's bearer token is ``expected`` (False when the server has none: it is read-only)."""
    sent = bearer_of(authorization)
    if expected is None or sent is None:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())

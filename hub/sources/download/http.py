"""The HTTP client every source uses: back-off honouring ``Retry-After``, redirects followed by hand so an auth header
never leaves its origin, URLs shown without their secrets, and HTTP and network failures turned into one clear line.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from ...errors import (
    RateLimitedError,
    SdhubError,
    SourceError,
)
from .options import REDIRECT_CODES, RETRY_STATUS, USER_AGENT, RetryPolicy

# -- small helpers --------------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) — auth headers go only to the origin they were meant for."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def redact_url(url: str) -> str:
    """The URL without its query string: signed storage URLs and ``?token=`` must never reach a log."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.split("@")[-1], parts.path, "", ""))


_SECRET_PARAM = re.compile(r"(token|key|sig|signature|secret|password|auth|credential|policy|x-amz-|x-goog-)", re.I)


def shown_url(url: str) -> str:
    """The URL as requested, query included (``?fileId=``, ``?type=VAE``), with secret-looking values masked.

    What ``--dry-run --json`` prints: the query says which file is asked for, so it stays; tokens and
    signatures never appear (their values become ``***``), nor does a user:password in the host.
    """
    parts = urlsplit(url)
    query = "&".join(
        f"{key}=***" if _SECRET_PARAM.search(unquote(key)) else (f"{key}={value}" if eq else key)
        for key, eq, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, parts.netloc.split("@")[-1], parts.path, query, ""))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# -- HTTP client for API calls ---------------------------------------------------------------------

ErrorTranslator = Callable[[requests.Response], SdhubError | None]


class HttpClient:
    """``requests`` with our rules: timeouts, back-off on 429/5xx honouring Retry-After, auth kept on its host.

    Auth headers are passed separately from other headers so that, when a redirect leaves the
    origin they were meant for, they are dropped (and never re-added). Nothing here logs a header.
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        user_agent: str = USER_AGENT,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.user_agent = user_agent
        self._session_factory = session_factory
        self._local = threading.local()
        self.sleep: Callable[[float], None] = time.sleep

    @property
    def session(self) -> requests.Session:
        """One session per thread: requests sessions are not thread-safe."""
        sess = getattr(self._local, "session", None)
        if sess is None:
            sess = self._session_factory()
            self._local.session = sess
        return sess

    def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        params: Any = None,
        json_body: Any = None,
        data: Any = None,
        stream: bool = False,
        retry_statuses: tuple[int, ...] = RETRY_STATUS,
        max_redirects: int = 10,
        retry_unreachable: bool = True,
    ) -> requests.Response:
        """One request with retries; redirects followed by hand so auth never leaves its origin.

        Returns the final response whatever its status (the caller translates errors); raises
        :class:`SourceError` when the host cannot be reached at all. ``retry_unreachable=False``
        gives up at once when no connection can be made (refused, unknown host, connect timeout):
        API calls use it, so an offline ``sdhub search`` answers in a second, not after a minute
        of back-off; downloads keep retrying, a CDN restarting mid-file comes back.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._follow(method, url, headers, auth_headers, params, json_body, data, stream, max_redirects)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.retry.attempts or (not retry_unreachable and _could_not_connect(exc)):
                    raise SourceError(_unreachable_message(url, exc)) from None
                self.sleep(self.retry.wait_for(attempt, None))
                continue
            except requests.RequestException as exc:  # a bad redirect target, an undecodable body…
                raise SourceError(f"{redact_url(url)}: {describe_network_error(exc)}") from None
            if resp.status_code in retry_statuses and attempt < self.retry.attempts:
                wait = self.retry.wait_for(attempt, parse_retry_after(resp.headers.get("Retry-After")))
                resp.close()
                self.sleep(wait)
                continue
            return resp

    def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        auth_headers: Mapping[str, str] | None,
        params: Any,
        json_body: Any,
        data: Any,
        stream: bool,
        max_redirects: int,
    ) -> requests.Response:
        first_origin = origin(url)
        send_auth = bool(auth_headers)
        current = url
        for _ in range(max_redirects + 1):
            hdrs = {"User-Agent": self.user_agent}
            hdrs.update(headers or {})
            if send_auth and origin(current) == first_origin:
                hdrs.update(auth_headers or {})
            else:
                send_auth = False  # once auth was dropped it stays dropped, even back on the first host
            resp = self.session.request(
                method,
                current,
                headers=hdrs,
                params=params if current == url else None,
                json=json_body,
                data=data,
                stream=stream,
                allow_redirects=False,
                timeout=self.timeout,
            )
            if resp.status_code in REDIRECT_CODES and resp.headers.get("Location"):
                nxt = urljoin(resp.url, resp.headers["Location"])
                resp.close()
                if resp.status_code == 303:
                    method, json_body, data = "GET", None, None
                current = nxt
                continue
            return resp
        raise SourceError(f"too many redirects from {redact_url(url)}")

    def json(
        self,
        method: str,
        url: str,
        *,
        translate: ErrorTranslator | None = None,
        what: str = "",
        **kwargs: Any,
    ) -> Any:
        """Call a JSON API and return the decoded body; errors become the source's own messages."""
        kwargs.setdefault("retry_unreachable", False)
        resp = self.open(method, url, **kwargs)
        try:
            if resp.status_code >= 400:
                err = translate(resp) if translate else None
                if err is not None:
                    raise err
                raise http_error(resp, what or redact_url(url))
            try:
                return resp.json()
            except ValueError:
                snippet = resp.text[:80].replace("\n", " ")
                raise SourceError(
                    f"{what or redact_url(url)}: expected JSON, got {resp.headers.get('Content-Type', '?')}"
                    f" ({snippet!r}); a proxy or a Cloudflare challenge page may be in the way"
                ) from None
        finally:
            resp.close()


def _root_cause(exc: BaseException) -> BaseException:
    """What really went wrong under requests' wrapping (urllib3's MaxRetryError → its reason)."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    if isinstance(inner, urllib3.exceptions.MaxRetryError) and inner.reason is not None:
        return inner.reason
    return inner or exc


def _could_not_connect(exc: BaseException) -> bool:
    """No connection was made at all: refused, unknown host, connect timeout."""
    return isinstance(exc, requests.ConnectTimeout) or isinstance(
        _root_cause(exc), (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    )


def describe_network_error(exc: BaseException) -> str:
    """The cause of a network error in a few words, without any URL query.

    requests' messages repeat the pool, the host and the whole URL with its query (a signed
    storage link, a ``?token=``) before the cause, so the cause got cut off and the query leaked.
    """
    cause = _root_cause(exc)
    text = str(cause) or type(cause).__name__
    # urllib3 names the connection first: "HTTPSConnectionPool(host='x', port=443): …", "<…Connection object at 0x…>: …"
    text = re.sub(r"^\S*HTTPS?Connection(?:Pool)?\([^)]*\)\s*:\s*", "", text)
    text = re.sub(r"<[^>]*Connection object at 0x[0-9a-fA-F]+>\s*:\s*", "", text)
    text = re.sub(r"https?://\S+", lambda m: redact_url(m.group(0)), text)
    text = re.sub(r"(/[^\s?'\"]*)\?[^\s'\")]*", r"\1", text)  # "…with url: /path?X-Amz-Signature=…"
    text = " ".join(text.split())
    return (text[:200] + "…") if len(text) > 200 else text


def _unreachable_message(url: str, exc: BaseException) -> str:
    """``cannot reach <url>: <cause>``, naming the redirect target when that is what failed."""
    failed = getattr(getattr(exc, "request", None), "url", None) or url
    where = redact_url(url)
    if origin(failed) != origin(url):
        where += f" (redirected to {redact_url(failed)})"
    return f"cannot reach {where}: {describe_network_error(exc)}"


def error_message_from_body(resp: requests.Response) -> str:
    """``{"error": ..., "message": ...}`` (Civitai), ``{"msg": ...}`` (LiblibAI), an S3-style XML
    ``<Error><Code>…<Message>…`` (the storage behind signed links) or a short text body."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "message", "msg", "detail") if body.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))
    text = (resp.text or "").strip().replace("\n", " ")
    if "<Error>" in text:
        code = re.search(r"<Code>([^<]{1,100})</Code>", text)
        message = re.search(r"<Message>([^<]{1,200})</Message>", text)
        parts = [m.group(1).strip() for m in (code, message) if m]
        if parts:
            return ": ".join(parts)
    return text[:120]


def http_error(resp: requests.Response, what: str) -> SdhubError:
    """A generic status → error class mapping, for sources without their own translator."""
    from ...errors import AccessDeniedError, AuthRequiredError, RemoteNotFoundError

    detail = error_message_from_body(resp)
    msg = f"{what}: HTTP {resp.status_code}" + (f" ({detail})" if detail else "")
    if resp.status_code == 401:
        return AuthRequiredError(msg)
    if resp.status_code == 403:
        return AccessDeniedError(msg)
    if resp.status_code in (404, 410):
        return RemoteNotFoundError(msg)
    if resp.status_code in (429, 503):
        return RateLimitedError(msg + "; the server kept asking to slow down, try again later")
    return SourceError(msg)

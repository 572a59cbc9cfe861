"""Our HTTP layer: JSON API calls with polite back-off, and the resumable, parallel file download engine.

Why our own engine rather than a plain ``requests.get``: model files are multi-GB, CDNs throttle
each connection, connections drop, and users interrupt. So a download writes ``<name>.part``
beside its target (never a half file under the real name), resumes with ``Range`` + ``If-Range``,
copes with a server that answers 200 to a Range request, can split a large file over several
ranged connections, backs off on 429/503 honouring ``Retry-After``, checks free space first, takes
its file name from ``Content-Disposition`` (RFC 6266, sanitised) and never sends an auth header to a
host other than the one it was meant for (redirects to signed storage URLs are followed by hand).
Verification against the source's hash and registration happen in :mod:`hub.install`.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import hashlib
import json
import os
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from ..errors import (
    DownloadError,
    LocalWriteError,
    RateLimitedError,
    SdhubError,
    SourceError,
)

USER_AGENT = "sdhub/0.1 (+https://github.com/sdhub; python-requests)"
PART_SUFFIX = ".part"
STATE_SUFFIX = ".part.json"
LOCK_SUFFIX = ".lock"
REDIRECT_CODES = (301, 302, 303, 307, 308)
RETRY_STATUS = (429, 500, 502, 503, 504)
# Bodies a model file is never served as: an error page saved as "model.safetensors" is the #1 complaint.
NON_MODEL_CONTENT_TYPES = ("text/html", "application/json", "text/plain")
# ...unless the file asked for is text itself (a config.json, a README): then only an HTML page is an error page.
TEXT_FILE_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".md", ".toml", ".csv")


# -- options, progress ------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """How often and how long to wait on 429/5xx and dropped connections.

    ``max_wait`` caps every single wait (a server asking ``Retry-After: 3600`` is not obeyed
    blindly); tests set it tiny so fault tests stay fast.
    """

    attempts: int = 5
    base_wait: float = 1.0
    max_wait: float = 30.0

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        wanted = retry_after if retry_after is not None else self.base_wait * (2 ** max(attempt - 1, 0))
        return max(0.0, min(wanted, self.max_wait))


@dataclass
class DownloadOptions:
    """Engine settings; ``connections`` > 1 splits files of at least ``parallel_min_size`` bytes."""

    connections: int = 1
    parallel_min_size: int = 32 * 1024 * 1024
    chunk_size: int = 256 * 1024  # bytes lost on a dropped connection are at most one chunk
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: tuple[float, float] = (10.0, 60.0)
    free_space_margin: int = 16 * 1024 * 1024
    lock_timeout: float | None = None
    user_agent: str = USER_AGENT
    state_every_bytes: int = 8 * 1024 * 1024
    # SHA-256 while streaming (free on real networks). hub.install turns it off because it
    # fingerprints every file afterwards anyway (all six hashes in one read).
    hash_while_downloading: bool = True


class Progress(Protocol):
    """Receives byte counts; implementations must be thread-safe (parallel ranges report at once)."""

    def start(self, total: int | None, initial: int, description: str) -> None: ...

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class TqdmProgress:
    """A tqdm bar on stderr: bytes, speed and ETA, for people (the CLI disables it for --json/-q)."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self._kwargs = tqdm_kwargs
        self._bar: Any = None
        self._lock = threading.Lock()

    def start(self, total: int | None, initial: int, description: str) -> None:
        from tqdm import tqdm

        with self._lock:
            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=description[-40:],
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                dynamic_ncols=True,
                leave=False,
                **self._kwargs,
            )

    def update(self, n: int) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


class CallbackProgress:
    """Adapts a plain ``callback(done_bytes, total_bytes)`` to :class:`Progress`."""

    def __init__(self, callback: Callable[[int, int | None], None]) -> None:
        self.callback = callback
        self.done = 0
        self.total: int | None = None
        self._lock = threading.Lock()

    def start(self, total: int | None, initial: int, description: str) -> None:
        with self._lock:
            self.total, self.done = total, initial
        self.callback(self.done, self.total)

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            done = self.done
        self.callback(done, self.total)

    def close(self) -> None:
        pass


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


_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


def sanitize_filename(name: str, fallback: str = "download.bin", max_bytes: int = 240) -> str:
    """A name that is safe as one path component on every OS: no separators, ``..``, control or reserved names.

    Servers (and attackers) control ``Content-Disposition``; ``../../x`` must land as ``x`` inside
    the store, never outside it.
    """
    name = unicodedata.normalize("NFC", name or "")
    # Keep only the last component of either separator style.
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_CHARS.sub("_", name)
    name = name.strip().strip(".").strip()
    if not name or name in (".", ".."):
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        name = "_" + name
    encoded = name.encode("utf-8")
    if len(encoded) > max_bytes:
        ext_part = ("." + ext) if dot and len(ext) <= 16 else ""
        room = max_bytes - len(ext_part.encode("utf-8"))
        stem_bytes = name[: len(name) - len(ext_part)].encode("utf-8")[:room]
        name = stem_bytes.decode("utf-8", "ignore").rstrip(". ") + ext_part
    return name


def _fix_mojibake(value: str) -> str:
    """Undo UTF-8 bytes that were decoded as ISO-8859-1 (what http.client does with raw UTF-8 headers)."""
    try:
        fixed = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
    return fixed


def _cd_params(header: str) -> dict[str, str]:
    """Parameters of a Content-Disposition header, honouring quoted strings with escapes and ';' inside."""
    params: dict[str, str] = {}
    i, n = header.find(";"), len(header)
    if i < 0:
        return params
    while i < n:
        i += 1
        while i < n and header[i] in " \t":
            i += 1
        eq = header.find("=", i)
        if eq < 0:
            break
        key = header[i:eq].strip().lower()
        i = eq + 1
        while i < n and header[i] in " \t":
            i += 1
        if i < n and header[i] == '"':
            i += 1
            buf = []
            while i < n and header[i] != '"':
                if header[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(header[i])
                i += 1
            value = "".join(buf)
            semi = header.find(";", i)
            i = n if semi < 0 else semi
        else:
            semi = header.find(";", i)
            end = n if semi < 0 else semi
            value = header[i:end].strip()
            i = end
        if key and key not in params:
            params[key] = value
    return params


def filename_from_content_disposition(header: str | None) -> str | None:
    """The (unsanitised) file name of an RFC 6266 header: ``filename*`` (RFC 5987) wins over ``filename``."""
    if not header:
        return None
    params = _cd_params(header)
    extended = params.get("filename*")
    if extended:
        charset, _, rest = extended.partition("'")
        _lang, _, encoded = rest.partition("'")
        if encoded or rest:
            try:
                return unquote(encoded if _ else rest, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                pass
    plain = params.get("filename")
    if plain:
        if "%" in plain and re.search(r"%[0-9A-Fa-f]{2}", plain):
            try:
                decoded = unquote(plain, errors="strict")
                plain = decoded
            except UnicodeDecodeError:
                pass
        return _fix_mojibake(plain)
    return None


def filename_from_url(url: str) -> str | None:
    path = urlsplit(url).path
    last = unquote(path.rsplit("/", 1)[-1]) if path else ""
    return last or None


def check_free_space(directory: Path, needed: int, margin: int = 0) -> None:
    """Refuse to start a download the disk cannot hold (a full disk mid-file helps nobody)."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if needed + margin > free:
        raise LocalWriteError(
            f"not enough free space in {directory}: the download needs {_fmt_size(needed)}"
            f" (+{_fmt_size(margin)} margin), only {_fmt_size(free)} is free"
        )


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# -- file lock -------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (created if needed).

    Two ``sdhub install`` of the same file: the second blocks here until the first is done, then
    finds the file in the catalogue instead of downloading it again. ``on_wait`` is called once if
    we have to wait (to tell the user why nothing happens).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting = [on_wait]

    def waited() -> None:
        if waiting[0] is not None:
            waiting[0]()
            waiting[0] = None

    while True:
        fh = open(path, "a+b")
        try:
            _acquire(fh, path, timeout, waited)
        except BaseException:
            fh.close()
            raise
        # The holder before us removes the lock file when done; if we locked a file that has been
        # unlinked meanwhile, lock the new one instead (otherwise two processes would both "hold" it).
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        _release(fh)
        fh.close()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # no lock files left lying around the store
        _release(fh)
        fh.close()


def _acquire(fh: Any, path: Path, timeout: float | None, on_wait: Callable[[], None] | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        try:
            if os.name == "nt":  # pragma: no cover - exercised on Windows only
                import msvcrt

                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadError(f"timed out waiting for another sdhub process that holds {path}") from None
            time.sleep(0.05)


def _release(fh: Any) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        with contextlib.suppress(OSError):
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    from ..errors import AccessDeniedError, AuthRequiredError, RemoteNotFoundError

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


# -- the download engine ---------------------------------------------------------------------------


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


class _Restart(Exception):
    """The server's copy changed (If-Range failed) or ranges are unusable: start over from byte 0."""


class _Stop(Exception):
    """Another segment failed or the user interrupted: stop this worker quietly."""


@dataclass
class _State:
    """What is persisted beside the .part so a later run can resume safely."""

    url: str  # for people reading the file; without its query (a signed link must not sit on disk)
    expected_sha256: str | None
    total: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    segments: list[list[int]] | None = None  # [start, end_exclusive, done]

    @classmethod
    def load(cls, path: Path) -> _State | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.__dict__), encoding="utf-8")
        os.replace(tmp, path)


class Downloader:
    """Fetch one URL into ``<dest_dir>/<filename>.part``; see the module docstring for the rules."""

    def __init__(
        self,
        options: DownloadOptions | None = None,
        *,
        http: HttpClient | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.options = options or DownloadOptions()
        self.http = http or HttpClient(
            retry=self.options.retry, timeout=self.options.timeout, user_agent=self.options.user_agent
        )
        self.progress = progress
        self._stop = threading.Event()
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._part: Path | None = None  # the .part being written (named when the disk fails)

    # ---- public ----
    def fetch(
        self,
        url: str,
        dest_dir: Path,
        *,
        filename: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
        translate: ErrorTranslator | None = None,
        what: str | None = None,
        size_hint: int | None = None,
    ) -> DownloadResult:
        """Download (or resume) ``url``; returns when ``.part`` holds the whole file.

        ``filename`` (from the source's API) wins over Content-Disposition; either way it is sanitised.
        The caller verifies ``sha256`` of the result and moves the ``.part`` into place.
        """
        dest_dir = Path(dest_dir)
        what = what or redact_url(url)
        try:
            return self._fetch(url, dest_dir, filename, headers, auth_headers, expected_size, expected_sha256,
                               translate, what, size_hint)
        except requests.RequestException as exc:  # anything the retry loops do not turn into our errors
            raise DownloadError(f"{what}: {describe_network_error(exc)}") from None
        except OSError as exc:  # requests' errors are OSErrors too: this is the local disk
            raise LocalWriteError(_write_error_message(what, self._part or dest_dir, exc)) from None

    def _fetch(
        self,
        url: str,
        dest_dir: Path,
        filename: str | None,
        headers: Mapping[str, str] | None,
        auth_headers: Mapping[str, str] | None,
        expected_size: int | None,
        expected_sha256: str | None,
        translate: ErrorTranslator | None,
        what: str,
        size_hint: int | None,
    ) -> DownloadResult:
        self._part = None
        dest_dir.mkdir(parents=True, exist_ok=True)
        needed = expected_size if expected_size is not None else size_hint  # hint: an approximate size (Civitai's sizeKB)
        if needed is not None:
            check_free_space(dest_dir, max(needed - self._existing_bytes(dest_dir, filename), 0),
                             self.options.free_space_margin)
        self._stop.clear()
        self.requests_made = 0
        ctx = _Fetch(
            url=url,
            headers=dict(headers or {}),
            auth_headers=dict(auth_headers or {}),
            expected_size=expected_size,
            expected_sha256=expected_sha256.lower() if expected_sha256 else None,
            translate=translate,
            what=what,
        )
        if filename:
            name = sanitize_filename(filename)
            with file_lock(dest_dir / (name + PART_SUFFIX + LOCK_SUFFIX), self.options.lock_timeout):
                return self._run(ctx, dest_dir, name)
        # Name unknown until the server answers: the first response names the file, and is reused
        # as the transfer itself unless an earlier .part of that name can be resumed.
        first = self._open(ctx, ctx.url, {})
        try:
            self._raise_for(first, ctx)
            name = self._name_from(first)
            with file_lock(dest_dir / (name + PART_SUFFIX + LOCK_SUFFIX), self.options.lock_timeout):
                return self._run(ctx, dest_dir, name, pending=first)
        finally:
            first.close()

    def cancel(self) -> None:
        """Ask running transfers to stop (the ``.part`` and its state stay resumable)."""
        self._stop.set()

    # ---- internals ----
    def _existing_bytes(self, dest_dir: Path, filename: str | None) -> int:
        if not filename:
            return 0
        part = dest_dir / (sanitize_filename(filename) + PART_SUFFIX)
        state = _State.load(part.with_name(part.name[: -len(PART_SUFFIX)] + STATE_SUFFIX))
        if state and state.segments:
            return sum(s[2] for s in state.segments)
        return part.stat().st_size if part.exists() else 0

    def _count(self) -> None:
        with self._count_lock:
            self.requests_made += 1

    def _name_from(self, resp: requests.Response) -> str:
        raw = filename_from_content_disposition(resp.headers.get("Content-Disposition"))
        if raw is None:
            raw = filename_from_url(resp.url)
        return sanitize_filename(raw or "download.bin")

    def _open(self, ctx: _Fetch, url: str, extra: Mapping[str, str], auth: bool = True) -> requests.Response:
        self._count()
        headers = dict(ctx.headers)
        headers.update(extra)
        headers.setdefault("Accept-Encoding", "identity")  # byte ranges must address the real bytes
        return self.http.open(
            "GET", url, headers=headers, auth_headers=ctx.auth_headers if auth else None, stream=True
        )

    def _raise_for(self, resp: requests.Response, ctx: _Fetch) -> None:
        if resp.status_code < 400 or resp.status_code == 416:
            return
        try:
            err = ctx.translate(resp) if ctx.translate else None
            if err is None:
                err = http_error(resp, ctx.what)
        finally:
            resp.close()
        raise err

    def _run(
        self, ctx: _Fetch, dest_dir: Path, name: str, pending: requests.Response | None = None
    ) -> DownloadResult:
        part = dest_dir / (name + PART_SUFFIX)
        self._part = part
        state_path = dest_dir / (name + STATE_SUFFIX)
        state = _State.load(state_path) if part.exists() else None
        if state is not None and ctx.expected_sha256 and state.expected_sha256 not in (None, ctx.expected_sha256):
            state = None  # the source now publishes another file under this name: start over
        if state is None or not part.exists():
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            state = _State(url=redact_url(ctx.url), expected_sha256=ctx.expected_sha256)
        if pending is not None and (state.segments or (part.exists() and part.stat().st_size > 0)):
            pending.close()  # there is something to resume: ask for the rest instead
            pending = None
        restarts = 0
        allow_parallel = True
        while True:
            try:
                if state.segments:
                    result = self._run_segments(ctx, part, state_path, state, name, first=None)
                else:
                    result = self._run_single(ctx, part, state_path, state, name, pending, allow_parallel)
                break
            except _Restart:
                pending = None
                restarts += 1
                # Ranges did not work out (a server that advertises them but answers 200, or a copy
                # that changed under us): go on with one plain stream, which copes with either.
                allow_parallel = False
                if restarts > 2:
                    raise DownloadError(f"{ctx.what}: the server's file keeps changing during the download") from None
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                state = _State(url=redact_url(ctx.url), expected_sha256=ctx.expected_sha256)
        with contextlib.suppress(FileNotFoundError):
            state_path.unlink()
        result.requests_made = self.requests_made
        return result

    def _validators(self, state: _State) -> dict[str, str]:
        # If-Range needs a strong validator: a weak ETag cannot be used, fall back to Last-Modified.
        if state.etag and not state.etag.startswith("W/"):
            return {"If-Range": state.etag}
        if state.last_modified:
            return {"If-Range": state.last_modified}
        return {}

    def _run_single(
        self,
        ctx: _Fetch,
        part: Path,
        state_path: Path,
        state: _State,
        name: str,
        pending: requests.Response | None = None,
        allow_parallel: bool = True,
    ) -> DownloadResult:
        have = part.stat().st_size if part.exists() else 0
        resumed_from = have
        attempt = 0
        progress_started = False
        served_by = ""
        final_url = ctx.url
        hashing = self.options.hash_while_downloading
        hasher = hashlib.sha256()
        hashed_upto = 0
        try:
            while True:
                extra: dict[str, str] = {}
                if have > 0:
                    extra["Range"] = f"bytes={have}-"
                    extra.update(self._validators(state))
                if pending is not None and have == 0:
                    resp, pending = pending, None
                else:
                    resp = self._open(ctx, ctx.url, extra)  # connection failures already retried inside
                try:
                    self._raise_for(resp, ctx)
                    final_url, served_by = resp.url, urlsplit(resp.url).netloc
                    if resp.status_code == 416:
                        total = _content_range_total(resp.headers.get("Content-Range"))
                        if total is not None and total == have:
                            state.total = total
                            break
                        raise _Restart()
                    _reject_non_model(resp, ctx, name)
                    if resp.status_code == 206:
                        start, total = _parse_content_range(resp.headers.get("Content-Range"))
                        if start != have:
                            raise _Restart()
                    else:
                        if have > 0:  # Range ignored (or If-Range said the file changed): start again
                            have = 0
                            resumed_from = 0
                            hasher, hashed_upto = hashlib.sha256(), 0
                        length = resp.headers.get("Content-Length")
                        total = int(length) if length and length.isdigit() else ctx.expected_size
                        if have == 0 and part.exists():
                            part.unlink()
                    if total is not None and ctx.expected_size is not None and total != ctx.expected_size:
                        raise DownloadError(
                            f"{ctx.what}: the server sends {total} bytes but the source announced"
                            f" {ctx.expected_size}; refusing a file that is not the one published"
                        )
                    state.total = total
                    state.etag = resp.headers.get("ETag")
                    state.last_modified = resp.headers.get("Last-Modified")
                    state.save(state_path)
                    if total is not None:
                        check_free_space(part.parent, total - have, self.options.free_space_margin)
                    # The parallel path: big file, ranges supported, more than one connection wanted.
                    if (
                        allow_parallel
                        and have == 0
                        and total is not None
                        and self.options.connections > 1
                        and total >= self.options.parallel_min_size
                        and (resp.status_code == 206 or resp.headers.get("Accept-Ranges", "").lower() == "bytes")
                    ):
                        state.segments = _split(total, self.options.connections)
                        state.save(state_path)
                        return self._run_segments(ctx, part, state_path, state, name, first=resp)
                    if not progress_started and self.progress:
                        self.progress.start(total, have, name)
                        progress_started = True
                    if hashing and hashed_upto < have:
                        _hash_prefix(part, hasher, have)
                        hashed_upto = have
                    with open(part, "ab") as out:
                        for chunk in resp.iter_content(chunk_size=self.options.chunk_size):
                            if self._stop.is_set():
                                raise KeyboardInterrupt
                            if not chunk:
                                continue
                            out.write(chunk)
                            if hashing:
                                hasher.update(chunk)
                            have += len(chunk)
                            hashed_upto = have
                            attempt = 0  # progress resets the retry budget
                            if self.progress:
                                self.progress.update(len(chunk))
                    if total is None or have >= total:
                        if total is not None and have > total:
                            raise _Restart()
                        break
                    raise requests.ConnectionError("connection closed before the end of the file")
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                    attempt += 1
                    if attempt >= self.options.retry.attempts:
                        raise DownloadError(
                            f"{ctx.what}: download interrupted at {have} bytes ({describe_network_error(exc)});"
                            f" run the same command again to resume from {part}"
                        ) from None
                    self.http.sleep(self.options.retry.wait_for(attempt, None))
                finally:
                    resp.close()
        finally:
            if progress_started and self.progress:
                self.progress.close()
        if hashing and hashed_upto < have:  # resumed a file that was complete already
            hasher = hashlib.sha256()
            _hash_prefix(part, hasher, have)
        if not part.exists():
            part.touch()
        return DownloadResult(
            part_path=part,
            filename=name,
            size=have,
            sha256=hasher.hexdigest() if hashing else None,
            final_url=redact_url(final_url),
            served_by=served_by,
            resumed_from=resumed_from,
            connections=1,
        )

    def _run_segments(
        self,
        ctx: _Fetch,
        part: Path,
        state_path: Path,
        state: _State,
        name: str,
        first: requests.Response | None,
    ) -> DownloadResult:
        """Fill the ``.part`` with several ranged connections; the state file records each segment's progress."""
        assert state.segments is not None and state.total is not None
        total = state.total
        resumed_from = sum(s[2] for s in state.segments)
        if not part.exists() or part.stat().st_size != total:
            with open(part, "ab") as fh:
                fh.truncate(total)  # sparse: the blocks are allocated as segments arrive
        # Later segments go straight to the final URL (the signed storage link) when we have it.
        if first is not None:
            direct_url = first.url
            served_by = urlsplit(first.url).netloc
        else:
            probe = self._open(ctx, ctx.url, {"Range": "bytes=0-0", **self._validators(state)})
            try:
                self._raise_for(probe, ctx)
                if probe.status_code != 206:
                    raise _Restart()
                direct_url, served_by = probe.url, urlsplit(probe.url).netloc
            finally:
                probe.close()
        same_origin = origin(direct_url) == origin(ctx.url)
        lock = threading.Lock()
        errors: list[BaseException] = []
        last_saved = [resumed_from]

        def save_state() -> None:
            with lock:
                state.save(state_path)

        def worker(index: int, initial: requests.Response | None) -> None:
            seg = state.segments[index]  # type: ignore[index]
            attempt = 0
            resp = initial
            while seg[0] + seg[2] < seg[1]:
                if self._stop.is_set() or errors:
                    if resp is not None:
                        resp.close()
                    raise _Stop()
                pos = seg[0] + seg[2]
                try:
                    if resp is None:
                        extra = {"Range": f"bytes={pos}-{seg[1] - 1}", **self._validators(state)}
                        resp = self._open(ctx, direct_url, extra, auth=same_origin)
                        if resp.status_code in (401, 403, 404, 410) and direct_url != ctx.url:
                            # The signed storage link expired: fall back to the original URL.
                            resp.close()
                            resp = self._open(ctx, ctx.url, extra)
                        self._raise_for(resp, ctx)
                        if resp.status_code != 206:
                            raise _Restart()
                        start, _total = _parse_content_range(resp.headers.get("Content-Range"))
                        if start != pos:
                            raise _Restart()
                    with open(part, "r+b") as out:
                        out.seek(pos)
                        for chunk in resp.iter_content(chunk_size=self.options.chunk_size):
                            if self._stop.is_set() or errors:
                                raise _Stop()
                            if not chunk:
                                continue
                            room = seg[1] - (seg[0] + seg[2])
                            chunk = chunk[:room]
                            out.write(chunk)
                            with lock:
                                seg[2] += len(chunk)
                            attempt = 0
                            if self.progress:
                                self.progress.update(len(chunk))
                            if seg[0] + seg[2] >= seg[1]:
                                break
                            done_now = sum(s[2] for s in state.segments)  # type: ignore[union-attr]
                            if done_now - last_saved[0] >= self.options.state_every_bytes:
                                last_saved[0] = done_now
                                save_state()
                    resp.close()
                    resp = None
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
                    if resp is not None:
                        resp.close()
                    resp = None
                    attempt += 1
                    if attempt >= self.options.retry.attempts:
                        raise
                    self.http.sleep(self.options.retry.wait_for(attempt, None))

        if self.progress:
            self.progress.start(total, resumed_from, name)
        threads = []

        def run(index: int, initial: requests.Response | None) -> None:
            try:
                worker(index, initial)
            except _Stop:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

        try:
            for i in range(len(state.segments)):
                initial = first if i == 0 and first is not None else None
                if initial is not None and state.segments[0][2] != 0:
                    initial.close()
                    initial = None
                t = threading.Thread(target=run, args=(i, initial), daemon=True, name=f"sdhub-range-{i}")
                threads.append(t)
                t.start()
            if first is not None and not threads:
                first.close()
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
        except KeyboardInterrupt:
            self._stop.set()
            for t in threads:
                t.join(5)
            save_state()
            raise
        finally:
            if self.progress:
                self.progress.close()
        save_state()
        if errors:
            exc = errors[0]
            if isinstance(exc, _Restart):
                raise exc
            if isinstance(exc, SdhubError):
                raise exc
            if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
                raise exc  # the disk, not the network: Downloader.fetch says so
            done = sum(s[2] for s in state.segments)
            raise DownloadError(
                f"{ctx.what}: download interrupted at {done} of {total} bytes ({describe_network_error(exc)});"
                f" run the same command again to resume from {part}"
            ) from None
        if self._stop.is_set():
            raise KeyboardInterrupt
        sha256 = None
        if self.options.hash_while_downloading:
            hasher = hashlib.sha256()
            _hash_prefix(part, hasher, total)
            sha256 = hasher.hexdigest()
        return DownloadResult(
            part_path=part,
            filename=name,
            size=total,
            sha256=sha256,
            final_url=redact_url(direct_url),
            served_by=served_by,
            resumed_from=resumed_from,
            connections=len(state.segments),
        )


@dataclass
class _Fetch:
    url: str
    headers: dict[str, str]
    auth_headers: dict[str, str]
    expected_size: int | None
    expected_sha256: str | None
    translate: ErrorTranslator | None
    what: str


def _split(total: int, connections: int) -> list[list[int]]:
    n = max(1, min(connections, total))
    step = -(-total // n)
    return [[i, min(i + step, total), 0] for i in range(0, total, step)]


def _hash_prefix(path: Path, hasher: Any, length: int) -> None:
    remaining = length
    with open(path, "rb") as fh:
        while remaining > 0:
            block = fh.read(min(8 * 1024 * 1024, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        raise _Restart()
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), total


def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+\*/(\d+)", value or "", re.I)
    return int(m.group(1)) if m else None


def _reject_non_model(resp: requests.Response, ctx: _Fetch, name: str) -> None:
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


def keep_resumable(part: Path, url: str, expected_sha256: str | None = None) -> None:
    """Record that ``part`` holds a whole file, so the next fetch of it only asks whether anything is left.

    :mod:`hub.install` calls it when a finished download could not be registered (interrupted
    while fingerprinting, the store not writable): the next run reuses the bytes.
    """
    name = part.name.removesuffix(PART_SUFFIX)
    _State(url=redact_url(url), expected_sha256=expected_sha256, total=part.stat().st_size).save(part.with_name(name + STATE_SUFFIX))


def _write_error_message(what: str, path: Path, exc: OSError) -> str:
    where = exc.filename or path
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
        hint = "; free some space, then run the same command again to resume"
    return f"{what}: cannot write {where}: {exc.strerror or exc}{hint}"


def finish(result: DownloadResult, target: Path) -> Path:
    """Move a verified ``.part`` to ``target`` atomically (same directory, so same filesystem)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(result.part_path, target)
    return target

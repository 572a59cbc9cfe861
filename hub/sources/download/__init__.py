"""Our HTTP layer: JSON API calls with polite back-off, and the resumable, parallel file download engine.

Why our own engine rather than a plain ``requests.get``: model files are multi-GB, CDNs throttle
each connection, connections drop, and users interrupt. So a download writes ``<name>.part``
beside its target (never a half file under the real name), resumes with ``Range`` + ``If-Range``,
copes with a server that answers 200 to a Range request, can split a large file over several
ranged connections, backs off on 429/503 honouring ``Retry-After``, checks free space first, takes
its file name from ``Content-Disposition`` (RFC 6266, sanitised) and never sends an auth header to a
host other than the one it was meant for (redirects to signed storage URLs are followed by hand).
Verification against the source's hash and registration happen in :mod:`hub.sources.install`.

The parts, one idea each:

- ``options``: retry policy and download options;       ``progress``: the progress protocol and its tqdm bar;
- ``http``: the HTTP client (auth scoped to one origin, redirects by hand, back-off) and its error messages;
- ``names``: file names from Content-Disposition and URLs, sanitised;
- ``disk``: free space, the lock beside a ``.part``, the atomic move into place;
- ``state``: what is persisted beside a ``.part`` so a later run resumes safely;
- ``transfer``: one fetch's request, its result, and the checks on a response's ranges and body;
- ``single`` / ``segments``: the one-stream transfer and the several-ranged-connections transfer;
- ``engine``: :class:`Downloader`, which picks a name, takes the lock and runs one of the two.
"""

from __future__ import annotations

from .disk import check_free_space, file_lock, finish
from .engine import Downloader
from .http import (
    ErrorTranslator,
    HttpClient,
    describe_network_error,
    error_message_from_body,
    http_error,
    origin,
    parse_retry_after,
    redact_url,
    shown_url,
)
from .names import filename_from_content_disposition, filename_from_url, sanitize_filename
from .options import (
    NON_MODEL_CONTENT_TYPES,
    REDIRECT_CODES,
    RETRY_STATUS,
    TEXT_FILE_SUFFIXES,
    USER_AGENT,
    DownloadOptions,
    RetryPolicy,
)
from .progress import CallbackProgress, Progress, TqdmProgress
from .state import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, keep_resumable
from .transfer import DownloadResult

__all__ = [
    "CallbackProgress", "DownloadOptions", "DownloadResult", "Downloader", "ErrorTranslator", "HttpClient",
    "LOCK_SUFFIX", "NON_MODEL_CONTENT_TYPES", "PART_SUFFIX", "Progress", "REDIRECT_CODES", "RETRY_STATUS",
    "RetryPolicy", "STATE_SUFFIX", "TEXT_FILE_SUFFIXES", "TqdmProgress", "USER_AGENT", "check_free_space",
    "describe_network_error", "error_message_from_body", "file_lock", "filename_from_content_disposition",
    "filename_from_url", "finish", "http_error", "keep_resumable", "origin", "parse_retry_after", "redact_url",
    "sanitize_filename", "shown_url",
]

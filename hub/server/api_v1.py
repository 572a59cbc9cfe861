"""sdhub's own JSON API under ``/api/sdhub/v1``: what the store holds, for the web page and for sdhub peers.

Every answer is JSON; every refusal is ``{"error": "…"}`` with a 4xx/5xx status. File dicts are exactly
``sdhub list --json``'s (``FileRecord.to_dict()``) plus ``download_url``, a path on this server.

- ``GET /api/sdhub/v1/status``: ``{"version", "read_only", "upstream", "files"}``.
- ``GET /api/sdhub/v1/files?family=&kind=&source=&q=&limit=100&offset=0``: ``{"files": [...], "count", "limit",
  "offset"}`` (``count`` is the number in this page; ``limit`` at most 1000).
- ``GET /api/sdhub/v1/files/{sha256}``: one file, with ``identification`` and evidence (``sdhub info``'s fields); 404
  when the store has no file with that SHA256.
- ``GET|HEAD /api/sdhub/v1/files/{sha256}/content``: its bytes, with ``Range``, ``ETag: "<sha256>"`` and
  ``Content-Disposition``; what ``SDHUB_PEERS`` clients fetch.
- ``GET /api/sdhub/v1/resolve?ref=REF``: the store's file for an sdhub reference (``civitai:…``, ``hf:…``,
  ``sha256:…``), with ``source_infos`` (every field of each source link); 404 when the store has none. Catalogue only:
  what ``SDHUB_PEERS`` clients ask before the internet.
- ``POST /api/sdhub/v1/install`` with ``{"ref": REF}``: ``sdhub install REF`` on the server, answering
  ``sdhub install --json``'s object plus ``file``; a write, so only with the token (401/403 otherwise) and ``--upstream``.
- ``GET /api/sdhub/v1/search?q=&family=&kind=&source=&limit=``: the catalogue search (``sdhub list TEXT``):
  ``{"query", "results": [...], "count"}``. Only the store is searched, never the internet.
- ``GET /api/sdhub/v1/search/remote?q=&source=&type=&base=&sort=&period=&limit=&nsfw=&cursor=``: ``sdhub search``
  across the sources, answered by this server (``{"results", "errors", "next_cursors"}``, ``sdhub search --json``'s
  shape); only with ``sdhub serve --upstream`` (otherwise 403), since it reaches the internet on the client's behalf.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..catalogue import FileRecord
from ..errors import SdhubError
from .common import (JSONReply, error_reply, is_sha256, on_disk, record_by_sha256, refuse_unauthorised, serve_record,
                     state_of)

PREFIX = "/api/sdhub/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def content_url(sha256: str) -> str:
    return f"{PREFIX}/files/{sha256}/content"


def file_dict(record: FileRecord, *, full: bool = False) -> dict[str, Any]:
    data = record.to_dict(full=full)
    data["download_url"] = content_url(record.sha256) if record.sha256 and record.format != "diffusers" else None
    data["on_disk"] = on_disk(record) or (record.format == "diffusers" and os.path.isdir(record.path))
    return data


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParam(f"{name} must be a whole number, not {raw!r}") from None
    if not lo <= value <= hi:
        raise _BadParam(f"{name} must be between {lo} and {hi}, not {value}")
    return value


class _BadParam(ValueError):
    """A query parameter that cannot be used: a 400 with its message."""


def _listing(request: Request, text: str | None) -> list[FileRecord]:
    q = request.query_params
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    return state_of(request).hub.catalogue.list(family=q.get("family") or None, kind=q.get("kind") or None,
                                                source=q.get("source") or None, text=text or None,
                                                limit=limit, offset=offset)


def status(request: Request) -> Response:
    state = state_of(request)
    try:
        ver = version("sdhub")
    except PackageNotFoundError:  # pragma: no cover - a source checkout not installed
        ver = "unknown"
    return JSONReply({"version": ver, "read_only": state.read_only, "upstream": state.upstream,
                      "files": state.hub.catalogue.count()})


def list_files(request: Request) -> Response:
    try:
        records = _listing(request, request.query_params.get("q"))
    except _BadParam as exc:
        return error_reply(400, str(exc))
    return JSONReply({"files": [file_dict(r) for r in records], "count": len(records),
                      "limit": _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
                      "offset": _int_param(request, "offset", 0, 0, 10**9)})


def _record_or_error(request: Request) -> FileRecord | Response:
    digest = request.path_params["sha256"]
    if not is_sha256(digest):
        return error_reply(400, f"{digest!r} is not a SHA256 (64 hex digits)")
    record = record_by_sha256(state_of(request).hub, digest)
    if record is None:
        return error_reply(404, f"no file with SHA256 {digest.lower()} in this store")
    return record


def get_file(request: Request) -> Response:
    found = _record_or_error(request)
    if isinstance(found, Response):
        return found
    return JSONReply(file_dict(found, full=True))


def file_content(request: Request) -> Response:
    found = _record_or_error(request)
    if isinstance(found, Response):
        if found.status_code == 404:  # not in the store: fetched by its hash when the server pulls through
            from .pull_through import puller

            pull = puller(request)
            if isinstance(pull, Response):
                return pull
            if pull is not None:
                return pull.respond(request, f"sha256:{request.path_params['sha256'].lower()}")
        return found
    if found.format == "diffusers":
        return error_reply(409, f"{found.name} is a diffusers folder: fetch its files through /{{repo}}/resolve/…")
    if not on_disk(found):
        return error_reply(410, f"{found.name} is catalogued but no longer on disk here")
    return serve_record(found)


def resolve_ref(request: Request) -> Response:
    """What ``SDHUB_PEERS`` clients ask first: the store's file for an sdhub reference (catalogue only, no network)."""
    from ..sources.install import find_local

    ref = (request.query_params.get("ref") or "").strip()
    if not ref:
        return error_reply(400, "give the reference as ?ref=…")
    try:
        found = find_local(state_of(request).hub, ref)
    except SdhubError as exc:
        return error_reply(400, str(exc))
    if found is None:
        return error_reply(400, f"{ref!r} is not an sdhub reference")
    files = [r for r in found if r.format != "diffusers" and on_disk(r) and r.sha256]
    if not files:
        return error_reply(404, f"{ref} is not in this store")
    record = files[-1]
    data = file_dict(record, full=True)
    data["source_infos"] = [s.to_dict() for s in record.sources]  # every field, so the client links it the same way
    return JSONReply(data)


async def install(request: Request) -> Response:
    """``POST {"ref": REF}``: ``sdhub install REF`` on the server (a write: the token; the internet: ``--upstream``)."""
    from starlette.concurrency import run_in_threadpool

    state = state_of(request)
    refused = refuse_unauthorised(request, "installing")
    if refused is not None:
        return refused
    if not state.upstream:
        return error_reply(403, "installing needs `sdhub serve --upstream` (it fetches from the sources)")
    try:
        body = await request.json()
    except ValueError:
        body = None
    ref = body.get("ref") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not ref.strip():
        return error_reply(400, 'the body must be {"ref": "<sdhub reference>"}')
    from .pull_through import failure_reply

    try:
        result = await run_in_threadpool(state.hub.install, ref.strip())
    except SdhubError as exc:
        return failure_reply(exc)
    data = result.to_dict()
    if result.record is not None:
        data["file"] = file_dict(result.record)
    return JSONReply(data, status_code=201 if result.status == "installed" else 200)


def search(request: Request) -> Response:
    text = (request.query_params.get("q") or "").strip()
    if not text:
        return error_reply(400, "give the search words as ?q=…")
    try:
        records = _listing(request, text)
    except _BadParam as exc:
        return error_reply(400, str(exc))
    return JSONReply({"query": text, "results": [file_dict(r) for r in records], "count": len(records)})


def search_remote(request: Request) -> Response:
    state = state_of(request)
    if not state.upstream:
        return error_reply(403, "remote search needs `sdhub serve --upstream`; /api/sdhub/v1/search searches the store")
    q = request.query_params
    text = (q.get("q") or "").strip()
    try:
        limit = _int_param(request, "limit", 20, 1, 100)
    except _BadParam as exc:
        return error_reply(400, str(exc))
    try:
        report = state.hub.search(text, sources=q.getlist("source") or None, types=q.getlist("type"),
                                  base=q.getlist("base"), sort=q.get("sort") or None, period=q.get("period") or None,
                                  limit=limit, nsfw=q.get("nsfw", "").lower() in ("1", "true", "yes"),
                                  cursor=q.get("cursor") or None)
    except SdhubError as exc:
        return error_reply(400, str(exc))
    if report.all_failed:
        return JSONReply(report.to_dict(), status_code=502)
    return JSONReply(report.to_dict())


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/status", status, methods=["GET"]),
        Route(f"{PREFIX}/files", list_files, methods=["GET"]),
        Route(f"{PREFIX}/files/{{sha256}}", get_file, methods=["GET"]),
        Route(f"{PREFIX}/files/{{sha256}}/content", file_content, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/resolve", resolve_ref, methods=["GET"]),
        Route(f"{PREFIX}/install", install, methods=["POST"]),
        Route(f"{PREFIX}/search", search, methods=["GET"]),
        Route(f"{PREFIX}/search/remote", search_remote, methods=["GET"]),
    ]

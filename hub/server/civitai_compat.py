"""A Civitai-compatible subset over the store: ``SDHUB_CIVITAI_URL=http://server:8765`` (or a Civitai helper's API base).

Only what the store holds from Civitai is answered, in Civitai's shapes (sources.md §1):

- ``GET /api/v1/model-versions/by-hash/{hash}``: any of AutoV1, AutoV2, AutoV3, SHA256, CRC32, BLAKE3 (any case);
  ``POST /api/v1/model-versions/by-hash`` with a JSON array of SHA256s answers a list (the batch sdhub's lookup uses);
- ``GET /api/v1/model-versions/{id}`` and ``GET /api/v1/models/{id}`` (the versions the store holds, newest first);
- ``GET|HEAD /api/download/models/{versionId}[?fileId=|type=&format=&size=&fp=]``: the file itself (200, ``Range``,
  ``Content-Disposition: attachment; filename="…"``), not a redirect to storage: there is no storage host here.

A version object is the ``<stem>.civitai.info`` sidecar that ``sdhub install`` wrote beside the file (exactly what Civitai
sent) when there is one, else one built from the catalogue; either way its ``downloadUrl``s point at this server.
Misses answer ``404 {"error": "Model not found"}`` / ``{"error": "File not found"}`` as Civitai does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..catalogue import FileRecord, SourceInfo
from .common import JSONReply, error_reply, on_disk, serve_record, state_of

BATCH_LIMIT = 100
MAX_SIDECAR = 8 * 1024 * 1024


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _civitai_sources(record: FileRecord, version_id: str | None = None) -> list[SourceInfo]:
    return [s for s in record.sources
            if s.source == "civitai" and s.version_id and (version_id is None or str(s.version_id) == str(version_id))]


def _int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _download_url(base: str, version_id: str, file_id: str | None, primary: bool) -> str:
    url = f"{base}/api/download/models/{version_id}"
    return url if primary or not file_id else f"{url}?{urlencode({'fileId': file_id})}"


def _sidecar(record: FileRecord) -> dict[str, Any] | None:
    """The Civitai version JSON saved beside the file at install (``<stem>.civitai.info``), if it is one."""
    path = Path(record.path)
    info = path.with_name(path.stem + ".civitai.info")
    try:
        if not info.is_file() or info.stat().st_size > MAX_SIDECAR:
            return None
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def _rebase_urls(version: dict[str, Any], base: str) -> dict[str, Any]:
    """Every download URL of a version object, pointed at this server (path and query kept)."""
    def here(url: Any) -> Any:
        if not isinstance(url, str):
            return url
        parts = urlsplit(url)
        if not parts.path.startswith("/api/download/models/"):
            return url
        return base + parts.path + (f"?{parts.query}" if parts.query else "")

    out = dict(version)
    out["downloadUrl"] = here(out.get("downloadUrl")) or f"{base}/api/download/models/{out.get('id')}"
    out["files"] = [{**f, "downloadUrl": here(f.get("downloadUrl"))} if isinstance(f, dict) else f
                    for f in version.get("files") or []]
    return out


def _file_object(base: str, record: FileRecord, src: SourceInfo, primary: bool) -> dict[str, Any]:
    extra = src.extra or {}
    hashes = {"AutoV1": record.autov1, "AutoV2": record.autov2, "SHA256": record.sha256, "CRC32": record.crc32,
              "BLAKE3": record.blake3, "AutoV3": record.autov3_short}
    fmt = extra.get("format") or {"safetensors": "SafeTensor", "ckpt": "PickleTensor", "diffusers": "Diffusers"}.get(
        record.format, "Other")
    return {
        "id": _int(src.file_id) if src.file_id else record.id,
        "sizeKB": record.size / 1024,
        "name": src.original_filename or record.name,
        "type": extra.get("fileType") or "Model",
        "pickleScanResult": "Success", "pickleScanMessage": None, "virusScanResult": "Success", "virusScanMessage": None,
        "metadata": {"format": fmt, "size": extra.get("size"), "fp": extra.get("fp")},
        "hashes": {k: v.upper() for k, v in hashes.items() if v},
        "primary": primary,
        "downloadUrl": _download_url(base, str(src.version_id), src.file_id, primary),
    }


def version_object(request: Request, version_id: str) -> dict[str, Any] | None:
    """Civitai's model-version JSON for a version the store holds files of; None when it holds none."""
    hub = state_of(request).hub
    base = _base(request)
    held = [(r, s) for r in hub.catalogue.by_source("civitai", version_id=str(version_id))
            for s in _civitai_sources(r, version_id)[:1]]
    if not held:
        return None
    record, src = held[0]
    primary_at = next((i for i, (_, s) in enumerate(held) if (s.extra or {}).get("fileType") in (None, "Model")), 0)
    files = [_file_object(base, r, s, i == primary_at) for i, (r, s) in enumerate(held)]
    built = {
        "id": _int(version_id), "modelId": _int(src.model_id), "name": src.version_name, "description": None,
        "baseModel": src.base_model, "baseModelType": (src.extra or {}).get("baseModelType"),
        "air": (src.extra or {}).get("air"), "status": "Published", "availability": "Public",
        "trainedWords": list(src.trained_words), "stats": {"downloadCount": 0, "thumbsUpCount": 0},
        "model": {"name": src.model_name, "type": src.model_type, "nsfw": bool(src.nsfw), "poi": False},
        "files": files, "images": [], "downloadUrl": f"{base}/api/download/models/{version_id}",
    }
    for held_record, _src in held:
        saved = _sidecar(held_record)
        if saved is not None and str(saved.get("id")) == str(version_id):
            # Civitai's own words win; a version saved from a model listing lacks modelId and model: ours fill them.
            return _rebase_urls({**built, **saved}, base)
    return built


def by_hash(request: Request) -> Response:
    value = request.path_params["hash"].strip().lower()
    if not value or not all(c in "0123456789abcdef" for c in value) or len(value) < 8:
        return error_reply(404, "Model not found")
    for record in state_of(request).hub.catalogue.by_hash(value):
        for src in _civitai_sources(record):
            version = version_object(request, str(src.version_id))
            if version is not None:
                return JSONReply(version)
    return error_reply(404, "Model not found")


async def by_hash_batch(request: Request) -> Response:
    try:
        wanted = await request.json()
    except ValueError:
        return error_reply(400, "the body must be a JSON array of SHA256 hashes")
    if not isinstance(wanted, list) or not all(isinstance(h, str) for h in wanted):
        return error_reply(400, "the body must be a JSON array of SHA256 hashes")
    if len(wanted) > BATCH_LIMIT:
        return error_reply(400, f"at most {BATCH_LIMIT} hashes per request")
    from starlette.concurrency import run_in_threadpool

    return JSONReply(await run_in_threadpool(_batch, request, wanted))


def _batch(request: Request, wanted: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for digest in wanted:
        digest = digest.strip().lower()
        if len(digest) != 64:
            continue
        for record in state_of(request).hub.catalogue.by_hash(digest):
            for src in _civitai_sources(record):
                if str(src.version_id) in seen:
                    continue
                version = version_object(request, str(src.version_id))
                if version is not None:
                    seen.add(str(src.version_id))
                    out.append(version)
    return out


def model_version(request: Request) -> Response:
    version = version_object(request, request.path_params["version_id"])
    return JSONReply(version) if version is not None else error_reply(404, "Model not found")


def model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    records = state_of(request).hub.catalogue.by_source("civitai", model_id=str(model_id))
    srcs = [s for r in records for s in r.sources if s.source == "civitai" and str(s.model_id) == str(model_id)]
    if not srcs:
        return error_reply(404, f"No model with id {model_id}")
    version_ids = sorted({str(s.version_id) for s in srcs if s.version_id}, key=lambda v: _int(v) if v.isdigit() else 0,
                         reverse=True)
    versions = [v for v in (version_object(request, vid) for vid in version_ids) if v is not None]
    first = srcs[0]
    return JSONReply({
        "id": _int(model_id), "name": first.model_name, "type": first.model_type, "nsfw": bool(first.nsfw),
        "poi": False, "availability": "Public", "tags": list(first.tags),
        "creator": {"username": first.creator} if first.creator else None,
        "stats": {"downloadCount": 0, "thumbsUpCount": 0}, "description": first.description,
        "modelVersions": [{k: v for k, v in ver.items() if k != "model"} for ver in versions],
    })


def download(request: Request) -> Response:
    version_id = request.path_params["version_id"]
    version = version_object(request, version_id)
    if version is None:
        return _pull(request, version_id) or error_reply(404, "File not found")
    q = request.query_params
    files = [f for f in version["files"] if isinstance(f, dict)]
    if "fileId" in q:
        chosen = [f for f in files if str(f.get("id")) == q["fileId"]]
    elif any(k in q for k in ("type", "format", "size", "fp")):
        chosen = [f for f in files
                  if ("type" not in q or f.get("type") == q["type"])
                  and all(k not in q or (f.get("metadata") or {}).get(k) == q[k] for k in ("format", "size", "fp"))]
    else:
        chosen = [f for f in files if f.get("primary")] or [f for f in files if f.get("type") == "Model"] or files[:1]
    if not chosen:
        return _pull(request, version_id) or error_reply(404, "File not found")
    record = _held_file(request, version_id, chosen[0])
    if record is None:
        return _pull(request, version_id, chosen[0].get("id")) or error_reply(404, "File not found")
    response = serve_record(record)
    name = str(chosen[0].get("name") or record.name)
    response.headers["content-disposition"] = _attachment(name)
    return response


def _pull(request: Request, version_id: Any, file_id: Any = None) -> Response | None:
    """A version (or one of its files) the store lacks, fetched from Civitai when this server pulls through."""
    from .pull_through import puller

    pull = puller(request)
    if pull is None or isinstance(pull, Response):
        return pull
    file_id = file_id if file_id is not None else request.query_params.get("fileId")
    return pull.respond(request, f"civitai:@{version_id}" + (f"/{file_id}" if file_id else ""))


def _attachment(name: str) -> str:
    from urllib.parse import quote

    safe = os.path.basename(name.replace("\\", "/")) or "model"
    quoted = quote(safe)
    return f'attachment; filename="{safe}"' if quoted == safe else f"attachment; filename*=UTF-8''{quoted}"


def _held_file(request: Request, version_id: str, wanted: dict[str, Any]) -> FileRecord | None:
    """The store's copy of a file of a version, by the SHA256 Civitai lists (or the file id), if still on disk."""
    sha = str((wanted.get("hashes") or {}).get("SHA256") or "").lower()
    for record in state_of(request).hub.catalogue.by_source("civitai", version_id=str(version_id)):
        if not on_disk(record):
            continue
        if sha and record.sha256 == sha:
            return record
        if any(str(s.file_id) == str(wanted.get("id")) for s in _civitai_sources(record, version_id)):
            return record
    return None


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/model-versions/by-hash", by_hash_batch, methods=["POST"]),
        Route("/api/v1/model-versions/by-hash/{hash}", by_hash, methods=["GET"]),
        Route("/api/v1/model-versions/{version_id:int}", model_version, methods=["GET"]),
        Route("/api/v1/models/{model_id:int}", model, methods=["GET"]),
        Route("/api/download/models/{version_id:int}", download, methods=["GET", "HEAD"]),
    ]

"""LiblibAI (liblib.art): model info by UUID, search, lookup by SHA-256, direct CDN downloads.

Two surfaces (sources.md §3): the website API ``/api/www/...`` (unauthenticated for metadata;
answers HTTP 200 with ``{"code", "msg", "data"}``, ``code != 0`` or ``data: null`` meaning "no") and
the official Open API at ``openapi.liblibai.cloud``, signed with AccessKey/SecretKey
(HMAC-SHA1 over ``path&timestamp&nonce``, base64url without padding, all four in the query), which
only offers a version lookup. Downloads are plain GETs of ``attachment.modelSource`` on the CDN,
verified against ``modelSourceHash``; VIP/exclusive versions have no ``modelSource`` and are reported
as not downloadable. The keyword field of the search body is not confirmed by public sources.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from hub.sources.download import error_message_from_body
from hub.errors import AccessDeniedError, AuthRequiredError, RemoteNotFoundError, SdhubError, SourceError
from hub import hookimpl
from hub.sources.refs import Ref
from hub.sources.updates import InstalledFile, UpdateCache, UpdateInfo, error_row, fetch_each, group_by_model
from hub.sources import (
    DownloadPlan,
    SearchPage,
    SearchQuery,
    SearchResult,
    Source,
    SourceContext,
    SourceInfo,
    first_value,
    tag_names,
)

MODEL_TYPES = {1: "checkpoint", 2: "embedding", 3: "hypernetwork", 4: "aesthetic_gradient", 5: "lora", 6: "lora",
               9: "wildcards", 11: "vae"}
KIND_CODES: dict[str, list[int]] = {}
for _code, _kind in MODEL_TYPES.items():
    KIND_CODES.setdefault(_kind, []).append(_code)
BASE_TYPES = {1: "sd1", 2: "sd2", 3: "sdxl", 4: "cascade", 5: "cascade", 6: "cascade", 19: "flux"}
FAMILY_CODES: dict[str, list[int]] = {}
for _code, _fam in BASE_TYPES.items():
    FAMILY_CODES.setdefault(_fam, []).append(_code)
# baseType codes by name, for display and for --base (sources.md §3.1: lilei105/LiblibDownload
# get_all_models_info.py for 1-6, the unattributed module for 19; 4-6 are Stable Cascade's stages).
BASE_TYPE_NAMES = {1: "SD 1.5", 2: "SD 2.1", 3: "SDXL", 4: "Stable Cascade", 5: "Stable Cascade",
                   6: "Stable Cascade", 19: "FLUX.1"}
_BASE_CODES_BY_NAME: dict[str, list[int]] = {}
for _code, _name in BASE_TYPE_NAMES.items():
    _BASE_CODES_BY_NAME.setdefault("".join(ch for ch in _name.lower() if ch.isalnum()), []).append(_code)


def base_type_name(code: Any) -> str | None:
    """``3`` → ``"SDXL"``; an unknown code stays a number (as text), so it is still shown."""
    if code in (None, "", []):
        return None
    try:
        return BASE_TYPE_NAMES.get(int(code), str(code))
    except (TypeError, ValueError):
        return str(code)


def base_codes(value: str) -> list[int]:
    """``--base`` as baseType codes: a family (sdxl), a name (SD 1.5, sd15, flux.1) or a number."""
    low = value.strip().lower()
    if low.isdigit():
        return [int(low)]
    key = "".join(ch for ch in low if ch.isalnum())
    return list(FAMILY_CODES.get(low) or _BASE_CODES_BY_NAME.get(key) or FAMILY_CODES.get(key) or [])
CHECKPOINT_MIN_SIZE = int(1.5 * 1024**3)  # code 5 is seen on checkpoints too: a LoRA is never this big


def sign(path: str, secret_key: str, timestamp_ms: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The Open API's query parameters for ``path`` (AccessKey is added by the caller)."""
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    nonce = nonce or secrets.token_hex(8)
    digest = hmac.new(secret_key.encode(), f"{path}&{ts}&{nonce}".encode(), hashlib.sha1).digest()
    signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return {"Signature": signature, "Timestamp": ts, "SignatureNonce": nonce}


def claimed_family(base_type: Any, base_type_name: Any = None) -> str | None:
    """``baseTypeName`` when it is clear, else the numeric ``baseType`` code."""
    name = str(base_type_name or "").upper()
    if name:
        if "XL" in name:
            return "sdxl"
        if "F.1" in name or "FLUX" in name:
            return "flux"
        if "3.5" in name or "SD3" in name or "SD 3" in name:
            return "sd3"
        if "1.5" in name:
            return "sd1"
        if "2.1" in name or "2.0" in name:
            return "sd2"
    try:
        return BASE_TYPES.get(int(base_type))
    except (TypeError, ValueError):
        return None


def _trigger_words(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [w.strip() for w in value.replace("，", ",").split(",") if w.strip()]
    return []


class LiblibSource(Source):
    name = "liblib"
    aliases = ("liblibai",)
    description = "liblib.art (LiblibAI): search, install by UUID/page URL, lookup by SHA-256"

    def base(self, ctx: SourceContext) -> str:
        return ctx.settings.liblib_url.rstrip("/")

    def configured_hosts(self, settings: Any) -> list[str]:
        return [urlsplit(settings.liblib_url).netloc]

    # -- website API --
    def _www(self, ctx: SourceContext, method: str, path: str, body: Any = None, what: str = "") -> Any:
        """``data`` of a website API answer, or None when ``code != 0`` / ``data`` is null."""
        data = ctx.http.json(
            method,
            self.base(ctx) + path,
            json_body=body,
            headers={"Accept": "application/json"},
            translate=liblib_error,
            what=what or f"LiblibAI {path}",
        )
        if not isinstance(data, dict):
            raise SourceError(f"LiblibAI {what or path}: unexpected answer {str(data)[:80]!r}")
        if data.get("code") not in (0, "0", 200, None):
            return None
        return data.get("data")

    def get_model(self, ctx: SourceContext, model_uuid: str) -> dict[str, Any]:
        ts = int(time.time() * 1000)
        data = self._www(ctx, "POST", f"/api/www/model/getByUuid/{model_uuid}?timestamp={ts}", {"timestamp": ts},
                         what=f"LiblibAI model {model_uuid}")
        if not data:
            raise RemoteNotFoundError(f"LiblibAI has no model {model_uuid} ({self.base(ctx)}/modelinfo/{model_uuid})")
        return data

    def search(self, ctx: SourceContext, query: SearchQuery) -> SearchPage:
        cursor = (query.cursor or "1").strip()
        if not cursor.isdigit() or int(cursor) < 1:
            raise SourceError(f"LiblibAI search cursors are page numbers (1, 2, …), not {query.cursor!r}")
        page = int(cursor)
        body: dict[str, Any] = {"page": page, "pageSize": max(1, min(query.limit, 50)), "sort": 0}
        models = [c for t in query.types for c in KIND_CODES.get(t.lower(), [int(t)] if t.isdigit() else [])]
        bases = [c for b in query.base for c in base_codes(b)]
        warnings = [f"LiblibAI has no base model {b!r} (known: {', '.join(dict.fromkeys(BASE_TYPE_NAMES.values()))});"
                    " not filtered by it" for b in query.base if not base_codes(b)]
        warnings += [f"LiblibAI has no model type {t!r}; not filtered by it" for t in query.types
                     if not (KIND_CODES.get(t.lower()) or t.isdigit())]
        if models:
            body["models"] = models
        if bases:
            body["types"] = bases
        if query.text:
            body["keyword"] = query.text
        data = self._www(ctx, "POST", "/api/www/model/search", body, what="LiblibAI search") or {}
        items = data.get("data") or []
        results = []
        for item in items:
            uuid = item.get("uuid")
            if not uuid:
                continue
            base_types = item.get("baseType") or []
            base_code = base_types[0] if isinstance(base_types, list) and base_types else base_types
            results.append(
                SearchResult(
                    source=self.name,
                    ref=f"liblib:{uuid}",
                    name=str(item.get("name") or ""),
                    kind=MODEL_TYPES.get(item.get("modelType") or 0, item.get("modelTypeName")),
                    base_model=base_type_name(base_code),
                    claimed_family=claimed_family(base_code),
                    creator=item.get("nickname"),
                    page_url=f"{self.base(ctx)}/modelinfo/{uuid}",
                    downloads=item.get("downloadCount"),
                    tags=tag_names((item.get("tagsV2") or {}).get("modelContent")),
                )
            )
        total = int(data.get("total") or 0)
        more = page * body["pageSize"] < total and bool(items)
        return SearchPage(results=results, next_cursor=str(page + 1) if more else None, warnings=warnings)

    # -- Open API (signed) --
    def openapi_version(self, ctx: SourceContext, version_uuid: str) -> dict[str, Any] | None:
        """The official signed version lookup; None when no keys are configured."""
        settings = ctx.settings
        if not (settings.liblib_access_key and settings.liblib_secret_key):
            return None
        path = "/api/model/version/get"
        params = {"AccessKey": settings.liblib_access_key, **sign(path, settings.liblib_secret_key)}
        resp = ctx.http.open(
            "POST",
            settings.liblib_openapi_url.rstrip("/") + path,
            params=params,
            json_body={"versionUuid": version_uuid},
            headers={"Content-Type": "application/json"},
            retry_unreachable=False,  # optional metadata: an unreachable Open API must not stall the install
        )
        try:
            if resp.status_code == 404:
                return None
            if resp.status_code in (401, 403):
                raise AuthRequiredError(
                    f"LiblibAI Open API refused the AccessKey/SecretKey ({error_message_from_body(resp)});"
                    " check LIBLIB_ACCESS_KEY and LIBLIB_SECRET_KEY"
                )
            if resp.status_code >= 400:
                raise SourceError(f"LiblibAI Open API: HTTP {resp.status_code} ({error_message_from_body(resp)})")
            try:
                body = resp.json()
            except ValueError:  # a proxy's login page, an outage page
                raise SourceError(f"LiblibAI Open API: expected JSON, got {resp.headers.get('Content-Type', '?')}") from None
        finally:
            resp.close()
        if not isinstance(body, dict) or body.get("code") not in (0, "0"):
            return None
        return body.get("data")

    # -- plans --
    def plan(self, ctx: SourceContext, ref: Ref) -> DownloadPlan:
        assert ref.model_id
        model = self.get_model(ctx, ref.model_id)
        versions = model.get("versions") or []
        if ref.version_id:
            version = next((v for v in versions if str(v.get("uuid") or "").lower() == ref.version_id.lower()), None)
            if version is None:
                raise RemoteNotFoundError(
                    f"LiblibAI model {ref.model_id} has no version {ref.version_id}"
                    f" (versions: {', '.join(str(v.get('uuid')) for v in versions) or 'none'})"
                )
        elif versions:
            version = versions[0]
        else:
            raise RemoteNotFoundError(f"LiblibAI model {ref.model_id} has no versions")
        official = None
        if version.get("uuid"):
            try:
                official = self.openapi_version(ctx, str(version["uuid"]))
            except SourceError:
                official = None  # metadata only: the website API already answered
        return self._plan_from(ctx, model, version, official)

    def _plan_from(
        self, ctx: SourceContext, model: dict[str, Any], version: dict[str, Any], official: dict[str, Any] | None
    ) -> DownloadPlan:
        model_uuid = str(model.get("uuid") or "")
        version_uuid = str(version.get("uuid") or "")
        label = f"liblib:{model_uuid}@{version_uuid}"
        attachment = version.get("attachment") or {}
        source_url = attachment.get("modelSource")
        page = f"{self.base(ctx)}/modelinfo/{model_uuid}?versionUuid={version_uuid}"
        if not source_url:
            why = "a VIP-only" if version.get("vipUsed") else "an exclusive" if version.get("exclusive") else "a"
            raise AccessDeniedError(
                f"{label} ({model.get('name')} {version.get('name') or ''}) is {why} version without a public"
                f" download (LiblibAI gives no file URL for it); see {page}"
            )
        size = attachment.get("modelSourceSize")
        sha = str(attachment.get("modelSourceHash") or "").lower() or None
        if sha and len(sha) != 64:
            sha = None
        family = claimed_family(version.get("baseType"), version.get("baseTypeName"))
        kind = MODEL_TYPES.get(int(model.get("modelType") or 0))
        if model.get("modelType") == 5 and isinstance(size, int) and size >= CHECKPOINT_MIN_SIZE:
            kind = "checkpoint"
        license_info = None
        if official and official.get("commercialUse") is not None:
            license_info = {"commercialUse": str(official.get("commercialUse")) == "1"}
        filename = attachment.get("modelSourceName") or urlsplit(source_url).path.rsplit("/", 1)[-1]
        info = SourceInfo(
            source=self.name,
            model_id=model_uuid,
            version_id=version_uuid,
            file_id=str(version.get("id")) if version.get("id") is not None else None,
            model_name=model.get("name"),
            version_name=version.get("name"),
            model_type=str(model.get("modelTypeName") or model.get("modelType") or ""),
            base_model=str(version.get("baseTypeName") or "") or base_type_name(version.get("baseType")),
            page_url=page,
            download_url=source_url,
            original_filename=filename,
            published_hashes={"sha256": sha} if sha else {},
            trained_words=_trigger_words(version.get("triggerWord")),
            tags=tag_names((model.get("tagsV2") or {}).get("modelContent")),
            license=license_info,
            creator=model.get("nickname") or (model.get("user") or {}).get("nickname"),
            claimed_family=family,
            extra={k: v for k, v in {"baseType": version.get("baseType"), "openapi": official}.items() if v is not None},
        )
        warnings = [] if sha else ["LiblibAI publishes no SHA-256 for this file: it cannot be verified after download"]
        return DownloadPlan(
            source=self.name,
            ref=label,
            url=source_url,
            filename=str(filename),
            size=int(size) if isinstance(size, int | float) and size else None,
            source_info=info,
            sha256=sha,
            published_hashes=dict(info.published_hashes),
            claimed_family=family,
            claimed_kind=kind,
            warnings=warnings,
            endpoint=self.base(ctx),
            extra={"size_exact": True},
        )

    # -- hashes --
    def _hash_hit(self, ctx: SourceContext, sha256: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        data = self._www(ctx, "GET", f"/api/www/model-version/hash/{sha256.lower()}", what="LiblibAI hash lookup")
        if not data or not isinstance(data, dict):
            return None
        # The hit's shape is undocumented: read the ids defensively, then ask for the full model.
        model_uuid = first_value(data, "modelUuid", "model_uuid", "modelId")
        version_uuid = first_value(data, "versionUuid", "uuid", "version_uuid")
        if not model_uuid:
            return None
        model = self.get_model(ctx, str(model_uuid))
        versions = model.get("versions") or []
        version = next((v for v in versions if str(v.get("uuid") or "").lower() == str(version_uuid).lower()), None)
        if version is None:
            version = next(
                (v for v in versions
                 if str((v.get("attachment") or {}).get("modelSourceHash", "")).lower() == sha256.lower()),
                None,
            )
        if version is None:
            return None
        return model, version

    def lookup_hashes(self, ctx: SourceContext, sha256s: Sequence[str]) -> dict[str, SourceInfo]:
        found: dict[str, SourceInfo] = {}
        for sha in dict.fromkeys(h.lower() for h in sha256s if len(h) == 64):
            hit = self._hash_hit(ctx, sha)
            if hit is None:
                continue
            model, version = hit
            try:
                found[sha] = self._plan_from(ctx, model, version, None).source_info
            except AccessDeniedError:
                found[sha] = self._info_only(ctx, model, version)
        return found

    def _info_only(self, ctx: SourceContext, model: dict[str, Any], version: dict[str, Any]) -> SourceInfo:
        """Metadata for a file that cannot be downloaded (VIP), still worth attaching to a local copy."""
        patched = dict(version)
        patched["attachment"] = {**(version.get("attachment") or {}), "modelSource": "about:blank"}
        info = self._plan_from(ctx, model, patched, None).source_info
        info.download_url = None
        return info

    def plan_for_hash(self, ctx: SourceContext, sha256: str) -> DownloadPlan | None:
        if len(sha256) != 64:
            return None  # the website API only knows full SHA-256s
        hit = self._hash_hit(ctx, sha256)
        return self._plan_from(ctx, *hit, None) if hit else None

    def ref_for(self, info: SourceInfo) -> Ref | None:
        return Ref("liblib", model_id=info.model_id, version_id=info.version_id)

    # -- updates --
    def updates_for(self, ctx: SourceContext, installed: Sequence[InstalledFile], cache: UpdateCache) -> list[UpdateInfo]:
        """One ``getByUuid`` per distinct model; its ``versions`` list is read newest first (as ``plan`` does)."""
        groups = group_by_model(installed)

        def fetch(ids: list[str]) -> tuple[dict[str, Any], dict[str, BaseException]]:
            return fetch_each(ids, lambda uuid: _trim_model(self.get_model(ctx, uuid)))

        answers = cache.answers({uuid.lower(): f"liblib:model:{uuid.lower()}" for uuid in groups}, fetch)
        rows: list[UpdateInfo] = []
        for uuid, items in groups.items():
            answer = answers[uuid.lower()]
            for item in items:
                if not answer.ok:
                    rows.append(error_row(item, self.name, f"LiblibAI model {uuid}: {answer.error}"))
                    continue
                rows.append(self._update_row(item, answer.data, answer.fetched_at, answer.from_cache, answer.error))
        return rows

    def _update_row(self, item: InstalledFile, model: dict[str, Any], at: float | None, from_cache: bool,
                    stale_because: str | None) -> UpdateInfo:
        versions = [v for v in model.get("versions") or [] if isinstance(v, dict) and v.get("uuid")]
        listed = {str(v["uuid"]).lower(): i for i, v in enumerate(versions)}
        mine = [i for i in item.infos if str(i.version_id or "").lower() in listed]
        info = min(mine, key=lambda i: listed[str(i.version_id).lower()]) if mine else item.info
        model_uuid = str(model.get("uuid") or info.model_id).lower()
        row = UpdateInfo(source=self.name, record_id=item.record_id, path=item.path, model_id=model_uuid,
                         model_name=model.get("name") or info.model_name, installed_version=info.version_id,
                         installed_version_name=info.version_name, checked_at=at, from_cache=from_cache)
        if stale_because:
            row.error = stale_because
            row.note = f"LiblibAI did not answer now ({stale_because}); this is its answer from before"
        if not versions:
            row.status, row.note = "unknown", "LiblibAI lists no versions of this model"
            return row

        def entry(v: dict[str, Any]) -> dict[str, Any]:
            downloadable = bool((v.get("attachment") or {}).get("modelSource"))
            return {"version": str(v["uuid"]).lower(), "name": v.get("name"), "published_at": v.get("createTime"),
                    "early_access_until": None, "vip": bool(v.get("vipUsed")) or bool(v.get("exclusive")),
                    "downloadable": downloadable, "ref": f"liblib:{model_uuid}@{str(v['uuid']).lower()}"}

        position = listed.get(str(info.version_id or "").lower())
        row.newer = [entry(v) for v in (versions if position is None else versions[:position])]
        top = entry(versions[0])
        row.newest_version, row.newest_version_name = top["version"], top["name"]
        row.ref, row.published_at, row.downloadable = top["ref"], top["published_at"], top["downloadable"]
        if position is None:
            row.status = "unknown"
            row.note = f"the installed version {info.version_id} is no longer listed; the newest is {top['name']}"
        else:
            row.status = "current" if position == 0 else "update"
        return row

    def error_translator(self, ctx: SourceContext) -> Any:
        return liblib_error


_VERSION_KEYS = ("id", "uuid", "name", "baseType", "baseTypeName", "createTime", "vipUsed", "exclusive")


def _trim_model(model: dict[str, Any]) -> dict[str, Any]:
    """What the update cache keeps of a model: its versions' ids, names, dates and whether they download."""
    versions = []
    for v in model.get("versions") or []:
        if isinstance(v, dict):
            kept = {k: v[k] for k in _VERSION_KEYS if k in v}
            kept["attachment"] = {"modelSource": (v.get("attachment") or {}).get("modelSource")}
            versions.append(kept)
    return {"uuid": model.get("uuid"), "name": model.get("name"), "versions": versions}


def liblib_error(resp: requests.Response) -> SdhubError | None:
    detail = error_message_from_body(resp)
    where = urlsplit(resp.url).netloc
    if resp.status_code == 401:
        return AuthRequiredError(f"LiblibAI requires a login for this ({detail or 'Unauthorized'}) [{where}]")
    if resp.status_code == 403:
        return AccessDeniedError(
            f"LiblibAI refused the download ({detail or 'Forbidden'}) [{where}]: VIP or exclusive versions cannot be"
            " downloaded; an expired CDN link works again after `sdhub install` re-plans it"
        )
    if resp.status_code in (404, 410):
        return RemoteNotFoundError(f"LiblibAI: not found ({detail or resp.status_code}) [{where}]")
    return None


@hookimpl
def register_sources(register: Any) -> None:
    register(LiblibSource())

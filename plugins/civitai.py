"""Civitai (civitai.com): search, model/version lookup, by-hash lookup (single and batch), downloads.

API facts (public REST v1): ``/api/v1/models`` (cursor paging; ``nextCursor`` is a string on some
endpoints and a number on others), ``/api/v1/models/{id}``, ``/api/v1/model-versions/{id}``,
``/api/v1/model-versions/by-hash/{hash}`` (any hash type, upper-case hex) and its batch ``POST`` of up
to 100 SHA-256s, and ``/api/download/models/{versionId}`` which redirects to a signed storage URL on
another host. The token goes in an ``Authorization: Bearer`` header, only to the Civitai host (our
engine drops it on the redirect), never in the URL. Non-browser clients get JSON errors: 401
(login required / downloads disabled), 403 (early access with a deadline, no access), 404, 410
(archived), 429 (download limiter).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from hub.errors import (
    AccessDeniedError,
    AuthRequiredError,
    BadReferenceError,
    RateLimitedError,
    RemoteNotFoundError,
    SdhubError,
    SourceError,
)
from hub import hookimpl
from hub.sources.refs import Ref
from hub.sources import (
    DownloadPlan,
    FetchedFile,
    RemoteFile,
    SearchPage,
    SearchQuery,
    SearchResult,
    Source,
    SourceContext,
    SourceInfo,
    first_value,
    tag_names,
)
from hub.sources.download import error_message_from_body, origin
from hub.sources.updates import InstalledFile, UpdateCache, UpdateInfo, error_row, fetch_each, group_by_model

BATCH_LIMIT = 100

# Civitai's baseModel strings → our family names (the architecture the file should turn out to be).
BASE_MODEL_FAMILY: dict[str, str] = {
    **{k: "sd1" for k in ("SD 1.4", "SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper")},
    **{k: "sd2" for k in ("SD 2.0", "SD 2.0 768", "SD 2.1", "SD 2.1 768", "SD 2.1 Unclip")},
    **{
        k: "sdxl"
        for k in (
            "SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Turbo", "SDXL Lightning", "SDXL Hyper",
            "SDXL Distilled", "Pony", "Illustrious", "NoobAI",
        )
    },
    **{k: "sd3" for k in ("SD 3", "SD 3.5", "SD 3.5 Medium", "SD 3.5 Large", "SD 3.5 Large Turbo")},
    **{k: "flux" for k in ("Flux.1 S", "Flux.1 D", "Flux.1 Kontext")},
    "Stable Cascade": "cascade",
}
# Civitai model types → our kinds.
TYPE_KIND: dict[str, str] = {
    "Checkpoint": "checkpoint",
    "LORA": "lora",
    "LoCon": "lora",
    "DoRA": "lora",
    "TextualInversion": "embedding",
    "VAE": "vae",
    "Controlnet": "controlnet",
    "Upscaler": "upscaler",
    "Hypernetwork": "hypernetwork",
    "MotionModule": "motion_module",
}
KIND_TYPES: dict[str, list[str]] = {}
for _t, _k in TYPE_KIND.items():
    KIND_TYPES.setdefault(_k, []).append(_t)
# Civitai's ModelType enum, exactly as ``types=`` wants it (developer docs site/reference/enums.md, sources.md §1.2).
MODEL_TYPES = ("Checkpoint", "TextualInversion", "Hypernetwork", "AestheticGradient", "LORA", "LoCon", "DoRA",
               "Controlnet", "Upscaler", "MotionModule", "VAE", "Poses", "Wildcards", "Workflows", "Detection", "Other")
# Civitai's BaseModel values for ``baseModels=`` (src/server/common/constants.ts baseModels; live list at
# GET /api/v1/enums): a value outside it gets a 400.
BASE_MODELS = (
    "ODOR", "SD 1.4", "SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper", "SD 2.0", "SD 2.0 768", "SD 2.1", "SD 2.1 768",
    "SD 2.1 Unclip", "SDXL 0.9", "SDXL 1.0", "SD 3", "SD 3.5", "SD 3.5 Medium", "SD 3.5 Large", "SD 3.5 Large Turbo",
    "Pony", "Pony V7", "Flux.1 S", "Flux.1 D", "Flux.1 Kontext", "Flux.2 D", "AuraFlow", "SDXL 1.0 LCM",
    "SDXL Distilled", "SDXL Turbo", "SDXL Lightning", "SDXL Hyper", "Stable Cascade", "SVD", "SVD XT",
    "Playground v2", "PixArt a", "PixArt E", "Hunyuan 1", "Hunyuan Video", "Lumina", "Kolors", "Illustrious",
    "Mochi", "LTXV", "CogVideoX", "NoobAI", "Wan Video", "HiDream", "Chroma", "Qwen", "Other",
)
# What people type for a type or base model that is not spelled like the enum value.
TYPE_ALIASES = {
    "lycoris": "LoCon", "loha": "LoCon", "lokr": "LoCon", "embedding": "TextualInversion", "ti": "TextualInversion",
    "textual_inversion": "TextualInversion", "hypernet": "Hypernetwork", "aesthetic_gradient": "AestheticGradient",
    "motion": "MotionModule", "motion_module": "MotionModule", "animatediff": "MotionModule", "pose": "Poses",
    "wildcard": "Wildcards", "workflow": "Workflows", "detector": "Detection", "upscale": "Upscaler",
}
BASE_ALIASES = {
    "sd14": "SD 1.4", "sd15": "SD 1.5", "sd20": "SD 2.0", "sd21": "SD 2.1", "sdxl10": "SDXL 1.0", "xl": "SDXL 1.0",
    "il": "Illustrious", "noob": "NoobAI", "ponyv6": "Pony", "fluxdev": "Flux.1 D", "flux1dev": "Flux.1 D",
    "fluxschnell": "Flux.1 S", "flux1schnell": "Flux.1 S", "fluxkontext": "Flux.1 Kontext", "sd35": "SD 3.5",
    "sd3": "SD 3", "cascade": "Stable Cascade", "hunyuan": "Hunyuan Video", "wan": "Wan Video",
}
PERIODS = ("AllTime", "Year", "Month", "Week", "Day")


def _norm(value: str) -> str:
    """``"Flux.1 D"``, ``"flux1-d"`` and ``"FLUX 1 D"`` alike: lower case without spaces, dots, dashes, underscores."""
    return re.sub(r"[\s._-]+", "", value.lower())


_TYPE_BY_NORM = {_norm(t): t for t in MODEL_TYPES}
_BASE_BY_NORM = {_norm(b): b for b in BASE_MODELS}


def civitai_types(value: str) -> tuple[list[str], str | None]:
    """``--type`` as Civitai's ModelType values: our kind names, aliases, enum values in any case.

    Unknown values go out as typed with a warning (Civitai adds types), so its 400 names them.
    """
    low = value.strip().lower()
    if low in KIND_TYPES:
        return list(KIND_TYPES[low]), None
    key = _norm(low)
    if low in TYPE_ALIASES or key in TYPE_ALIASES:
        return [TYPE_ALIASES.get(low) or TYPE_ALIASES[key]], None
    if key in _TYPE_BY_NORM:
        return [_TYPE_BY_NORM[key]], None
    return [value], f"Civitai has no model type {value!r} (known: {', '.join(MODEL_TYPES)}); sent as typed"


def civitai_base_models(value: str) -> tuple[list[str], str | None]:
    """``--base`` as Civitai's BaseModel values: a family (sdxl → every SDXL base), an alias, an enum value."""
    low = value.strip().lower()
    family = [n for n, fam in BASE_MODEL_FAMILY.items() if fam == low and n in BASE_MODELS]
    if family:
        return family, None
    key = _norm(low)
    if key in _BASE_BY_NORM:
        return [_BASE_BY_NORM[key]], None
    if key in BASE_ALIASES:
        return [BASE_ALIASES[key]], None
    return [value], f"Civitai has no base model {value!r} (e.g. {', '.join(BASE_MODELS[:12])}, …); sent as typed"
SORTS = {
    "rating": "Highest Rated",
    "highest": "Highest Rated",
    "downloads": "Most Downloaded",
    "likes": "Most Liked",
    "newest": "Newest",
    "oldest": "Oldest",
    "discussed": "Most Discussed",
}
HASH_KEYS = {"sha256": "sha256", "autov1": "autov1", "autov2": "autov2", "autov3": "autov3", "crc32": "crc32",
             "blake3": "blake3"}


def claimed_family(base_model: str | None) -> str | None:
    if not base_model:
        return None
    if base_model in BASE_MODEL_FAMILY:
        return BASE_MODEL_FAMILY[base_model]
    low = base_model.lower()
    for prefix, family in (("sdxl", "sdxl"), ("sd 1", "sd1"), ("sd 2", "sd2"), ("sd 3", "sd3"), ("flux.1", "flux")):
        if low.startswith(prefix):
            return family
    return None


def published_hashes(file: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (file.get("hashes") or {}).items():
        name = HASH_KEYS.get(str(key).lower())
        if name and isinstance(value, str) and value:
            out[name] = value.lower()
    return out


def file_size(file: dict[str, Any]) -> int | None:
    """Bytes from ``sizeKB`` (a float of KiB: approximate, good for display and the space check)."""
    size_kb = file.get("sizeKB")
    return round(float(size_kb) * 1024) if size_kb else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# -- early access ----------------------------------------------------------------------------------
# Civitai has signalled early access three ways; all are still seen, so all are read:
# - ``earlyAccessEndsAt`` (ISO or null) beside ``earlyAccessConfig`` ({timeframe, chargeForDownload,
#   downloadPrice, …}) and ``availability: "EarlyAccess"``: what the server selects for
#   /api/v1/model-versions/{id} and the models list (civitai/civitai: src/pages/api/v1/model-versions/[id].ts,
#   civitai/civitai-developer-docs: site/reference/model-versions.md);
# - ``earlyAccessDeadline`` plus ``paidAccess: {permanent, endsAt}``, seen live on /api/v1/models in 2026-08
#   (Little-God1983/DiffusionNexus: DiffusionNexus.Tests/Civitai/CivitaiEarlyAccessDetectionTests.cs);
# - legacy ``earlyAccessTimeFrame`` (days after publishedAt).
# Whoever bought access downloads such a version normally; everyone else gets 403 {"error": "Early Access",
# "deadline": …} from /api/download/models/{id}. So plans and search rows are marked, and install tries.


def early_access_until(version: dict[str, Any], now: datetime | None = None) -> str | None:
    """The early-access deadline (ISO, ``Z``) while the version is still in early access, else None.

    ``"unknown"`` when the version says it is in early access without saying until when.
    """
    now = now or datetime.now(timezone.utc)
    paid = version.get("paidAccess") if isinstance(version.get("paidAccess"), dict) else None
    deadline = first_value(version, "earlyAccessEndsAt", "earlyAccessDeadline") or (paid or {}).get("endsAt")
    when = _parse_time(deadline)
    if when is None:
        days = version.get("earlyAccessTimeFrame")
        published = _parse_time(version.get("publishedAt") or version.get("createdAt"))
        if isinstance(days, (int, float)) and days > 0 and published is not None:
            when = published + timedelta(days=days)
    if when is not None:
        return when.isoformat().replace("+00:00", "Z") if when > now else None
    if str(version.get("availability") or "").lower() == "earlyaccess" or (paid is not None and not paid.get("permanent")):
        return "unknown"
    return None


def is_paid(version: dict[str, Any]) -> bool:
    """Downloading costs Buzz (during early access, or for good with ``paidAccess.permanent``)."""
    config = version.get("earlyAccessConfig") if isinstance(version.get("earlyAccessConfig"), dict) else {}
    paid = version.get("paidAccess") if isinstance(version.get("paidAccess"), dict) else None
    return bool(config.get("chargeForDownload")) or paid is not None


def early_access_note(until: str) -> str:
    """How a plan, a search row and an install error name the date."""
    return f"Early Access until {_date(until)}" if until != "unknown" else "Early Access (Civitai gives no end date)"


# -- what a reference or a payload claims, against each other -------------------------------------
# Civitai file types that are not the model's own kind (a Checkpoint version also ships its VAE, text encoder…).
FILE_TYPE_KIND = {"VAE": "vae", "Text Encoder": "text_encoder", "Diffusion Model": "diffusion_model",
                  "UNet": "diffusion_model"}
# AIR types and ecosystems (civitai-developer-docs: site/guide/air.md) as our kinds and families.
AIR_TYPE_KIND = {"checkpoint": "checkpoint", "lora": "lora", "locon": "lora", "lycoris": "lora", "dora": "lora",
                 "embedding": "embedding", "textualinversion": "embedding", "vae": "vae", "controlnet": "controlnet",
                 "upscaler": "upscaler", "diffusionmodel": "checkpoint", "unet": "checkpoint",
                 "hypernet": "hypernetwork", "hypernetwork": "hypernetwork"}
AIR_ECOSYSTEM_FAMILY = {"sd1": "sd1", "sd15": "sd1", "sd2": "sd2", "sd21": "sd2", "sdxl": "sdxl", "pony": "sdxl",
                        "illustrious": "sdxl", "noobai": "sdxl", "sdxl-turbo": "sdxl", "sd3": "sd3", "sd35": "sd3",
                        "flux1": "flux", "flux": "flux", "sc": "cascade"}


def claimed_kind(model_type: str | None, file_type: str | None) -> str | None:
    """The kind Civitai claims for one file: its file type when that names a part, else the model's type."""
    return FILE_TYPE_KIND.get(file_type or "") or TYPE_KIND.get(model_type or "")


def air_contradictions(ref: Ref, plan: DownloadPlan) -> list[str]:
    """Where an AIR's ecosystem or type contradicts the payload (unknown and ``other`` parts say nothing)."""
    out = []
    info = plan.source_info
    said = f"the AIR says {ref.air_ecosystem}:{ref.air_type}"
    kind = AIR_TYPE_KIND.get(ref.air_type or "")
    payload_kind = TYPE_KIND.get(info.model_type or "")
    if kind and payload_kind and kind != payload_kind:
        out.append(f"kind mismatch: {said} but Civitai's model {info.model_id} is a {info.model_type}")
    family = AIR_ECOSYSTEM_FAMILY.get(ref.air_ecosystem or "")
    if family and info.claimed_family and family != info.claimed_family:
        out.append(f"family mismatch: {said} but Civitai's version {info.version_id} has base model"
                   f" {info.base_model!r} ({info.claimed_family})")
    return out


class EarlyAccessRefused(AccessDeniedError):
    """Civitai's 403 for an early-access version the caller has not bought (``deadline`` may be None)."""

    def __init__(self, message: str, deadline: str | None, where: str) -> None:
        super().__init__(message)
        self.deadline, self.where = deadline, where


def early_access_refused(deadline: str | None, has_token: bool, where: str) -> EarlyAccessRefused:
    until = early_access_note(deadline) if deadline else "Early Access"
    hint = ("the account of CIVITAI_API_TOKEN has not bought access" if has_token
            else "if you bought access, set CIVITAI_API_TOKEN to an API key of that account")
    after = " for free after that" if deadline and deadline != "unknown" else " for free once it ends"
    return EarlyAccessRefused(
        f"Civitai: this version is in {until}: it can be downloaded{after}, or now with access bought on"
        f" Civitai ({hint}) ({where})",
        deadline, where,
    )


def _date(iso: str) -> str:
    when = _parse_time(iso)
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else iso


class CivitaiSource(Source):
    name = "civitai"
    description = "civitai.com: search, install by id/AIR/URL, by-hash lookup (token: CIVITAI_API_TOKEN)"

    # -- plumbing --
    def base(self, ctx: SourceContext) -> str:
        return ctx.settings.civitai_url.rstrip("/")

    def configured_hosts(self, settings: Any) -> list[str]:
        return [urlsplit(settings.civitai_url).netloc]

    def auth_headers(self, ctx: SourceContext) -> dict[str, str]:
        token = ctx.settings.civitai_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _get(self, ctx: SourceContext, path: str, what: str, **params: Any) -> Any:
        return ctx.http.json(
            "GET",
            self.base(ctx) + path,
            params=params or None,
            auth_headers=self.auth_headers(ctx),
            translate=self.error_translator(ctx),
            what=what,
        )

    def error_translator(self, ctx: SourceContext) -> Any:
        has_token = bool(ctx.settings.civitai_token)
        api_host = urlsplit(self.base(ctx)).netloc

        def translate(resp: requests.Response) -> SdhubError | None:
            return civitai_error(resp, has_token, api_host=api_host)

        return translate

    # -- search --
    def search(self, ctx: SourceContext, query: SearchQuery) -> SearchPage:
        params: list[tuple[str, str]] = [("limit", str(max(1, min(query.limit, 100))))]
        warnings: list[str] = []
        if query.text:
            params.append(("query", query.text))
        for t in query.types:
            types, warning = civitai_types(t)
            params.extend(("types", raw) for raw in types if ("types", raw) not in params)
            warnings += [warning] if warning else []
        for b in query.base:
            bases, warning = civitai_base_models(b)
            params.extend(("baseModels", raw) for raw in bases if ("baseModels", raw) not in params)
            warnings += [warning] if warning else []
        if query.sort:
            sort = SORTS.get(query.sort.lower()) or next(
                (s for s in SORTS.values() if _norm(s) == _norm(query.sort)), query.sort)
            params.append(("sort", sort))
        if query.period:
            key = _norm(query.period)
            period = next((p for p in PERIODS if _norm(p) == key), "AllTime" if key == "all" else query.period)
            params.append(("period", period))
        params.append(("nsfw", "true" if query.nsfw else "false"))
        if query.cursor and query.cursor.startswith("page:"):
            params.append(("page", query.cursor[5:]))  # page mode (see below)
        elif query.cursor:
            params.append(("cursor", query.cursor))
        try:
            data = self._get_params(ctx, "/api/v1/models", params, "Civitai search")
        except SourceError as exc:
            if not warnings:
                raise
            raise type(exc)(f"{exc}; {'; '.join(warnings)}") from None  # the warning must not be lost with the page
        results = [r for item in data.get("items") or [] if (r := self._result(ctx, item)) is not None]
        meta = data.get("metadata") or {}
        cursor = meta.get("nextCursor")
        next_cursor = None if cursor in (None, "") else str(cursor)  # a string or a JSON number
        if next_cursor is None and meta.get("nextPage"):
            # Page mode (site/guide/pagination.md): only nextPage, a URL carrying cursor= or page=.
            next_query = parse_qs(urlsplit(str(meta["nextPage"])).query)
            if next_query.get("cursor"):
                next_cursor = next_query["cursor"][0]
            elif next_query.get("page"):
                next_cursor = f"page:{next_query['page'][0]}"
        return SearchPage(results=results, next_cursor=next_cursor, warnings=warnings)

    def _get_params(self, ctx: SourceContext, path: str, params: list[tuple[str, str]], what: str) -> Any:
        return ctx.http.json(
            "GET",
            self.base(ctx) + path + "?" + urlencode(params),
            auth_headers=self.auth_headers(ctx),
            translate=self.error_translator(ctx),
            what=what,
        )

    def _result(self, ctx: SourceContext, item: dict[str, Any]) -> SearchResult | None:
        versions = item.get("modelVersions") or []
        version = versions[0] if versions else {}
        files = version.get("files") or []
        primary = next((f for f in files if f.get("primary")), files[0] if files else None)
        stats = item.get("stats") or {}
        model_id = item.get("id")
        if model_id is None:
            return None
        vid = version.get("id")
        ea = early_access_until(version) if version else None
        return SearchResult(
            source=self.name,
            ref=f"civitai:{model_id}@{vid}" if vid else f"civitai:{model_id}",
            name=str(item.get("name") or ""),
            version=version.get("name"),
            kind=TYPE_KIND.get(item.get("type") or "", (item.get("type") or "").lower() or None),
            base_model=version.get("baseModel"),
            claimed_family=claimed_family(version.get("baseModel")),
            size=file_size(primary) if primary else None,
            downloads=stats.get("downloadCount"),
            likes=stats.get("thumbsUpCount"),
            nsfw=item.get("nsfw"),
            creator=(item.get("creator") or {}).get("username"),
            page_url=f"{self.base(ctx)}/models/{model_id}" + (f"?modelVersionId={vid}" if vid else ""),
            early_access_until=ea,
            paid=is_paid(version) if version else False,
            downloadable=bool(files),
            tags=tag_names(item.get("tags")),
        )

    # -- lookups --
    def get_model(self, ctx: SourceContext, model_id: str) -> dict[str, Any]:
        return self._get(ctx, f"/api/v1/models/{model_id}", f"Civitai model {model_id}")

    def get_version(self, ctx: SourceContext, version_id: str) -> dict[str, Any]:
        return self._get(ctx, f"/api/v1/model-versions/{version_id}", f"Civitai model version {version_id}")

    def _version_for(self, ctx: SourceContext, ref: Ref) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(version, model-or-None) for a reference; the model when we had to (or could cheaply) fetch it."""
        if ref.model_id:
            # The model an earlier step of this operation fetched (updates before an upgrade, a lookup's
            # batch) answers again: one request per model per operation.
            model = ctx.memo.get("civitai.models", {}).get(ref.model_id) or self.get_model(ctx, ref.model_id)
            versions = model.get("modelVersions") or []
            if ref.version_id:
                version = next((v for v in versions if str(v.get("id")) == ref.version_id), None)
                if version is None:
                    raise RemoteNotFoundError(
                        f"Civitai model {ref.model_id} has no published version {ref.version_id}"
                        f" (versions: {', '.join(str(v.get('id')) for v in versions) or 'none'})"
                    )
            else:
                if not versions:
                    raise RemoteNotFoundError(f"Civitai model {ref.model_id} has no published versions")
                version = versions[0]  # newest first
            return version, model
        assert ref.version_id
        version = self.get_version(ctx, ref.version_id)
        return version, None

    def plan(self, ctx: SourceContext, ref: Ref) -> DownloadPlan:
        version, model = self._version_for(ctx, ref)
        plan = self._plan_from(ctx, ref, version, model)
        contradictions = air_contradictions(ref, plan)
        if contradictions:
            plan.warnings.extend(contradictions)
            plan.source_info.extra["air_mismatch"] = "; ".join(contradictions)
        return plan

    def _plan_from(
        self, ctx: SourceContext, ref: Ref, version: dict[str, Any], model: dict[str, Any] | None,
        want_sha256: str | None = None, want_hash: str | None = None,
    ) -> DownloadPlan:
        model_id = str(version.get("modelId") or (model or {}).get("id") or ref.model_id or "")
        version_id = str(version.get("id") or ref.version_id or "")
        model_part = version.get("model") or {}
        model_name = (model or {}).get("name") or model_part.get("name")
        model_type = (model or {}).get("type") or model_part.get("type")
        files = version.get("files") or []
        label = f"civitai:{model_id}@{version_id}"
        if not files:
            raise RemoteNotFoundError(
                f"{label} ({model_name or 'unknown model'}, {version.get('name') or 'version'}) has no downloadable"
                " files: the model is archived or its files were taken down"
            )
        file = self._pick_file(ref, files, label, want_sha256, want_hash)
        hashes = published_hashes(file)
        url = file.get("downloadUrl") or version.get("downloadUrl") or f"{self.base(ctx)}/api/download/models/{version_id}"
        url = self._rebase(ctx, url)
        if ref.file and len(files) > 1 and not file.get("primary"):
            # An exact file (civitai:…/<fileId>, an AIR's +<fileId>): ask for it by id too, which the
            # download endpoint honours exactly; type/format/size/fp alone may match several files.
            if "fileId=" not in urlsplit(url).query:
                url += ("&" if "?" in url else "?") + urlencode([("fileId", str(file.get("id")))])
        elif ref.selectors and not file.get("downloadUrl"):
            url += ("&" if "?" in url else "?") + urlencode(list(ref.selectors))
        base_model = version.get("baseModel")
        ea = early_access_until(version)
        warnings = []
        if ea:
            warnings.append(
                f"this version is in {early_access_note(ea)}; downloading it before then needs access bought on"
                f" Civitai (install tries, and says so if Civitai refuses)"
            )
        for scan in ("pickleScanResult", "virusScanResult"):
            value = file.get(scan)
            if value and value != "Success":
                warnings.append(f"Civitai {scan} = {value}: {file.get(scan.replace('Result', 'Message')) or ''}".rstrip(": "))
        file_meta = file.get("metadata") or {}
        if file_meta.get("format") == "PickleTensor":
            warnings.append("this is a pickle (.ckpt/.pt) file: sdhub scans it before use; prefer a safetensors file")
        license_info = {
            k: (model or {}).get(k)
            for k in ("allowNoCredit", "allowCommercialUse", "allowDerivatives", "allowDifferentLicense")
            if (model or {}).get(k) is not None
        } or None
        trained = version.get("trainedWords") or []
        info = SourceInfo(
            source=self.name,
            model_id=model_id,
            version_id=version_id,
            file_id=str(file.get("id")) if file.get("id") is not None else None,
            model_name=model_name,
            version_name=version.get("name"),
            model_type=model_type,
            base_model=base_model,
            page_url=f"{self.base(ctx)}/models/{model_id}?modelVersionId={version_id}",
            download_url=url,
            original_filename=file.get("name"),
            published_hashes=hashes,
            trained_words=[str(w) for w in trained] if isinstance(trained, list) else [str(trained)],
            tags=tag_names((model or {}).get("tags")),
            nsfw=(model or model_part).get("nsfw"),
            license=license_info,
            creator=((model or {}).get("creator") or {}).get("username"),
            claimed_family=claimed_family(base_model),
            claimed_kind=claimed_kind(model_type, file.get("type")),
            extra={
                k: v
                for k, v in {
                    "air": version.get("air"),
                    "baseModelType": version.get("baseModelType"),
                    "fileType": file.get("type"),
                    "format": file_meta.get("format"),
                    "fp": file_meta.get("fp"),
                    "size": file_meta.get("size"),
                    "early_access_until": ea,
                }.items()
                if v is not None
            },
        )
        return DownloadPlan(
            source=self.name,
            ref=f"civitai:{model_id}@{version_id}/{file.get('id')}" if len(files) > 1 else label,
            url=url,
            filename=str(file.get("name") or f"civitai_{version_id}.safetensors"),
            size=file_size(file),
            source_info=info,
            sha256=hashes.get("sha256"),
            published_hashes=hashes,
            # The token is for the configured Civitai host only, even if the API names another one.
            auth_headers=self.auth_headers(ctx) if origin(url) == origin(self.base(ctx)) else {},
            claimed_family=info.claimed_family,
            claimed_kind=info.claimed_kind,
            early_access_until=ea,
            warnings=warnings,
            endpoint=self.base(ctx),
            # sizeKB is a rounded float: used for the space check only. The version JSON as Civitai sent it
            # becomes the installed file's <stem>.civitai.info sidecar.
            extra={"size_exact": False, "civitai_version": version, "civitai_model": model},
        )

    def fetch(self, ctx: SourceContext, plan: DownloadPlan, dest_dir: Path) -> FetchedFile:
        """Our engine; an early-access refusal without a date in its body gets the date the plan read."""
        try:
            return super().fetch(ctx, plan, dest_dir)
        except EarlyAccessRefused as exc:
            if exc.deadline or not plan.early_access_until:
                raise
            raise early_access_refused(plan.early_access_until, bool(ctx.settings.civitai_token), exc.where) from None

    def _rebase(self, ctx: SourceContext, url: str) -> str:
        """Download URLs name civitai.com even when we talk to a configured mirror/test endpoint."""
        parts = urlsplit(url)
        if parts.path.startswith("/api/download/") and parts.netloc in ("civitai.com", "www.civitai.com"):
            return self.base(ctx) + parts.path + (f"?{parts.query}" if parts.query else "")
        return url

    def _pick_file(
        self, ref: Ref, files: list[dict[str, Any]], label: str, want_sha256: str | None, want_hash: str | None
    ) -> dict[str, Any]:
        if want_sha256 or want_hash:
            for f in files:
                hashes = published_hashes(f)
                if want_sha256 and hashes.get("sha256") == want_sha256.lower():
                    return f
                if want_hash and any(v.startswith(want_hash.lower()) for v in hashes.values()):
                    return f
        if ref.file:
            wanted = ref.file.strip()
            for f in files:
                if str(f.get("id")) == wanted or str(f.get("name", "")).lower() == wanted.lower():
                    return f
            names = ", ".join(f"{f.get('id')}={f.get('name')}" for f in files)
            raise BadReferenceError(f"{label} has no file {wanted!r}; its files are: {names}")
        if ref.selectors:
            sel = dict(ref.selectors)
            if "fileId" in sel:
                for f in files:
                    if str(f.get("id")) == sel["fileId"]:
                        return f
                raise RemoteNotFoundError(f"{label} has no file with id {sel['fileId']}")
            for f in files:
                meta = f.get("metadata") or {}
                if (
                    ("type" not in sel or f.get("type") == sel["type"])
                    and ("format" not in sel or meta.get("format") == sel["format"])
                    and ("size" not in sel or meta.get("size") == sel["size"])
                    and ("fp" not in sel or meta.get("fp") == sel["fp"])
                ):
                    return f
            raise RemoteNotFoundError(f"{label} has no file matching {sel}")
        primary = next((f for f in files if f.get("primary")), None)
        if primary is not None:
            return primary
        return next((f for f in files if f.get("type") == "Model"), files[0])

    def list_files(self, ctx: SourceContext, ref: Ref) -> list[RemoteFile]:
        version, _model = self._version_for(ctx, ref)
        mid, vid = version.get("modelId") or ref.model_id, version.get("id")
        out = []
        for f in version.get("files") or []:
            hashes = published_hashes(f)
            out.append(
                RemoteFile(
                    name=str(f.get("name")),
                    size=file_size(f),
                    sha256=hashes.get("sha256"),
                    file_id=str(f.get("id")),
                    kind=f.get("type"),
                    primary=bool(f.get("primary")),
                    ref=f"civitai:{mid}@{vid}/{f.get('id')}",
                    extra={"metadata": f.get("metadata") or {}, "hashes": hashes},
                )
            )
        return out

    # -- hashes --
    def lookup_hashes(self, ctx: SourceContext, sha256s: Sequence[str]) -> dict[str, SourceInfo]:
        """Batch by-hash: ≤100 SHA-256s per POST, so scanning thousands of files stays polite.

        The by-hash answer has no tags, creator, licence or model nsfw flag: those come from one
        ``/api/v1/models/{id}`` per distinct model among the hits (:meth:`models_for`).
        """
        wanted = [h.lower() for h in dict.fromkeys(sha256s) if len(h) == 64]
        hits: dict[str, dict[str, Any]] = {}
        for i in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[i : i + BATCH_LIMIT]
            versions = ctx.http.json(
                "POST",
                self.base(ctx) + "/api/v1/model-versions/by-hash",
                json_body=[h.upper() for h in chunk],
                auth_headers=self.auth_headers(ctx),
                translate=self.error_translator(ctx),
                what="Civitai by-hash lookup",
            )
            for version in versions if isinstance(versions, list) else []:
                for f in version.get("files") or []:
                    sha = published_hashes(f).get("sha256")
                    if sha in chunk and sha not in hits:
                        hits[sha] = version
        models = self.models_for(ctx, [v.get("modelId") for v in hits.values()])
        return {
            sha: self._plan_from(ctx, Ref("civitai"), version, models.get(str(version.get("modelId"))),
                                 want_sha256=sha).source_info
            for sha, version in hits.items()
        }

    def lookup_hash(self, ctx: SourceContext, sha256: str) -> SourceInfo | None:
        plan = self.plan_for_hash(ctx, sha256)
        return plan.source_info if plan is not None else None

    def plan_for_hash(self, ctx: SourceContext, sha256: str) -> DownloadPlan | None:
        """Any hash kind works here (Civitai matches AutoV1/V2/V3, SHA256, CRC32, BLAKE3)."""
        version = self._by_hash(ctx, sha256)
        if version is None:
            return None
        model = self.models_for(ctx, [version.get("modelId")]).get(str(version.get("modelId")))
        return self._plan_from(ctx, Ref("civitai"), version, model, want_hash=sha256)

    def models_for(
        self, ctx: SourceContext, model_ids: Sequence[Any], errors: dict[str, SdhubError] | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """``/api/v1/models/{id}`` of each distinct id, once per operation (``ctx.memo``).

        A model that cannot be fetched (taken down since, Civitai having trouble) maps to None: the
        caller still has the version, only the model-level facts are missing; ``errors`` (when
        given) gets why. Once Civitai looks down (5xx, unreachable, rate limited after retries)
        the remaining ids are not asked: they share that error.
        """
        cache: dict[str, dict[str, Any] | None] = ctx.memo.setdefault("civitai.models", {})
        failed: dict[str, SdhubError] = ctx.memo.setdefault("civitai.model_errors", {})
        todo = [mid for mid in dict.fromkeys(str(m) for m in model_ids if m not in (None, "")) if mid not in cache]
        values, problems = fetch_each(todo, lambda mid: self.get_model(ctx, mid))
        for mid in todo:
            cache[mid] = values.get(mid)
            if mid in problems:
                failed[mid] = problems[mid]  # type: ignore[assignment]
        if errors is not None:
            errors.update({str(m): failed[str(m)] for m in model_ids if str(m) in failed and cache.get(str(m)) is None})
        return {str(m): cache.get(str(m)) for m in model_ids if m not in (None, "")}

    # -- updates --
    def updates_for(self, ctx: SourceContext, installed: Sequence[InstalledFile], cache: UpdateCache) -> list[UpdateInfo]:
        """One ``/api/v1/models/{id}`` per distinct model (its ``modelVersions`` are newest first)."""
        groups = group_by_model(installed)

        def fetch(ids: list[str]) -> tuple[dict[str, Any], dict[str, SdhubError]]:
            errors: dict[str, SdhubError] = {}
            models = self.models_for(ctx, ids, errors=errors)
            return {mid: _trim_model(m) for mid, m in models.items() if m is not None}, errors

        answers = cache.answers({mid: f"civitai:model:{mid}" for mid in groups}, fetch)
        rows: list[UpdateInfo] = []
        for mid, items in groups.items():
            answer = answers[mid]
            for item in items:
                if not answer.ok:
                    rows.append(error_row(item, self.name, f"Civitai model {mid}: {answer.error}"))
                    continue
                rows.append(self._update_row(ctx, item, answer.data, answer.fetched_at, answer.from_cache,
                                             answer.error))
        return rows

    def _update_row(self, ctx: SourceContext, item: InstalledFile, model: dict[str, Any], at: float | None,
                    from_cache: bool, stale_because: str | None) -> UpdateInfo:
        versions = [v for v in model.get("modelVersions") or [] if isinstance(v, dict) and v.get("id") is not None]
        listed = {str(v["id"]): i for i, v in enumerate(versions)}
        # A file linked to several versions (re-uploaded unchanged) counts as its newest one.
        mine = [info for info in item.infos if str(info.version_id) in listed]
        info = min(mine, key=lambda i: listed[str(i.version_id)]) if mine else item.info
        row = UpdateInfo(
            source=self.name, record_id=item.record_id, path=item.path, model_id=str(info.model_id),
            model_name=model.get("name") or info.model_name, installed_version=info.version_id,
            installed_version_name=info.version_name, checked_at=at, from_cache=from_cache,
        )
        if stale_because:
            row.error = stale_because
            row.note = f"Civitai did not answer now ({stale_because}); this is its answer from before"
        if not versions:
            row.status, row.note = "unknown", "Civitai lists no published versions of this model"
            return row
        newest = versions[0]
        row.newest_version, row.newest_version_name = str(newest["id"]), newest.get("name")
        position = listed.get(str(info.version_id))
        newer = versions if position is None else versions[:position]
        row.newer = [self._version_entry(str(model.get("id") or info.model_id), v, info) for v in newer]
        top = self._version_entry(str(model.get("id") or info.model_id), newest, info)
        row.ref, row.published_at = top["ref"], top["published_at"]
        row.early_access_until, row.downloadable = top["early_access_until"], top["downloadable"]
        if position is None:
            row.status = "unknown"
            row.note = (f"the installed version {info.version_id} is no longer listed by Civitai (unpublished or"
                        f" removed); the newest is {newest.get('name') or newest['id']}")
        elif position == 0:
            row.status = "current"
        else:
            row.status = "update"
        return row

    def _version_entry(self, model_id: str, version: dict[str, Any], installed: SourceInfo) -> dict[str, Any]:
        """A version as an updates row shows it: dates, early access, downloadable, and the ref installing it."""
        files = version.get("files") or []
        file = _matching_file(files, installed)
        vid = str(version["id"])
        ref = f"civitai:{model_id}@{vid}"
        if file is not None and len(files) > 1:
            ref += f"/{file.get('id')}"
        return {
            "version": vid,
            "name": version.get("name"),
            "published_at": version.get("publishedAt"),
            "early_access_until": early_access_until(version),
            "paid": is_paid(version),
            "downloadable": bool(files),
            "ref": ref,
        }

    def _by_hash(self, ctx: SourceContext, value: str) -> dict[str, Any] | None:
        try:
            return self._get(ctx, f"/api/v1/model-versions/by-hash/{value.upper()}", f"Civitai hash {value}")
        except RemoteNotFoundError:
            return None

    def ref_for(self, info: SourceInfo) -> Ref | None:
        return Ref("civitai", model_id=info.model_id or None, version_id=info.version_id, file=info.file_id)


def civitai_error(resp: requests.Response, has_token: bool, api_host: str | None = None) -> SdhubError | None:
    """Civitai's JSON errors as messages a user can act on.

    ``api_host`` is the Civitai host we talk to: a 401/403 from any other host comes from the storage
    behind a signed download link (never sent the token), so it is not about the token.
    """
    try:
        body = resp.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    error, message = str(body.get("error") or ""), str(body.get("message") or "")
    detail = error_message_from_body(resp)
    where = _where(resp)
    status = resp.status_code
    if api_host and status in (401, 403) and urlsplit(resp.url).netloc != api_host:
        return AccessDeniedError(
            f"Civitai's storage host refused the signed download link ({detail or resp.reason or status}): such"
            f" links last minutes; run the install again to get a fresh one ({where})"
        )
    if status == 401:
        if "disabled downloads" in message.lower():
            return AccessDeniedError(f"Civitai: the creator has disabled downloads of this file ({where})")
        if has_token:
            return AuthRequiredError(
                f"Civitai refused the API token ({detail or 'Unauthorized'}) for {where}; check CIVITAI_API_TOKEN"
                " (civitai.com → Account settings → API keys)"
            )
        return AuthRequiredError(
            f"Civitai requires a login to download this file ({message or error or 'Unauthorized'}); set"
            f" CIVITAI_API_TOKEN to an API key from civitai.com → Account settings ({where})"
        )
    if status == 403:
        if error.lower() == "early access" or body.get("deadline"):
            return early_access_refused(str(body.get("deadline") or "") or None, has_token, where)
        return AccessDeniedError(f"Civitai denied access: {detail or 'Forbidden'} ({where})")
    if status == 404:
        return RemoteNotFoundError(f"Civitai: {detail or 'not found'} ({where})")
    if status == 410:
        return RemoteNotFoundError(f"Civitai: this model is archived and no longer downloadable ({detail}) ({where})")
    if status == 429:
        return RateLimitedError(
            f"Civitai is rate limiting us ({detail or 'Too Many Requests'}); waited and retried, try again later"
        )
    if status == 400:
        issues = body.get("error", {}).get("issues") if isinstance(body.get("error"), dict) else None
        if isinstance(issues, list) and issues:  # {"error": <ZodError>} from the v1 endpoints' param check
            detail = "; ".join(str(i.get("message") or i) for i in issues if isinstance(i, dict)) or detail
        return SourceError(f"Civitai rejected the request: {detail} ({where})")
    if status >= 500:
        return SourceError(f"Civitai is having trouble (HTTP {status}); try again later ({where})")
    return None


# What an updates answer keeps of a model (the cache holds hundreds of them: no images, no descriptions).
_VERSION_KEYS = ("id", "name", "baseModel", "publishedAt", "availability", "earlyAccessEndsAt", "earlyAccessDeadline",
                 "earlyAccessTimeFrame", "earlyAccessConfig", "paidAccess", "createdAt")
_FILE_KEYS = ("id", "name", "type", "primary", "metadata", "sizeKB")


def _trim_model(model: dict[str, Any]) -> dict[str, Any]:
    versions = []
    for v in model.get("modelVersions") or []:
        if not isinstance(v, dict):
            continue
        kept = {k: v[k] for k in _VERSION_KEYS if k in v}
        if "files" in v:  # archived versions have none: keep that absence
            kept["files"] = [{k: f[k] for k in _FILE_KEYS if k in f} for f in v.get("files") or [] if isinstance(f, dict)]
        versions.append(kept)
    return {"id": model.get("id"), "name": model.get("name"), "type": model.get("type"), "modelVersions": versions}


def _matching_file(files: list[dict[str, Any]], installed: SourceInfo) -> dict[str, Any] | None:
    """The file of another version that plays the installed file's part (same type, format, size, fp).

    A VAE or an fp32 copy installed from v1 is upgraded to v2's VAE or fp32 copy, not to v2's primary file.
    """
    if not files:
        return None
    extra = installed.extra or {}
    want_type = extra.get("fileType")
    wanted = {k: extra.get(k) for k in ("format", "size", "fp") if extra.get(k)}
    if want_type:
        same_type = [f for f in files if f.get("type") == want_type]
        exact = [f for f in same_type if all((f.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
        if exact or same_type:
            return next((f for f in (exact or same_type) if f.get("primary")), (exact or same_type)[0])
    return next((f for f in files if f.get("primary")), files[0])


def _where(resp: requests.Response) -> str:
    parts = urlsplit(resp.url)
    return f"{parts.netloc}{parts.path}"


@hookimpl
def register_sources(register: Any) -> None:
    register(CivitaiSource())

"""Hugging Face Hub and its mirrors (hf-mirror.com, self-hosted endpoints), with ordered fallback.

The control plane goes through huggingface_hub with ``endpoint=`` passed explicitly (its
``HF_ENDPOINT`` constant is read at import, so setting the variable later does nothing):
``get_hf_file_metadata`` for the ``HEAD …/resolve/…`` (commit, ETag = LFS SHA-256, size, the
redirect ``Location``), ``HfApi.list_repo_tree`` for file listings with LFS SHA-256s,
``HfApi.list_models`` for search (``Link`` pagination). A file already in a local Hugging Face cache
at that commit is reused from there.

The data plane (the GET of the redirected ``Location``) uses sdhub's own engine, because
huggingface_hub 2.x downloads into a process-unique temporary file that it deletes on failure, so an
interrupted multi-GB download restarts from zero; ours resumes from the ``.part`` and can use
parallel ranges. Endpoints are tried in order; a connection error, timeout or 5xx moves on to the
next one, separately for the metadata request and for the redirected file request (a mirror's HEAD
can succeed while the CDN it points to fails). The plan and the result say which endpoint served.
The HF token goes only to huggingface.co hosts (or to the hosts given as ``trusted_hosts``) unless
the user allows mirrors (``hf_token_to_mirrors``), and never to the CDN a redirect points to.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from hub.sources.download import describe_network_error, origin, parse_retry_after
from hub.sources.updates import InstalledFile, UpdateCache, UpdateInfo, error_row
from hub.errors import (
    AccessDeniedError,
    AuthRequiredError,
    BadReferenceError,
    DownloadError,
    LocalWriteError,
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
    WEIGHT_SUFFIXES,
)

T = TypeVar("T")
PUBLIC_HOSTS = ("huggingface.co", "hf.co")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# Repo tags → the family the repo claims.
TAG_FAMILY = (
    ("stable-diffusion-xl", "sdxl"), ("sdxl", "sdxl"), ("stable-diffusion-3", "sd3"), ("sd3", "sd3"),
    ("flux", "flux"), ("stable-diffusion-2", "sd2"), ("sd-1.5", "sd1"), ("stable-diffusion-1", "sd1"),
    ("stable-diffusion", "sd1"),
)
BASE_TAGS = {"sdxl": "stable-diffusion-xl", "sd1": "stable-diffusion", "sd2": "stable-diffusion",
             "sd3": "sd3", "flux": "flux"}
SORTS = {"downloads": "downloads", "likes": "likes", "newest": "createdAt", "updated": "lastModified",
         "trending": "trendingScore", "rating": "likes"}


def _hf() -> Any:
    """Import huggingface_hub lazily, with its telemetry off (see module docstring).

    Unless the user decided otherwise, telemetry is disabled: otherwise the first request of the
    process also calls ``{HF_ENDPOINT}/api/agent-harnesses`` on huggingface.co, whatever endpoint we
    pass, which leaks traffic past a mirror and stalls where huggingface.co is blocked.
    """
    import huggingface_hub
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_DISABLE_TELEMETRY") is None:
        constants.HF_HUB_DISABLE_TELEMETRY = True
    return huggingface_hub


def claimed_family(tags: Sequence[str]) -> str | None:
    low = [t.lower() for t in tags]
    for tag in low:
        if tag.startswith("base_model:"):
            base = tag.split(":")[-1]
            for needle, family in (("xl", "sdxl"), ("stable-diffusion-3", "sd3"), ("flux", "flux"),
                                   ("stable-diffusion-2", "sd2"), ("v1-5", "sd1"), ("stable-diffusion-v1", "sd1")):
                if needle in base:
                    return family
    for needle, family in TAG_FAMILY:
        if needle in low:
            return family
    return None


def git_blob_sha1(path: Path) -> str:
    """Git's object id of a file (what the Hub's ETag is for files not stored in LFS)."""
    size = path.stat().st_size
    h = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Fallback(Exception):
    """This endpoint is down (connection, timeout, 5xx, not a Hub): try the next one."""


class HuggingFaceSource(Source):
    name = "hf"
    aliases = ("huggingface",)
    description = "Hugging Face Hub with ordered mirror fallback (hf-mirror.com); token: HF_TOKEN"

    def __init__(self, trusted_hosts: Sequence[str] = PUBLIC_HOSTS, metadata_timeout: float = 10.0) -> None:
        self.trusted_hosts = tuple(h.lower() for h in trusted_hosts)
        self.metadata_timeout = metadata_timeout

    # -- endpoints and tokens --
    def endpoints(self, ctx: SourceContext) -> list[str]:
        return [e.rstrip("/") for e in ctx.settings.hf_endpoints]

    def configured_hosts(self, settings: Any) -> list[str]:
        return [urlsplit(e).netloc for e in settings.hf_endpoints]

    def _trusted(self, endpoint: str) -> bool:
        parts = urlsplit(endpoint)
        host, netloc = (parts.hostname or "").lower(), parts.netloc.lower()
        return any(host == t or host.endswith("." + t) or netloc == t for t in self.trusted_hosts)

    def token_for(self, ctx: SourceContext, endpoint: str) -> str | bool:
        """The token for ``endpoint``, or False (never None: huggingface_hub would read a stored token)."""
        token = ctx.settings.hf_token
        if not token:
            return False
        if self._trusted(endpoint) or ctx.settings.hf_token_to_mirrors:
            return token
        return False

    def _file_auth(self, ctx: SourceContext, endpoint: str, location: str) -> dict[str, str]:
        """The header for the file request: only when the file is served by the endpoint itself, never a CDN."""
        token = self.token_for(ctx, endpoint)
        return {"Authorization": f"Bearer {token}"} if token and origin(location) == origin(endpoint) else {}

    def _timeout(self, ctx: SourceContext) -> float:
        return min(self.metadata_timeout, ctx.download_options.timeout[0] + ctx.download_options.timeout[1])

    # -- error mapping --
    def _classify(self, exc: BaseException, endpoint: str, what: str) -> SdhubError | _Fallback:
        hf = _hf()
        errors = hf.errors
        import httpx2

        if isinstance(exc, errors.OfflineModeIsEnabled):
            return SourceError(f"{what}: HF_HUB_OFFLINE is set, so huggingface_hub makes no requests")
        if isinstance(exc, httpx2.TransportError | errors.FileMetadataError | errors.LocalEntryNotFoundError):
            return _Fallback(f"{endpoint}: {type(exc).__name__}: {describe_network_error(exc)}")
        if isinstance(exc, errors.GatedRepoError):
            return AuthRequiredError(
                f"{what} is gated on {endpoint}: accept its terms on the model page, then set HF_TOKEN"
                + ("" if self._trusted(endpoint) else " (and SDHUB_HF_TOKEN_TO_MIRRORS=1 to send it to this mirror)")
            )
        if isinstance(exc, errors.RepositoryNotFoundError):
            return RemoteNotFoundError(f"{what}: no such repository on {endpoint} (or it is private: set HF_TOKEN)")
        if isinstance(exc, errors.RevisionNotFoundError):
            return RemoteNotFoundError(f"{what}: no such revision on {endpoint}")
        if isinstance(exc, errors.EntryNotFoundError):
            return RemoteNotFoundError(f"{what}: no such file in the repository ({endpoint})")
        if isinstance(exc, errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in (408, 0):
                return _Fallback(f"{endpoint}: HTTP {status}")
            if status == 429:
                return RateLimitedError(f"{what}: {endpoint} is rate limiting us (HTTP 429); try again later")
            if status == 401:
                return AuthRequiredError(f"{what}: {endpoint} requires a token (HF_TOKEN)")
            if status == 403:
                return AccessDeniedError(f"{what}: {endpoint} refused access (HTTP 403)")
            if status == 404:
                return RemoteNotFoundError(f"{what}: not found on {endpoint}")
            return SourceError(f"{what}: {endpoint} answered HTTP {status}")
        if isinstance(exc, SdhubError):
            return exc
        if isinstance(exc, OSError):
            return _Fallback(f"{endpoint}: {type(exc).__name__}: {describe_network_error(exc)}")
        if isinstance(exc, ValueError):  # JSON that is not JSON: a captive portal, a proxy's page
            return _Fallback(f"{endpoint}: answered something that is not the Hub's JSON ({type(exc).__name__})")
        raise exc

    def _each_endpoint(
        self, ctx: SourceContext, what: str, call: Callable[[str], T], order: Sequence[str] | None = None
    ) -> tuple[str, T, list[str]]:
        """Run ``call(endpoint)`` on each endpoint in order until one answers; returns (endpoint, result, skipped)."""
        skipped: list[str] = []
        for endpoint in order or self.endpoints(ctx):
            try:
                return endpoint, call(endpoint), skipped
            except _Fallback as exc:
                skipped.append(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - classified below
                outcome = self._classify(exc, endpoint, what)
                if isinstance(outcome, _Fallback):
                    skipped.append(str(outcome))
                    continue
                raise outcome from None
        raise SourceError(f"{what}: every Hugging Face endpoint failed: " + "; ".join(skipped))

    def _api(self, ctx: SourceContext, endpoint: str) -> Any:
        """An HfApi on ``endpoint``, after a quick liveness check.

        HfApi's listing calls retry connection errors and 5xx with exponential back-off (about 20 s
        before giving up); a single fast probe lets the fallback move on at once instead.
        """
        key = f"hf-alive:{endpoint}"
        if key not in ctx.memo:
            ctx.memo[key] = self._probe(ctx, endpoint)
        if ctx.memo[key] is not None:
            raise _Fallback(ctx.memo[key])
        return _hf().HfApi(endpoint=endpoint, token=self.token_for(ctx, endpoint))

    def _probe(self, ctx: SourceContext, endpoint: str) -> str | None:
        """None when ``endpoint`` answers its API; else why it counts as down."""
        import requests

        try:
            resp = ctx.http.session.get(
                f"{endpoint}/api/models", params={"limit": 1}, timeout=(min(ctx.download_options.timeout[0], 5), 10),
                headers={"User-Agent": ctx.http.user_agent}, allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            return f"{endpoint}: unreachable ({describe_network_error(exc)})"
        with resp:
            if resp.status_code >= 500:
                return f"{endpoint}: HTTP {resp.status_code}"
        return None

    # -- metadata --
    def _head(self, ctx: SourceContext, endpoint: str, repo_id: str, path: str, revision: str) -> Any:
        """The ``HEAD …/resolve/…`` metadata; a 429 is waited out as its ``Retry-After`` says (capped)."""
        hf = _hf()
        url = hf.hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint)
        attempt = 0
        while True:
            attempt += 1
            try:
                meta = hf.get_hf_file_metadata(
                    url, token=self.token_for(ctx, endpoint), timeout=self._timeout(ctx), endpoint=endpoint,
                    user_agent="sdhub",
                )
                break
            except hf.errors.HfHubHTTPError as exc:
                response = exc.response
                if response is None or response.status_code != 429 or attempt >= ctx.http.retry.attempts:
                    raise
                wait = parse_retry_after(response.headers.get("Retry-After"))
                ctx.http.sleep(ctx.http.retry.wait_for(attempt, wait))
        if not meta.commit_hash or not meta.etag:
            raise _Fallback(f"{endpoint}: answer lacks X-Repo-Commit/ETag: not a Hugging Face Hub endpoint")
        return meta

    def list_files(self, ctx: SourceContext, ref: Ref) -> list[RemoteFile]:
        repo_id = ref.model_id or ""
        revision = ref.version_id or "main"

        def call(endpoint: str) -> list[Any]:
            return list(self._api(ctx, endpoint).list_repo_tree(repo_id, recursive=True, revision=revision))

        _ep, entries, _ = self._each_endpoint(ctx, f"hf:{repo_id}", call)
        out = []
        for entry in entries:
            if getattr(entry, "size", None) is None or not hasattr(entry, "blob_id"):
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            sha = getattr(lfs, "sha256", None) if lfs is not None else None
            rev_part = f"@{ref.version_id}" if ref.version_id else ""
            out.append(RemoteFile(name=entry.path, size=entry.size, sha256=sha, file_id=entry.path,
                                  ref=f"hf:{repo_id}/{entry.path}{rev_part}", extra={"git_oid": entry.blob_id}))
        return out

    def _choose_file(self, ctx: SourceContext, ref: Ref) -> str:
        """For ``hf:org/repo`` without a path: the repository's single top-level weights file."""
        files = self.list_files(ctx, ref)
        top = [f for f in files if "/" not in f.name and f.name.lower().endswith(WEIGHT_SUFFIXES)]
        if len(top) == 1:
            return top[0].name
        weights = [f for f in files if f.name.lower().endswith(WEIGHT_SUFFIXES)]
        listing = "\n  ".join(f.ref or f.name for f in (top or weights)[:20]) or "(no weight files)"
        if not top and any(f.name == "model_index.json" for f in files):
            raise BadReferenceError(
                f"hf:{ref.model_id} is a diffusers repository; name one weights file, e.g.:\n  {listing}"
            )
        raise BadReferenceError(f"hf:{ref.model_id} has {len(top) or 'no'} top-level weight files; name one:\n  {listing}")

    def plan(self, ctx: SourceContext, ref: Ref) -> DownloadPlan:
        repo_id = ref.model_id or ""
        path = ref.file or self._choose_file(ctx, ref)
        revision = ref.version_id or "main"
        what = f"hf:{repo_id}/{path}"
        endpoint, meta, skipped = self._each_endpoint(ctx, what, lambda ep: self._head(ctx, ep, repo_id, path, revision))
        etag = (meta.etag or "").lower()
        sha256 = etag if _SHA256.match(etag) else None
        git_sha1 = etag if _SHA1.match(etag) else None
        tags: list[str] = []
        info_extra: dict[str, Any] = {}
        try:  # tags say which family the repo claims; optional, so a failure here never blocks
            model = self._api(ctx, endpoint).model_info(repo_id, revision=meta.commit_hash, timeout=self._timeout(ctx))
            tags = list(model.tags or [])
            card = getattr(model, "card_data", None) or getattr(model, "cardData", None)
            license_name = getattr(card, "license", None) if card is not None else None
            if license_name:
                info_extra["license"] = license_name
        except Exception:  # noqa: BLE001
            pass
        filename = path.rsplit("/", 1)[-1]
        family = claimed_family(tags)
        kind = "lora" if "lora" in [t.lower() for t in tags] else None
        location = meta.location
        auth = self._file_auth(ctx, endpoint, location)
        warnings = [f"skipped {s}" for s in skipped]
        if not sha256 and not git_sha1:
            warnings.append("the Hub published no content hash for this file: it cannot be verified")
        info = SourceInfo(
            source=self.name,
            model_id=repo_id,
            version_id=meta.commit_hash,
            file_id=path,
            model_name=repo_id,
            version_name=ref.version_id or "main",
            model_type=kind,
            page_url=f"{endpoint}/{repo_id}/blob/{meta.commit_hash}/{quote(path)}",
            download_url=f"{endpoint}/{repo_id}/resolve/{meta.commit_hash}/{quote(path)}",
            original_filename=filename,
            published_hashes={"sha256": sha256} if sha256 else {},
            tags=tags,
            license={"license": info_extra["license"]} if "license" in info_extra else None,
            creator=repo_id.split("/")[0],
            claimed_family=family,
            extra={"revision": revision, "endpoint": endpoint, **({"git_sha1": git_sha1} if git_sha1 else {})},
        )
        return DownloadPlan(
            source=self.name,
            ref=f"hf:{repo_id}/{path}" + (f"@{ref.version_id}" if ref.version_id else ""),
            url=location,
            filename=filename,
            size=meta.size,
            source_info=info,
            sha256=sha256,
            published_hashes=dict(info.published_hashes),
            auth_headers=auth,
            claimed_family=family,
            claimed_kind=kind,
            warnings=warnings,
            endpoint=endpoint,
            extra={"repo_id": repo_id, "path": path, "commit": meta.commit_hash, "etag": etag,
                   "git_sha1": git_sha1, "size_exact": True},
        )

    # -- download --
    def fetch(self, ctx: SourceContext, plan: DownloadPlan, dest_dir: Path) -> FetchedFile:
        repo_id, path, commit = plan.extra["repo_id"], plan.extra["path"], plan.extra["commit"]
        cached = self._from_local_cache(ctx, repo_id, path, commit, dest_dir, plan.filename)
        if cached is not None:
            return cached
        order = [plan.endpoint or ""] + [e for e in self.endpoints(ctx) if e != plan.endpoint]
        what = f"hf:{repo_id}/{path}"
        failures: list[str] = []
        for endpoint in order:
            if endpoint == plan.endpoint:
                location, auth = plan.url, plan.auth_headers
            else:
                try:
                    meta = self._head(ctx, endpoint, repo_id, path, commit)
                except _Fallback as exc:
                    failures.append(str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001
                    outcome = self._classify(exc, endpoint, what)
                    if isinstance(outcome, _Fallback):
                        failures.append(str(outcome))
                        continue
                    raise outcome from None
                if (meta.etag or "").lower() != plan.extra["etag"]:
                    failures.append(f"{endpoint}: serves a different file (ETag {meta.etag}), skipped")
                    continue
                location = meta.location
                auth = self._file_auth(ctx, endpoint, location)
            try:
                result = ctx.downloader().fetch(
                    location,
                    dest_dir,
                    filename=plan.filename,
                    auth_headers=auth,
                    expected_size=plan.size,
                    expected_sha256=plan.sha256,
                    what=f"{what} via {endpoint}",
                )
            except LocalWriteError:
                raise  # our disk, not their CDN: no other endpoint can help
            except (RemoteNotFoundError, AuthRequiredError, AccessDeniedError, DownloadError, SourceError) as exc:
                # The redirected file request failed on this endpoint's CDN: the next endpoint may
                # point elsewhere. A .part already written is resumed there (same file, same name).
                failures.append(f"{endpoint} → {urlsplit(location).netloc}: {exc}")
                continue
            git_sha1 = git_blob_sha1(result.part_path) if plan.extra.get("git_sha1") else None
            return FetchedFile(
                part_path=result.part_path,
                filename=result.filename,
                size=result.size,
                sha256=result.sha256,
                served_by=f"{endpoint} (file from {result.served_by})",
                resumed_from=result.resumed_from,
                connections=result.connections,
                git_sha1=git_sha1,
            )
        raise SourceError(f"{what}: no Hugging Face endpoint could deliver the file: " + "; ".join(failures))

    def _from_local_cache(
        self, ctx: SourceContext, repo_id: str, path: str, commit: str, dest_dir: Path, filename: str
    ) -> FetchedFile | None:
        """Reuse a copy already in a Hugging Face cache (ours or the user's) at this exact commit."""
        hf = _hf()
        for cache_dir in dict.fromkeys([str(ctx.settings.hf_cache_dir), hf.constants.HF_HUB_CACHE]):
            try:
                found = hf.try_to_load_from_cache(repo_id, path, cache_dir=cache_dir, revision=commit)
            except Exception:  # noqa: BLE001 - a broken cache is simply not used
                continue
            if isinstance(found, str) and os.path.isfile(found):
                dest_dir.mkdir(parents=True, exist_ok=True)
                part = dest_dir / (filename + ".part")
                # Same file system: a hardlink to the cache's blob, no bytes copied; else a copy.
                try:
                    if part.exists():
                        part.unlink()
                    os.link(os.path.realpath(found), part)
                    how = "hardlinked from"
                except OSError:
                    shutil.copyfile(found, part)
                    how = "copied from"
                h = hashlib.sha256()
                with open(part, "rb") as fh:
                    for block in iter(lambda: fh.read(8 << 20), b""):
                        h.update(block)
                return FetchedFile(part_path=part, filename=filename, size=part.stat().st_size, sha256=h.hexdigest(),
                                   served_by=f"local Hugging Face cache {cache_dir} ({how})",
                                   git_sha1=git_blob_sha1(part))
        return None

    # -- search --
    def search(self, ctx: SourceContext, query: SearchQuery) -> SearchPage:
        filters: list[str] = []
        for t in query.types:
            if t.lower() == "lora":
                filters.append("lora")
            elif t.lower() not in ("checkpoint",):
                filters.append(t)
        for b in query.base:
            filters.append(BASE_TAGS.get(b.lower(), b))
        sort = SORTS.get((query.sort or "downloads").lower(), query.sort)
        pipeline_tag = "text-to-image" if not query.types or set(t.lower() for t in query.types) <= {"checkpoint", "lora"} else None

        def call(endpoint: str) -> list[Any]:
            api = self._api(ctx, endpoint)
            return list(api.list_models(search=query.text or None, filter=filters or None, sort=sort,
                                        limit=max(1, query.limit), pipeline_tag=pipeline_tag))

        endpoint, models, _ = self._each_endpoint(ctx, "Hugging Face search", call)
        results = []
        for m in models:
            tags = list(getattr(m, "tags", None) or [])
            results.append(SearchResult(
                source=self.name,
                ref=f"hf:{m.id}",
                name=m.id,
                kind="lora" if "lora" in tags else None,
                claimed_family=claimed_family(tags),
                downloads=getattr(m, "downloads", None),
                likes=getattr(m, "likes", None),
                creator=m.id.split("/")[0] if "/" in m.id else None,
                page_url=f"{endpoint}/{m.id}",
                downloadable=not getattr(m, "private", False),
                tags=tags[:12],
            ))
        return SearchPage(results=results, next_cursor=None)

    def ref_for(self, info: SourceInfo) -> Ref | None:
        return Ref("hf", model_id=info.model_id, version_id=info.version_id, file=info.file_id)

    # -- updates --
    def updates_for(self, ctx: SourceContext, installed: Sequence[InstalledFile], cache: UpdateCache) -> list[UpdateInfo]:
        """The commit each file's branch points to now, from ``HEAD …/resolve/<branch>/<path>`` (no download).

        One HEAD per repository and branch tells the commit; only files installed from another
        commit get a HEAD of their own, to tell a changed file (ETag) from one the new commit left alone.
        A file installed at a pinned commit (or found in a Hugging Face cache) is checked against ``main``.
        """
        groups: dict[str, list[InstalledFile]] = {}
        for item in installed:
            groups.setdefault(f"{item.info.model_id}@{_branch(item.info)}", []).append(item)

        def fetch(keys: list[str]) -> tuple[dict[str, Any], dict[str, BaseException]]:
            values: dict[str, Any] = {}
            errors: dict[str, BaseException] = {}
            down: BaseException | None = None
            for key in keys:
                if down is not None:
                    errors[key] = down
                    continue
                try:
                    values[key] = self._branch_state(ctx, groups[key])
                except RemoteNotFoundError as exc:
                    errors[key] = exc
                except SdhubError as exc:  # every endpoint down: the other repositories would fail alike
                    errors[key] = down = exc
            return values, errors

        answers = cache.answers({key: f"hf:branch:{key}" for key in groups}, fetch)
        rows: list[UpdateInfo] = []
        for key, items in groups.items():
            answer = answers[key]
            for item in items:
                if not answer.ok:
                    rows.append(error_row(item, self.name, f"hf:{item.info.model_id}: {answer.error}"))
                    continue
                rows.append(_hf_update_row(item, answer.data, answer.fetched_at, answer.from_cache, answer.error))
        return rows

    def _branch_state(self, ctx: SourceContext, items: Sequence[InstalledFile]) -> dict[str, Any]:
        """``{"commit", "files": {path: {"etag", "size"} | {"error"}}}`` for one repository branch."""
        repo_id, branch = str(items[0].info.model_id), _branch(items[0].info)
        commit: str | None = None
        files: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for item in items:
            path = str(item.info.file_id or "")
            if not path or path in files or (commit is not None and item.info.version_id == commit):
                continue  # the branch still points at the commit this file was installed from
            try:
                _ep, meta, _ = self._each_endpoint(
                    ctx, f"hf:{repo_id}/{path}", lambda ep, p=path: self._head(ctx, ep, repo_id, p, branch))
            except RemoteNotFoundError as exc:  # this file is gone from the branch, maybe not the others
                files[path] = {"error": str(exc)}
                missing.append(str(exc))
                continue
            commit = commit or meta.commit_hash
            files[path] = {"etag": (meta.etag or "").lower(), "size": meta.size, "commit": meta.commit_hash}
        if commit is None and missing:
            raise RemoteNotFoundError(missing[0])
        return {"commit": commit, "branch": branch, "files": files}


def _branch(info: SourceInfo) -> str:
    """The branch a file follows: the revision it was installed from, ``main`` for a pinned commit."""
    revision = str((info.extra or {}).get("revision") or info.version_name or "main")
    return "main" if _SHA1.match(revision.lower()) else revision


def _hf_update_row(item: InstalledFile, state: dict[str, Any], at: float | None, from_cache: bool,
                   stale_because: str | None) -> UpdateInfo:
    info = item.info
    repo_id, path, branch = str(info.model_id), str(info.file_id or ""), str(state.get("branch") or _branch(info))
    commit = state.get("commit")
    row = UpdateInfo(source="hf", record_id=item.record_id, path=item.path, model_id=repo_id, model_name=repo_id,
                     installed_version=info.version_id, installed_version_name=info.version_name or branch,
                     newest_version=commit, newest_version_name=branch, checked_at=at, from_cache=from_cache,
                     downloadable=True)
    if stale_because:
        row.error = stale_because
        row.note = f"Hugging Face did not answer now ({stale_because}); this is its answer from before"
    seen = (state.get("files") or {}).get(path) or {}
    if seen.get("error"):
        row.status, row.error = "error", str(seen["error"])
        return row
    if not commit:
        row.status = "unknown"
        return row
    row.ref = f"hf:{repo_id}/{path}@{commit}"
    if info.version_id == commit:
        row.status = "current"
        return row
    etag = str(seen.get("etag") or "")
    if not etag:
        row.status, row.note = "unknown", f"{branch} is at {commit[:12]}, this file was not checked there"
        return row
    ours = {h for h in (item.sha256, info.published_hashes.get("sha256"), (info.extra or {}).get("git_sha1")) if h}
    if etag in {h.lower() for h in ours}:
        row.status = "current"
        row.note = f"{branch} moved to {commit[:12]}; this file is the same there"
        return row
    row.status = "update"
    row.newer = [{"version": commit, "name": branch, "published_at": None, "early_access_until": None,
                  "downloadable": True, "ref": row.ref}]
    return row


@hookimpl
def register_sources(register: Any) -> None:
    register(HuggingFaceSource())

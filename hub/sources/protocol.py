"""The Source interface every model source plugin implements, and the plain values sources return.

A source turns a :class:`hub.refs.Ref` into a :class:`DownloadPlan` (where the bytes are, how big,
which hashes the source publishes, what family it claims), searches, lists files and looks up
hashes. It does not write into the store: :mod:`hub.install` downloads, verifies and hands the file
to the catalogue, so every source gets the same resume, verification, dedupe and quarantine rules.

Sources are registered by plugins (``register_sources`` hook) and found with
``hub.plugins.get_registry("sources")``; :class:`Source` is a real ABC so the registry can refuse
anything else.
"""

from __future__ import annotations

import difflib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalogue.records import SourceInfo, tag_names
from .download import (
    DownloadOptions,
    Downloader,
    DownloadResult,
    ErrorTranslator,
    HttpClient,
    Progress,
    RetryPolicy,
)
from ..errors import ConfigError, SourceError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings
    from .refs import Ref
    from .updates import InstalledFile, UpdateCache, UpdateInfo

__all__ = [
    "Source",
    "SourceContext",
    "SearchQuery",
    "SearchResult",
    "SearchPage",
    "DownloadPlan",
    "RemoteFile",
    "FetchedFile",
    "SourceInfo",
    "KIND_NAMES",
    "FAMILY_NAMES",
    "WEIGHT_SUFFIXES",
]

# Our names for kinds and families (what --type / --base accept); each source maps them to its own.
KIND_NAMES = ("checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler", "hypernetwork", "diffusion_model")
FAMILY_NAMES = ("sd1", "sd2", "sdxl", "sd3", "flux", "cascade", "pony", "illustrious")
# File name endings of model weights: what a repository reference without a file path means.
WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")


# -- values ----------------------------------------------------------------------------------------


@dataclass
class SearchQuery:
    """One search across sources; ``types``/``base`` use our names (see KIND_NAMES) or a source's raw value."""

    text: str = ""
    types: list[str] = field(default_factory=list)
    base: list[str] = field(default_factory=list)
    sort: str | None = None
    period: str | None = None
    nsfw: bool = False
    limit: int = 20
    cursor: str | None = None


@dataclass
class SearchResult:
    """One row of ``sdhub search``: enough to choose, and a reference ready to install."""

    source: str
    ref: str
    name: str
    version: str | None = None
    kind: str | None = None
    base_model: str | None = None
    claimed_family: str | None = None
    size: int | None = None
    downloads: int | None = None
    likes: int | None = None
    nsfw: bool | None = None
    creator: str | None = None
    page_url: str | None = None
    early_access_until: str | None = None
    paid: bool = False
    downloadable: bool = True
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tags = tag_names(self.tags)  # tag objects ({"name": …}) from older answers become strings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchPage:
    results: list[SearchResult]
    next_cursor: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a filter value the source does not know


@dataclass
class RemoteFile:
    """A file a source offers for one version (``sdhub install --dry-run`` and file pickers)."""

    name: str
    size: int | None
    sha256: str | None = None
    file_id: str | None = None
    kind: str | None = None
    primary: bool = False
    ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DownloadPlan:
    """Everything needed to fetch one file and to check it: what ``--dry-run`` prints.

    ``auth_headers`` are sent only to the origin of ``url`` (never to the host a redirect leads
    to) and never printed; ``to_dict()`` leaves them out.
    """

    source: str
    ref: str
    url: str
    filename: str
    size: int | None
    source_info: SourceInfo
    sha256: str | None = None
    published_hashes: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth_headers: dict[str, str] = field(default_factory=dict)
    claimed_family: str | None = None
    claimed_kind: str | None = None
    early_access_until: str | None = None
    warnings: list[str] = field(default_factory=list)
    endpoint: str | None = None  # which endpoint answered the metadata request (HF fallback)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What identifies this download across processes (the install lock's name)."""
        return self.sha256 or f"{self.source}:{self.source_info.model_id}:{self.source_info.version_id}:{self.filename}"

    def to_dict(self) -> dict[str, Any]:
        from .download import shown_url

        return {
            "source": self.source,
            "ref": self.ref,
            "url": shown_url(self.url),  # the query picks the file; secrets in it are masked
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "published_hashes": dict(self.published_hashes),
            "claimed_family": self.claimed_family,
            "claimed_kind": self.claimed_kind,
            "early_access_until": self.early_access_until,
            "warnings": list(self.warnings),
            "endpoint": self.endpoint,
            "model_name": self.source_info.model_name,
            "version_name": self.source_info.version_name,
            "base_model": self.source_info.base_model,
            "page_url": self.source_info.page_url,
            "sends_token": bool(self.auth_headers),
        }


@dataclass
class FetchedFile:
    """A complete, not yet verified download: a ``.part`` path plus what the transfer learned."""

    part_path: Path
    filename: str
    size: int
    sha256: str | None
    served_by: str
    resumed_from: int = 0
    connections: int = 1
    git_sha1: str | None = None


# -- context ---------------------------------------------------------------------------------------


@dataclass
class SourceContext:
    """Settings plus the HTTP client and download options a source call uses.

    Built once per install/search; tests build one pointing at fake servers with tiny back-off.
    """

    settings: Settings
    http: HttpClient
    download_options: DownloadOptions
    progress: Progress | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # per-operation facts (e.g. endpoints found down)

    @classmethod
    def create(
        cls,
        settings: Settings | None = None,
        *,
        retry: RetryPolicy | None = None,
        connections: int | None = None,
        progress: Progress | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> SourceContext:
        if settings is None:
            from ..config import load_settings

            settings = load_settings()
        retry = retry or _retry_from_env()
        options = DownloadOptions(
            connections=connections or getattr(settings, "download_connections", 1) or 1,
            retry=retry,
        )
        if timeout is not None:
            options.timeout = timeout
        http = HttpClient(retry=retry, timeout=options.timeout, user_agent=options.user_agent)
        return cls(settings=settings, http=http, download_options=options, progress=progress)

    def downloader(self) -> Downloader:
        return Downloader(self.download_options, http=self.http, progress=self.progress)


def _retry_from_env() -> RetryPolicy:
    """``SDHUB_RETRY_MAX_WAIT`` caps each back-off wait (seconds); ``SDHUB_RETRY_ATTEMPTS`` the tries."""
    policy = RetryPolicy()
    if os.environ.get("SDHUB_RETRY_MAX_WAIT"):
        policy.max_wait = _env_number("SDHUB_RETRY_MAX_WAIT", float, "a number of seconds")
        policy.base_wait = min(policy.base_wait, policy.max_wait)
    if os.environ.get("SDHUB_RETRY_ATTEMPTS"):
        policy.attempts = max(1, _env_number("SDHUB_RETRY_ATTEMPTS", int, "a whole number"))
    return policy


def _env_number(name: str, kind: Callable[[str], float], what: str) -> Any:
    value = os.environ[name]
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{name} must be {what}, not {value!r}")
    return number


# -- the interface ---------------------------------------------------------------------------------


class Source(ABC):
    """A place models come from. Subclass it, give it a ``name`` (the reference scheme it owns)."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""

    def handles(self, ref: Ref) -> bool:
        """Whether this source owns ``ref`` (by default: its scheme is our name)."""
        return ref.scheme == self.name or ref.scheme in self.aliases

    def configured_hosts(self, settings: Settings) -> list[str]:
        """Hosts of configured endpoints, so pasted URLs of a self-hosted mirror are recognised."""
        return []

    @abstractmethod
    def search(self, ctx: SourceContext, query: SearchQuery) -> SearchPage:
        """Search the source; results carry ready-to-install references."""

    @abstractmethod
    def plan(self, ctx: SourceContext, ref: Ref) -> DownloadPlan:
        """Resolve a reference to exactly one file to fetch, with its published hashes."""

    def list_files(self, ctx: SourceContext, ref: Ref) -> list[RemoteFile]:
        """Files of the version/repository ``ref`` names (default: only the planned file)."""
        plan = self.plan(ctx, ref)
        return [RemoteFile(name=plan.filename, size=plan.size, sha256=plan.sha256, primary=True, ref=plan.ref)]

    def lookup_hash(self, ctx: SourceContext, sha256: str) -> SourceInfo | None:
        """What the source knows about a file with this SHA-256 (None when unknown)."""
        return self.lookup_hashes(ctx, [sha256]).get(sha256.lower())

    def lookup_hashes(self, ctx: SourceContext, sha256s: Sequence[str]) -> dict[str, SourceInfo]:
        """Batch form of :meth:`lookup_hash`; sources with a batch endpoint override it."""
        return {}

    def plan_for_hash(self, ctx: SourceContext, sha256: str) -> DownloadPlan | None:
        """A download plan for the file with this SHA-256, when the source can find it by hash."""
        info = self.lookup_hash(ctx, sha256)
        if info is None:
            return None
        ref = self.ref_for(info)
        return self.plan(ctx, ref) if ref is not None else None

    def ref_for(self, info: SourceInfo) -> Ref | None:
        """The reference that names ``info``'s file at this source."""
        return None

    def updates_for(
        self, ctx: SourceContext, installed: Sequence[InstalledFile], cache: UpdateCache
    ) -> list[UpdateInfo]:
        """Whether a newer version exists for each installed file (``sdhub updates``); optional.

        ``installed`` holds every file to check from this source: ask once per model, not per file,
        through ``cache.answers`` (which stores each answer with its time and, offline, answers
        from the store alone). Return one :class:`hub.sources.updates.UpdateInfo` per file. By
        default a source does not support it, and ``sdhub updates`` says so for its files.
        """
        raise NotImplementedError(f"source {self.name!r} cannot tell whether a newer version exists")

    def error_translator(self, ctx: SourceContext) -> ErrorTranslator | None:
        """Turns this source's error responses into clear messages (401/403/404/410/429…)."""
        return None

    def fetch(self, ctx: SourceContext, plan: DownloadPlan, dest_dir: Path) -> FetchedFile:
        """Download ``plan`` into ``dest_dir`` as a ``.part``; default: our engine."""
        result: DownloadResult = ctx.downloader().fetch(
            plan.url,
            dest_dir,
            filename=plan.filename,
            headers=plan.headers,
            auth_headers=plan.auth_headers,
            expected_size=plan.size if plan.extra.get("size_exact", True) else None,
            expected_sha256=plan.sha256,
            translate=self.error_translator(ctx),
            what=f"{plan.ref} ({plan.filename})",
            size_hint=plan.size,
        )
        return FetchedFile(
            part_path=result.part_path,
            filename=result.filename,
            size=result.size,
            sha256=result.sha256,
            served_by=result.served_by,
            resumed_from=result.resumed_from,
            connections=result.connections,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def get_sources() -> list[Source]:
    """The registered sources, built-ins first."""
    from .. import plugins

    return list(plugins.get_registry("sources"))


def get_source(name: str) -> Source:
    from .. import plugins

    reg = plugins.get_registry("sources")
    source = reg.get(name)
    if source is None:
        names = ", ".join(sorted(reg.names())) or "none"
        raise SourceError(f"no source named {name!r} is registered (available: {names})")
    return source


def source_for(ref: Ref, sources: Iterable[Source] | None = None) -> Source:
    candidates = list(sources) if sources is not None else get_sources()
    for source in candidates:
        if source.handles(ref):
            return source
    names = sorted({s.name for s in candidates})
    close = difflib.get_close_matches(ref.scheme, names, n=1)
    hint = f"; did you mean {close[0]}:?" if close else " (is its plugin installed, or disabled by SDHUB_PLUGINS?)"
    raise SourceError(
        f"no registered source handles {ref.canonical()!r}: installed sources are {', '.join(names) or 'none'}{hint}"
    )


def url_hosts(settings: Settings, sources: Iterable[Source] | None = None) -> dict[str, str]:
    """Extra host → scheme pairs for :func:`hub.refs.parse` (configured endpoints of each source)."""
    hosts: dict[str, str] = {}
    for source in sources if sources is not None else get_sources():
        for host in source.configured_hosts(settings):
            hosts.setdefault(host.lower(), source.name)
    return hosts


def first_value(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The first present, non-empty value among ``keys`` (APIs that renamed fields over time)."""
    for key in keys:
        value = mapping.get(key)
        if value not in (None, "", [], {}):
            return value
    return None

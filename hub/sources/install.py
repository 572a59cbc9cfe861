"""Resolve and install: reference → source → plan → download → verify → catalogue.

The rules every source gets, whatever its API:
- a reference already in the catalogue (by source ids or hash) answers with no network call;
- the same SHA-256 already in the store is never downloaded again (checked before and after);
- two processes installing the same file: a lock makes the second wait, then reuse the first's work;
- the download lands in ``<store>/.incoming/<name>.part`` and is verified against every hash the
  source published; a mismatch moves it to ``<store>/.quarantine/`` and leaves the catalogue untouched;
- a verified file is fingerprinted and identified, put at ``<store>/<layout>`` and registered in
  one transaction by :meth:`hub.api.Hub.register_file`, which also flags a family the source
  claims but the header contradicts.

``Hub.resolve/install/search/lookup`` delegate to the functions here (first argument: the Hub).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import requests

from . import refs as refs_mod
from ..catalogue.records import FileRecord, SourceInfo
from .download import Progress, file_lock, keep_resumable, sanitize_filename
from ..errors import (
    BadReferenceError,
    DownloadError,
    FileAccessError,
    HashMismatchError,
    LocalWriteError,
    NotInCatalogueError,
    RemoteNotFoundError,
    SdhubError,
    SourceError,
)
from .refs import Ref
from .budget import call_within
from .protocol import (
    DownloadPlan,
    FetchedFile,
    SearchPage,
    SearchQuery,
    SearchResult,
    Source,
    SourceContext,
    WEIGHT_SUFFIXES,
    get_sources,
    source_for,
    url_hosts,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub

INCOMING_DIR = ".incoming"
QUARANTINE_DIR = ".quarantine"


# -- results --------------------------------------------------------------------------------------


@dataclass
class ResolvedModel:
    """A verified local file and its catalogue record (``path``/``record`` are None for a plan only)."""

    path: Path | None
    record: FileRecord | None
    plan: DownloadPlan | None = None
    installed_now: bool = False

    def __fspath__(self) -> str:
        if self.path is None:
            raise FileNotFoundError("not downloaded (resolve(..., download=False) returns only the plan)")
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "installed_now": self.installed_now,
            "record": self.record.to_dict() if self.record else None,
            "plan": self.plan.to_dict() if self.plan else None,
        }


@dataclass
class InstallResult:
    """What ``sdhub install --json`` prints per reference."""

    ref: str
    status: str  # installed | already-installed | planned | failed | up-to-date (install --upgrade)
    record: FileRecord | None = None
    path: str | None = None
    plan: DownloadPlan | None = None
    served_by: str | None = None
    resumed_from: int = 0
    connections: int = 1
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    family_mismatch: str | None = None
    error: str | None = None
    error_type: str | None = None
    kind_mismatch: str | None = None
    # What the install also did for the UIs: sidecars written, links made ([ui], --into).
    placed: list[str] = field(default_factory=list)
    # install --upgrade: the older installed files this one is the newer version of (left in place).
    upgraded_from: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": self.status,
            "path": self.path,
            "served_by": self.served_by,
            "resumed_from": self.resumed_from,
            "connections": self.connections,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            "family_mismatch": self.family_mismatch,
            "kind_mismatch": self.kind_mismatch,
            "error": self.error,
            "error_type": self.error_type,
            "placed": self.placed,
            "upgraded_from": self.upgraded_from,
            "plan": self.plan.to_dict() if self.plan else None,
            "record": self.record.to_dict() if self.record else None,
        }


@dataclass
class SearchReport:
    results: list[SearchResult]
    errors: dict[str, str] = field(default_factory=dict)
    next_cursors: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)  # the sources searched (not in to_dict: its shape is fixed)
    warnings: list[str] = field(default_factory=list)  # "<source>: …", e.g. a filter value passed through as typed

    @property
    def all_failed(self) -> bool:
        """Every source asked failed: "no results" would be a lie."""
        return bool(self.asked) and all(name in self.errors for name in self.asked)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "errors": self.errors,
                "next_cursors": self.next_cursors}


@dataclass
class LookupResult:
    path: str
    sha256: str | None
    record_id: int | None = None
    found: list[SourceInfo] = field(default_factory=list)
    family_mismatch: str | None = None
    error: str | None = None
    kind_mismatch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "record_id": self.record_id,
            "found": [
                {"source": s.source, "model_id": s.model_id, "version_id": s.version_id, "model_name": s.model_name,
                 "version_name": s.version_name, "base_model": s.base_model, "page_url": s.page_url,
                 "trained_words": s.trained_words, "tags": s.tags, "creator": s.creator, "license": s.license,
                 "nsfw": s.nsfw}
                for s in self.found
            ],
            "family_mismatch": self.family_mismatch,
            "kind_mismatch": self.kind_mismatch,
            "error": self.error,
        }


# -- helpers --------------------------------------------------------------------------------------


def build_context(
    hub: Hub,
    *,
    progress: Progress | None = None,
    connections: int | None = None,
    ctx: SourceContext | None = None,
) -> SourceContext:
    if ctx is not None:
        if progress is not None:
            ctx.progress = progress
        return ctx
    ctx = SourceContext.create(hub.settings, progress=progress, connections=connections)
    ctx.download_options.hash_while_downloading = False  # _finish fingerprints the file anyway
    return ctx


def parse_ref(hub: Hub, ref: str | Ref) -> Ref:
    """Parse with the configured endpoints' hosts recognised as their sources' URLs."""
    if isinstance(ref, Ref):
        return ref
    try:
        hosts = url_hosts(hub.settings)
    except SdhubError:
        hosts = {}
    try:
        return refs_mod.parse(ref, hosts=hosts)
    except BadReferenceError:
        if refs_mod.catalogue_id(ref) is not None:
            hub.get(ref)  # "#99" not catalogued: say there is no file #99, not "cannot understand reference"
        raise


def _on_disk(records: Iterable[FileRecord]) -> list[FileRecord]:
    return [r for r in records if r.path and Path(r.path).exists()]


def _local(hub: Hub, ref: Ref) -> list[FileRecord]:
    """Catalogue records for ``ref``, from the database only (no network)."""
    cat = hub.catalogue
    if ref.scheme == "hash":
        return _on_disk(hub.find_by_hash(ref.hash_value or ""))
    if ref.scheme == "hf":
        commit = ref.version_id if ref.version_id and len(ref.version_id) == 40 else None
        records = cat.by_source("hf", ref.model_id, commit, ref.file)
        if ref.version_id and not commit:
            # A branch or tag: only what was installed from that revision name.
            records = [r for r in records
                       if any(s.source == "hf" and s.extra.get("revision") == ref.version_id for s in r.sources)]
        if ref.file:  # by_source also matches the bare file name: sub/x.safetensors is not x.safetensors
            records = [r for r in records if any(s.source == "hf" and s.file_id == ref.file for s in r.sources)]
        else:
            # "hf:org/repo" means the repository's single top-level weights file (as the source plans
            # it), not whatever else was installed from the repository (a README, sub/extra.safetensors).
            records = [r for r in records if any(
                s.source == "hf" and s.model_id == ref.model_id and "/" not in (s.file_id or "/")
                and (s.file_id or "").lower().endswith(WEIGHT_SUFFIXES) for s in r.sources)]
            records = records if len(records) == 1 else []
        return _on_disk(records)
    records = cat.by_source(ref.scheme, ref.model_id, ref.version_id, ref.file)
    if ref.scheme == "civitai" and not ref.file:
        records = [r for r in records if _civitai_file_matches(r, ref)]
    return _on_disk(records)


_CIVITAI_FILE_SELECTORS = frozenset({"type", "format", "size", "fp", "quantType", "fileId"})


def _civitai_file_matches(record: FileRecord, ref: Ref) -> bool:
    """Whether ``record`` is the file ``ref`` picks among its version's files.

    ``by_source`` returns every installed file of a version: a VAE installed from it must not
    answer ``civitai:<model>@<version>`` (the primary file) or ``…?type=Model``. Each file's own
    download URL tells them apart: Civitai adds ``?type=&format=…`` or ``?fileId=`` to every file
    but the primary one (sources.md §1.4).
    """
    selectors = dict(ref.selectors)
    for info in record.sources:
        if info.source != "civitai" or (ref.version_id and str(info.version_id) != ref.version_id):
            continue
        if ref.model_id and str(info.model_id) != ref.model_id:
            continue
        query = {k: v[0] for k, v in parse_qs(urlsplit(info.download_url or "").query).items()}
        if "fileId" in selectors:
            matched = str(info.file_id) == selectors["fileId"]
        elif selectors:
            matched = all(query.get(key) == value for key, value in selectors.items())
        else:
            matched = not (query.keys() & _CIVITAI_FILE_SELECTORS)
        if matched:
            return True
    return False


def find_local(hub: Hub, ref: str) -> list[FileRecord] | None:
    """Catalogued files a source reference names (None when ``ref`` is not a reference at all)."""
    try:
        parsed = parse_ref(hub, ref)
    except BadReferenceError:
        return None
    return _local(hub, parsed)


def _ordered_sources(hub: Hub, names: Sequence[str] | None = None) -> list[Source]:
    sources = get_sources()
    if names:
        wanted = [n.lower() for n in names]
        chosen = [s for s in sources if s.name.lower() in wanted or any(a.lower() in wanted for a in s.aliases)]
        missing = [n for n in wanted if not any(n == s.name.lower() or n in [a.lower() for a in s.aliases]
                                               for s in chosen)]
        if missing:
            raise SourceError(f"unknown source(s): {', '.join(missing)} (available: "
                              f"{', '.join(s.name for s in sources) or 'none'})")
        return chosen
    preferred = [p.lower() for p in getattr(hub.settings, "preferred_sources", [])]
    return sorted(sources, key=lambda s: preferred.index(s.name) if s.name in preferred else len(preferred))


def plan_for(hub: Hub, ref: Ref, ctx: SourceContext) -> tuple[Source, DownloadPlan]:
    """Ask the owning source (or, for a hash, each source in preference order) for a download plan."""
    if ref.scheme != "hash":
        source = source_for(ref)
        plan = source.plan(ctx, ref)
        plan.warnings[:0] = [w for w in ref.warnings if w not in plan.warnings]  # e.g. an AIR type we do not know
        return source, plan
    asked, problems = [], []
    for source in _ordered_sources(hub):
        asked.append(source.name)
        try:
            plan = source.plan_for_hash(ctx, ref.hash_value or "")
        except RemoteNotFoundError:
            plan = None
        except Exception as exc:  # noqa: BLE001 - as in search: one source (maybe a plugin's) must not hide the others
            problems.append(f"{source.name}: {exc}" if isinstance(exc, SdhubError)
                            else source_failure(source.name, "hash lookup", exc))
            continue
        if plan is not None:
            return source, plan
    detail = f"; errors: {'; '.join(problems)}" if problems else ""
    raise RemoteNotFoundError(
        f"{ref.canonical()}: not in the local catalogue and no source knows this hash"
        f" (asked {', '.join(asked) or 'none'}){detail}"
    )


def store_path(hub: Hub, plan: DownloadPlan, identification: dict[str, Any] | None, filename: str) -> Path:
    """Where a verified file goes: ``<store>/<layout>``, every placeholder made a safe path component."""
    settings = hub.settings
    store = Path(settings.store).expanduser().absolute()
    ident = identification or {}

    def known(value: Any) -> str | None:
        return None if value in (None, "", "unknown") else str(value)

    info = plan.source_info
    # A file that could not be identified at all (a README, a config, a broken file) is not what the
    # source's model page claims: it is filed as unknown rather than among that page's LoRAs.
    readable = identification is not None
    values = {
        "kind": known(ident.get("kind")) or (plan.claimed_kind if readable else None) or "unknown",
        "family": known(ident.get("family")) or (plan.claimed_family if readable else None) or "unknown",
        "filename": filename,
        "source": plan.source,
        "base_model": info.base_model or "unknown",
        "model_name": info.model_name or "unknown",
        "model_id": info.model_id or "unknown",
        "version_id": info.version_id or "unknown",
    }
    layout = settings.store_layout
    parts = []
    for piece in layout.replace("\\", "/").split("/"):
        if not piece:
            continue
        try:
            rendered = piece.format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise SdhubError(f"store layout {layout!r} has an unknown placeholder ({exc});"
                             f" use {', '.join('{' + k + '}' for k in values)}") from None
        parts.append(sanitize_filename(rendered, fallback="unknown"))
    target = store.joinpath(*parts)
    if store not in target.parents:
        raise SdhubError(f"store layout {layout!r} leads outside the store {store}")
    return target


def _unique(target: Path, sha256: str) -> Path:
    """A free name: ``name.<sha8>.ext`` when another file already holds ``name.ext``."""
    if not target.exists():
        return target
    stem, suffix = target.stem, target.suffix
    return target.with_name(f"{stem}.{sha256[:8]}{suffix}")


def _quarantine(hub: Hub, path: Path, plan: DownloadPlan, problems: list[str]) -> Path:
    qdir = Path(hub.settings.store).expanduser() / QUARANTINE_DIR
    qdir.mkdir(parents=True, exist_ok=True)
    name = path.name[:-5] if path.name.endswith(".part") else path.name
    target = qdir / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    os.replace(path, target)
    note = {"ref": plan.ref, "source": plan.source, "url": plan.to_dict()["url"], "problems": problems,
            "published_hashes": plan.published_hashes}
    target.with_name(target.name + ".json").write_text(json.dumps(note, indent=2), encoding="utf-8")
    return target


def _verify(fp: Any, plan: DownloadPlan, fetched: FetchedFile) -> list[str]:
    """Every published hash we can compare against what we computed; an empty list means all agree."""
    problems = []
    published = {k.lower(): v.lower() for k, v in plan.published_hashes.items() if v}
    ours = {
        "sha256": fp.sha256,
        "autov2": fp.sha256[:10],
        "autov3": fp.autov3,
        "blake3": fp.blake3,
        "crc32": fp.crc32,
    }
    # Civitai's CRC32 byte order is only known from its old scanner (sources.md §2): a CRC32 in
    # zlib's order is the same file, not a mismatch that should quarantine a good download.
    crc32_zlib = getattr(fp, "crc32_zlib", None)
    for name, value in published.items():
        mine = ours.get(name)
        if mine is None:
            continue
        if name == "crc32" and crc32_zlib and value == crc32_zlib.lower():
            continue
        if not mine.lower().startswith(value):
            problems.append(f"{name} is {mine[:len(value)]} but {plan.source} publishes {value}")
    expected_git = plan.extra.get("git_sha1")
    if expected_git and fetched.git_sha1 and fetched.git_sha1 != expected_git:
        problems.append(f"git blob id is {fetched.git_sha1} but the Hub publishes {expected_git}")
    if plan.size is not None and plan.extra.get("size_exact") and fp.size != plan.size:
        problems.append(f"size is {fp.size} bytes but {plan.source} publishes {plan.size}")
    return problems


class _NotIdentified:
    """Stands in for an Identification when the identification area is not installed at all."""

    def to_dict(self) -> None:
        return None


def _identify(path: Path) -> Any:
    """The Identification of ``path``; None lets ``register_file`` identify (and record why it failed)."""
    try:
        from ..identify import identify_path
        from ..plugins import registered_families
    except ImportError:
        return _NotIdentified()
    try:
        return identify_path(path, families=registered_families())
    except (SdhubError, OSError):
        return None


# -- install --------------------------------------------------------------------------------------


def install(
    hub: Hub,
    ref: str | Ref,
    *,
    dry_run: bool = False,
    force: bool = False,
    ctx: SourceContext | None = None,
    progress: Progress | None = None,
    connections: int | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> InstallResult:
    """Install one reference; raises :class:`SdhubError` subclasses with a clear message on failure."""
    started = time.monotonic()
    if isinstance(ref, str) and refs_mod.catalogue_id(ref) is not None:
        rec = hub.get(ref)  # "#99": there is no file #99 in the catalogue
        if force:
            raise BadReferenceError(f"{ref} is catalogued already ({rec.name}); to fetch it again, name its source "
                                    f"reference (`sdhub info {ref}` lists its sources)")
        return InstallResult(ref=f"#{rec.id}", status="already-installed", record=rec, path=rec.path,
                             family_mismatch=rec.family_mismatch, seconds=time.monotonic() - started)
    parsed = parse_ref(hub, ref)
    label = parsed.canonical()
    if not force:
        local = _local(hub, parsed)
        if local:
            rec = local[-1]
            return InstallResult(ref=label, status="already-installed", record=rec, path=rec.path,
                                 family_mismatch=rec.family_mismatch, seconds=time.monotonic() - started)
    ctx = build_context(hub, progress=progress, connections=connections, ctx=ctx)
    peer_notes: list[str] = []
    if hub.settings.peers and not dry_run:  # the studio's `sdhub serve` first (hub.sources.peers)
        from_peer, peer_notes = _install_from_peers(hub, parsed, ctx, on_wait=on_wait)
        if from_peer is not None:
            from_peer.warnings[:0] = peer_notes
            from_peer.seconds = time.monotonic() - started
            return from_peer
    source, plan = plan_for(hub, parsed, ctx)
    plan.warnings[:0] = peer_notes
    if dry_run:
        existing = _on_disk(hub.find_by_hash(plan.sha256)) if plan.sha256 else []
        result = InstallResult(ref=plan.ref, status="already-installed" if existing else "planned", plan=plan,
                               warnings=list(plan.warnings), seconds=time.monotonic() - started)
        if existing:
            result.record, result.path = existing[0], existing[0].path
            result.warnings.append(f"the same SHA-256 is already in the store: {existing[0].path}")
        return result
    result = install_plan(hub, source, plan, ctx, on_wait=on_wait)
    result.seconds = time.monotonic() - started
    return result


def _install_from_peers(hub: Hub, ref: Ref, ctx: SourceContext, *,
                        on_wait: Callable[[str], None] | None = None) -> tuple[InstallResult | None, list[str]]:
    """The install of ``ref`` from the first peer that delivers it verified; (None, why not) when none did."""
    from .peers import PeerSource, ask_peers

    notes: list[str] = []
    source = PeerSource()
    for plan in ask_peers(hub, ref, ctx, notes):
        try:
            return install_plan(hub, source, plan, ctx, on_wait=on_wait), notes
        except LocalWriteError:
            raise  # our disk: no other peer or source can help
        except (DownloadError, SourceError) as exc:  # a mismatch is quarantined inside install_plan
            notes.append(f"peer {plan.endpoint}: {exc}")
    return None, notes


def _reuse(hub: Hub, plan: DownloadPlan, records: list[FileRecord], note: str) -> InstallResult:
    rec = records[0]
    if not any(s.source == plan.source and str(s.version_id) == str(plan.source_info.version_id)
               and (s.model_id == plan.source_info.model_id) for s in rec.sources):
        rec = hub.attach_source(rec, plan.source_info)
    return InstallResult(ref=plan.ref, status="already-installed", record=rec, path=rec.path, plan=plan,
                         warnings=list(plan.warnings) + [note], family_mismatch=rec.family_mismatch)


def install_plan(
    hub: Hub,
    source: Source,
    plan: DownloadPlan,
    ctx: SourceContext,
    *,
    on_wait: Callable[[str], None] | None = None,
) -> InstallResult:
    """Download, verify, identify and register one planned file (the lock-protected part of install)."""
    store = Path(hub.settings.store).expanduser()
    incoming = store / INCOMING_DIR
    if plan.sha256:
        existing = _on_disk(hub.find_by_hash(plan.sha256))
        if existing:
            return _reuse(hub, plan, existing, "same SHA-256 already in the store: not downloaded again")
    lock_name = hashlib.sha256(plan.key.encode()).hexdigest()[:24] + ".install.lock"

    def waiting() -> None:
        if on_wait:
            on_wait(f"another sdhub process is installing {plan.filename}; waiting for it to finish")

    try:
        with file_lock(incoming / lock_name, on_wait=waiting):
            # The process we waited for may have installed exactly this file.
            if plan.sha256:
                existing = _on_disk(hub.find_by_hash(plan.sha256))
                if existing:
                    return _reuse(hub, plan, existing, "installed meanwhile by another sdhub process: reused")
            ref_for = source.ref_for(plan.source_info)
            if ref_for is not None:
                existing = _local(hub, ref_for)
                if existing:
                    return _reuse(hub, plan, existing, "installed meanwhile by another sdhub process: reused")
            fetched = source.fetch(ctx, plan, incoming)
            return _finish(hub, plan, fetched, incoming)
    except OSError as exc:
        if isinstance(exc, requests.RequestException):  # a plugin's own HTTP call, not our disk
            raise SourceError(f"{plan.ref}: {source.name}: {exc}") from None
        raise LocalWriteError(f"{plan.ref}: cannot write {exc.filename or incoming}: {exc.strerror or exc}") from None


def _finish(hub: Hub, plan: DownloadPlan, fetched: FetchedFile, incoming: Path) -> InstallResult:
    part = fetched.part_path
    if plan.sha256 and fetched.sha256 and fetched.sha256 != plan.sha256:
        problems = [f"sha256 is {fetched.sha256} but {plan.source} publishes {plan.sha256}"]
        qpath = _quarantine(hub, part, plan, problems)
        raise HashMismatchError(_mismatch_message(plan, problems, qpath))
    # Give the verified bytes their real name (identification looks at the extension too).
    ready = incoming / fetched.filename
    if part != ready:
        os.replace(part, ready)
    try:
        return _register(hub, plan, fetched, ready)
    except BaseException as exc:
        # Neither in the store nor quarantined (Ctrl-C while fingerprinting, a store folder that
        # cannot be created…): keep the bytes as a complete .part, so the next run reuses them
        # instead of leaving an orphan in .incoming and downloading everything again.
        if ready.exists():
            if part != ready:
                os.replace(ready, part)
            keep_resumable(part, plan.url, plan.sha256)
        if isinstance(exc, (OSError, FileAccessError)):  # register_file reports a failed move as FileAccessError
            raise FileAccessError(
                f"{plan.ref}: could not put {fetched.filename} into the store ({exc}); the download is kept"
                f" at {part} and the next `sdhub install` reuses it"
            ) from None
        raise


def _register(hub: Hub, plan: DownloadPlan, fetched: FetchedFile, ready: Path) -> InstallResult:
    """Fingerprint, verify, identify and register the complete download at ``ready``."""
    from ..files.fingerprint import fingerprint_file

    fp = fingerprint_file(ready)
    problems = _verify(fp, plan, fetched)
    if problems:
        qpath = _quarantine(hub, ready, plan, problems)
        raise HashMismatchError(_mismatch_message(plan, problems, qpath))
    existing = _on_disk(hub.find_by_hash(fp.sha256))
    if existing:
        ready.unlink()
        return _reuse(hub, plan, existing, "same SHA-256 already in the store: the new copy was discarded")
    ident = _identify(ready)
    ident_dict = ident.to_dict() if ident is not None else None
    wanted = store_path(hub, plan, ident_dict, fetched.filename)
    # Machines installing different files that want the same store path (two "model.safetensors" of one
    # kind and family) take turns choosing it, so neither moves its file over the other's.
    place_lock = hashlib.sha256(str(wanted).encode()).hexdigest()[:24] + ".place.lock"
    with file_lock(ready.parent / place_lock):
        target = _unique(wanted, fp.sha256)
        record = hub.register_file(target, source=plan.source_info, move_from=ready, fingerprints=fp,
                                   identification=ident)
    warnings = list(plan.warnings)
    placed = hub.after_install(record, plan)
    if record.family_mismatch:
        warnings.append(f"family mismatch: {record.family_mismatch}")
    if record.kind_mismatch and record.kind_mismatch not in "; ".join(warnings):
        warnings.append(f"kind mismatch: {record.kind_mismatch}")
    return InstallResult(
        ref=plan.ref,
        status="installed",
        record=record,
        path=record.path,
        plan=plan,
        served_by=fetched.served_by,
        resumed_from=fetched.resumed_from,
        connections=fetched.connections,
        warnings=warnings,
        family_mismatch=record.family_mismatch,
        kind_mismatch=record.kind_mismatch,
        placed=placed,
    )


def _mismatch_message(plan: DownloadPlan, problems: list[str], qpath: Path) -> str:
    return (
        f"{plan.ref} ({plan.filename}): the downloaded file does not match what {plan.source} publishes"
        f" ({'; '.join(problems)}). Nothing was registered; the file was quarantined at {qpath}"
    )


def install_many(hub: Hub, refs: Sequence[str], **kwargs: Any) -> list[InstallResult]:
    """Install several references; one failure does not stop the others (it is reported in its result)."""
    results = []
    for ref in refs:
        try:
            results.append(install(hub, ref, **kwargs))
        except SdhubError as exc:
            results.append(InstallResult(ref=ref, status="failed", error=str(exc), error_type=type(exc).__name__))
    return results


# -- resolve --------------------------------------------------------------------------------------


def resolve(
    hub: Hub,
    ref: str | Ref,
    *,
    download: bool = True,
    ctx: SourceContext | None = None,
    progress: Progress | None = None,
    connections: int | None = None,
) -> ResolvedModel:
    """A verified local file for ``ref``; no network at all when the catalogue already has it.

    Besides source references and hashes, anything ``Hub.get`` understands (a catalogue id such as
    ``#12``, a file name) resolves to the catalogued file.
    """
    try:
        parsed = parse_ref(hub, ref)
    except BadReferenceError as not_a_reference:
        try:
            record = hub.get(str(ref))
        except NotInCatalogueError:
            raise not_a_reference from None
        if not Path(record.path).exists():
            raise FileAccessError(f"{ref!r} is catalogued at {record.path}, which is no longer on disk "
                                  f"(`sdhub verify` lists such files)") from None
        return ResolvedModel(path=Path(record.path), record=record)
    local = _local(hub, parsed)
    if local:
        return ResolvedModel(path=Path(local[-1].path), record=local[-1])
    ctx = build_context(hub, progress=progress, connections=connections, ctx=ctx)
    if not download:
        _source, plan = plan_for(hub, parsed, ctx)
        return ResolvedModel(path=None, record=None, plan=plan)
    result = install(hub, parsed, ctx=ctx)
    if result.record is None or result.path is None:  # pragma: no cover - install raises instead
        raise DownloadError(f"{parsed.canonical()}: installed but not found in the catalogue")
    return ResolvedModel(path=Path(result.path), record=result.record, plan=result.plan,
                         installed_now=result.status == "installed")


# -- search ---------------------------------------------------------------------------------------


def search(
    hub: Hub,
    query: str,
    *,
    sources: Sequence[str] | None = None,
    types: Sequence[str] = (),
    base: Sequence[str] = (),
    sort: str | None = None,
    period: str | None = None,
    limit: int = 20,
    nsfw: bool = False,
    cursor: str | None = None,
    ctx: SourceContext | None = None,
) -> SearchReport:
    """One search across sources; a source that fails is reported, the others still answer."""
    ctx = build_context(hub, ctx=ctx)
    chosen = _ordered_sources(hub, [s for s in sources or [] if s.lower() != "all"] or None)
    q = SearchQuery(text=query, types=list(types), base=list(base), sort=sort, period=period, nsfw=nsfw,
                    limit=limit, cursor=cursor)
    report = SearchReport(results=[], asked=[source.name for source in chosen])
    budget = float(getattr(hub.settings, "source_timeout", 120))
    for source in chosen:
        try:
            page = call_within(budget, source.name, "search", lambda source=source: source.search(ctx, q))
            if not isinstance(page, SearchPage):  # a plugin's bug is its error, not sdhub's traceback
                raise TypeError(f"search returned {type(page).__name__}, not a SearchPage")
        except Exception as exc:  # one source (maybe a third-party plugin's) failing must not hide the others
            report.errors[source.name] = source_failure(source.name, "search", exc)
            continue
        report.results.extend(page.results)
        report.warnings.extend(f"{source.name}: {w}" for w in page.warnings)
        if page.next_cursor:
            report.next_cursors[source.name] = page.next_cursor
    return report


def source_failure(name: str, action: str, exc: BaseException) -> str:
    """A one-line reason for a source's failure; unexpected exceptions name the source as the culprit."""
    if isinstance(exc, SdhubError):
        return str(exc)
    if isinstance(exc, NotImplementedError):
        return f"source {name!r} does not support {action}"
    return f"source {name!r} failed in {action}: {type(exc).__name__}: {exc}"


# -- lookup ---------------------------------------------------------------------------------------


def lookup(
    hub: Hub,
    paths: Sequence[str | os.PathLike[str]],
    *,
    sources: Sequence[str] | None = None,
    ctx: SourceContext | None = None,
) -> list[LookupResult]:
    """Attach what sources know about local files, found by SHA-256 (batched: ≤100 per Civitai call)."""
    ctx = build_context(hub, ctx=ctx)
    results: list[LookupResult] = []
    by_sha: dict[str, list[tuple[LookupResult, FileRecord]]] = {}
    for path in _model_paths(hub, paths, results):
        try:
            record = hub.catalogue.by_path(str(path)) or hub.register_file(path, identification=_identify(path))
        except SdhubError as exc:
            results.append(LookupResult(str(path), None, error=str(exc)))
            continue
        res = LookupResult(str(path), record.sha256, record.id)
        results.append(res)
        if record.sha256:
            by_sha.setdefault(record.sha256, []).append((res, record))
    pending = list(by_sha)
    for source in _ordered_sources(hub, sources):
        if not pending:
            break
        asked = list(pending)
        try:
            # the budget grows with the work: one Civitai call answers up to 100 hashes
            budget = float(getattr(hub.settings, "source_timeout", 120)) * (1 + (len(asked) - 1) // 100)
            found = call_within(budget, source.name, "lookup",
                                lambda source=source, asked=asked: source.lookup_hashes(ctx, asked))
            if not isinstance(found, dict) or not all(isinstance(v, SourceInfo) for v in found.values()):
                raise TypeError(f"lookup_hashes returned {type(found).__name__}, not a dict of SourceInfo")
        except Exception as exc:  # as in search: report the source, ask the next one
            for sha in pending:
                for res, _rec in by_sha[sha]:
                    # every source that failed is named, not only the last one asked
                    failure = f"{source.name}: {source_failure(source.name, 'lookup', exc)}"
                    res.error = f"{res.error}; {failure}" if res.error else failure
            continue
        for sha, info in found.items():
            for res, rec in by_sha.get(sha, []):
                updated = hub.attach_source(rec, info)
                res.found.append(info)
                res.family_mismatch = updated.family_mismatch
                res.kind_mismatch = updated.kind_mismatch
        pending = [s for s in pending if s not in found]
    return results


def _model_paths(hub: Hub, paths: Sequence[str | os.PathLike[str]], results: list[LookupResult]) -> list[Path]:
    """Files and diffusers folders to look up: folders are walked like ``sdhub scan`` walks them."""
    found, skipped = hub.walk_model_paths(paths)
    for entry in skipped:
        results.append(LookupResult(entry.path, None, error=entry.message or entry.status))
    return found


lookup_files = lookup

"""Have / fetchable / unknown for each resource a file names, against the catalogue and the sources.

Hash look-ups go out once per distinct hash (full SHA-256s in Civitai's batch POST, short A1111
hashes one GET each) and are cached on the :class:`Resolver`, so a folder of 1,000 images that
share a checkpoint costs one request for it. A name alone is never resolved to a file: the closest
catalogue names are listed for the user to judge.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import BadReferenceError, RemoteNotFoundError, SdhubError
from .model import Resource, ResourceError, merge_resources
from .read import SUFFIXES, read_resources

if TYPE_CHECKING:
    from ..api import Hub
    from ..sources.protocol import DownloadPlan, Source, SourceContext


@dataclass
class ResourceStatus:
    """One resource and what sdhub can do about it."""

    resource: Resource
    state: str  # have | fetchable | unknown
    path: str | None = None  # have: the catalogued file
    install_ref: str | None = None  # fetchable: what `sdhub install` takes
    source: str | None = None
    closest: list[str] = field(default_factory=list)  # unknown: catalogue names that look alike
    note: str | None = None
    plan: DownloadPlan | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.resource.to_dict()
        out.update({"state": self.state, "path": self.path, "install_ref": self.install_ref, "source": self.source,
                    "closest": list(self.closest), "note": self.note, "count": len(self.resource.files)})
        return out


@dataclass
class ResourceReport:
    statuses: list[ResourceStatus]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    files_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"resources": [s.to_dict() for s in self.statuses], "files_read": self.files_read,
                "errors": [{"file": f, "error": e} for f, e in self.errors]}


def collect(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Resource], list[tuple[str, str]], int]:
    """Read every file (folders walked for images, .txt and .json); one error per bad file, the rest go on."""
    found: list[Resource] = []
    errors: list[tuple[str, str]] = []
    read = 0
    for path in _walk(paths, errors):
        try:
            found.extend(read_resources(path))
            read += 1
        except ResourceError as exc:
            errors.append((str(path), str(exc)))
    return merge_resources(found), errors, read


def _walk(paths: Sequence[str | os.PathLike[str]], errors: list[tuple[str, str]]) -> Iterable[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                        yield Path(root) / name
        elif path.exists():
            yield path
        else:
            errors.append((str(path), f"{path}: no such file or folder"))


class Resolver:
    """Classifies resources; holds the per-run hash cache and the source context."""

    def __init__(self, hub: Hub, ctx: SourceContext | None = None, *, offline: bool = False,
                 use_cache: bool = True) -> None:
        self.hub = hub
        self._ctx = ctx
        self.offline = offline
        self.hash_cache: dict[str, tuple[Source, DownloadPlan] | None] = {}
        self.hash_errors: dict[str, str] = {}
        self._names: list[tuple[str, str]] | None = None
        self._disk_cache: dict[str, Any] | None = None if use_cache else {}
        self.use_cache = use_cache
        self.remembered: dict[str, tuple[str | None, str | None]] = {}  # from the on-disk cache: (ref, source)

    @property
    def ctx(self) -> SourceContext:
        if self._ctx is None:
            from ..sources.install import build_context

            self._ctx = build_context(self.hub)
        return self._ctx

    # -- catalogue --
    def _catalogue_names(self) -> list[tuple[str, str]]:
        if self._names is None:
            self._names = [(rec.name, rec.path) for rec in self.hub.catalogue.list() if rec.path]
        return self._names

    def _have(self, res: Resource) -> str | None:
        from ..sources.install import find_local

        if res.hash:
            recs = [r for r in self.hub.find_by_hash(res.hash) if r.path and Path(r.path).exists()]
            if recs:
                return recs[0].path
        if res.ref and _known_ref(self.hub, res.ref):
            recs = find_local(self.hub, res.ref) or []
            if recs:
                return recs[-1].path
        if res.name and not res.hash and "." in res.name:  # an exact file name, as ComfyUI names files
            base = res.name.replace("\\", "/").rsplit("/", 1)[-1]
            for name, path in self._catalogue_names():
                if name == base and Path(path).exists():
                    return path
        return None

    def closest(self, res: Resource, n: int = 3) -> list[str]:
        if not res.name:
            return []
        stem = _stem(res.name)
        names = self._catalogue_names()
        stems = {_stem(name): path for name, path in names}
        return [stems[s] for s in difflib.get_close_matches(stem, list(stems), n=n, cutoff=0.6)]

    # -- sources --
    def prefetch(self, resources: Iterable[Resource]) -> None:
        """Look up every distinct, uncatalogued hash once: full SHA-256s batched, short ones one by one."""
        if self.offline:
            return
        todo = []
        for res in resources:
            if res.hash and res.hash not in self.hash_cache and not res.ref and self._have(res) is None:
                todo.append(res.hash)
        todo = [h for h in dict.fromkeys(todo) if not self._from_disk(h)]
        full = [h for h in todo if len(h) == 64]
        if full:
            self._batch(full)
        for h in todo:
            if h not in self.hash_cache:
                self._one(h)
        self._save(todo)

    # -- the on-disk cache: a rerun over the same images asks no source again --
    def _cache_file(self) -> Path:
        return Path(self.hub.settings.home) / "cache" / "resource-hashes.json"

    def _disk(self) -> dict[str, Any]:
        if self._disk_cache is None:
            try:
                data = json.loads(self._cache_file().read_text())
                self._disk_cache = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._disk_cache = {}
        return self._disk_cache

    def _from_disk(self, digest: str) -> bool:
        """A remembered answer still fresh (found: 30 days, not found: 1 day) counts as looked up."""
        if not self.use_cache:
            return False
        entry = self._disk().get(digest)
        if not isinstance(entry, dict) or not isinstance(entry.get("at"), (int, float)):
            return False
        ttl = 30 * 86400 if entry.get("ref") else 86400
        if time.time() - entry["at"] > ttl:
            return False
        self.remembered[digest] = (entry.get("ref"), entry.get("source"))
        return True

    def _save(self, looked_up: list[str]) -> None:
        disk = self._disk()
        now = time.time()
        for h in looked_up:
            if h in self.hash_errors and h not in self.hash_cache:
                continue
            hit = self.hash_cache.get(h)
            if h in self.hash_errors and hit is None:
                continue  # a failing source is not an answer: ask again next time
            disk[h] = {"ref": hit[1].ref if hit else None, "source": hit[0].name if hit else None, "at": now}
        if not looked_up or not self.use_cache:
            return
        path = self._cache_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(disk))
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs requests next time

    def _batch(self, hashes: list[str]) -> None:
        from ..sources.install import _ordered_sources, source_failure

        pending = list(hashes)
        for source in _ordered_sources(self.hub):
            if not pending:
                break
            try:
                found = source.lookup_hashes(self.ctx, pending)
            except Exception as exc:  # noqa: BLE001 - a failing source must not hide the others
                for h in pending:
                    self.hash_errors[h] = source_failure(source.name, "lookup", exc)
                continue
            for h, info in found.items():
                ref = source.ref_for(info)
                if ref is None:
                    continue
                try:
                    self.hash_cache[h] = (source, source.plan(self.ctx, ref))
                except SdhubError as exc:
                    self.hash_errors[h] = str(exc)
            pending = [h for h in pending if h not in self.hash_cache]
        # Batch answers only cover what the batch endpoints know; the rest go one by one below.

    def _one(self, digest: str) -> None:
        from ..sources.install import plan_for
        from ..sources.refs import Ref

        try:
            self.hash_cache[digest] = plan_for(self.hub, Ref("hash", hash_value=digest), self.ctx)
        except RemoteNotFoundError as exc:
            self.hash_cache[digest] = None
            if "errors:" in str(exc):
                self.hash_errors[digest] = str(exc)
        except SdhubError as exc:
            self.hash_cache[digest] = None
            self.hash_errors[digest] = str(exc)

    def classify(self, resources: Sequence[Resource]) -> list[ResourceStatus]:
        self.prefetch(resources)
        return [self.classify_one(res) for res in resources]

    def classify_one(self, res: Resource) -> ResourceStatus:
        path = self._have(res)
        if path:
            return ResourceStatus(res, "have", path=path)
        if res.ref:
            if _known_ref(self.hub, res.ref):
                return ResourceStatus(res, "fetchable", install_ref=res.ref, source=_scheme(self.hub, res.ref))
            if res.ref.startswith(("http://", "https://")):
                host = urlsplit(res.ref).hostname or "?"
                return ResourceStatus(res, "unknown", install_ref=res.ref, closest=self.closest(res),
                                      note=f"URL on a host sdhub does not know ({host}); "
                                           f"`sdhub install --from … --allow-host {host}` fetches it")
        if res.hash and not self.offline and res.hash in self.remembered and res.hash not in self.hash_cache:
            ref, source_name = self.remembered[res.hash]
            if ref:
                return ResourceStatus(res, "fetchable", install_ref=ref, source=source_name,
                                      note="found earlier (cached)")
            return ResourceStatus(res, "unknown", closest=self.closest(res),
                                  note="no source knew this hash (cached for a day)")
        if res.hash and not self.offline:
            hit = self.hash_cache.get(res.hash)
            if hit is None and res.hash not in self.hash_cache:
                self._one(res.hash)
                hit = self.hash_cache.get(res.hash)
            if hit is not None:
                source, plan = hit
                return ResourceStatus(res, "fetchable", install_ref=plan.ref, source=source.name, plan=plan)
            note = self.hash_errors.get(res.hash) or "no source knows this hash"
            return ResourceStatus(res, "unknown", closest=self.closest(res), note=note)
        return ResourceStatus(res, "unknown", closest=self.closest(res),
                              note="offline: hash not looked up" if res.hash else "named only, no hash or link")


def _stem(name: str) -> str:
    from .model import _stem as stem

    return stem(name)


def _scheme(hub: Hub, ref: str) -> str | None:
    from ..sources.install import parse_ref

    try:
        return parse_ref(hub, ref).scheme
    except BadReferenceError:
        return None


def _known_ref(hub: Hub, ref: str) -> bool:
    """An AIR, civitai:/hf:/liblib: reference, or a URL on a host of a known source or its mirror."""
    return _scheme(hub, ref) not in (None, "hash")


def resources(hub: Hub, paths: Sequence[str | os.PathLike[str]], *, ctx: SourceContext | None = None,
              offline: bool = False, use_cache: bool = True) -> ResourceReport:
    """What the images and workflows at ``paths`` use, most used first, each with its state.

    ``use_cache=False`` asks the sources afresh (``install --from`` does: it needs the exact file each hash names).
    """
    found, errors, read = collect(paths)
    found.sort(key=lambda r: -len(r.files))
    resolver = Resolver(hub, ctx, offline=offline, use_cache=use_cache)
    return ResourceReport(resolver.classify(found), errors, read)

"""What ``sdhub updates`` deals in: installed files, their update rows, and the on-disk answer cache.

Sources implement :meth:`hub.sources.protocol.Source.updates_for` with these values; the cache is
what keeps 500 installed files at one request per model (each model is asked once per run, and
every answer is kept on disk with its time) and what lets ``--offline`` answer with its age.
Nothing here talks to the network: sources hand :meth:`UpdateCache.answers` a fetch function.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..catalogue.records import SourceInfo
from ..errors import AccessDeniedError, AuthRequiredError, RemoteNotFoundError, SdhubError

__all__ = ["InstalledFile", "UpdateInfo", "UpdateCache", "Answer", "fetch_each", "age_text", "STATUSES"]

CACHE_NAME = "updates.json"
CACHE_FORMAT = 1
# What a row can say: the newest version is installed / a newer one exists / cannot tell / asking failed.
STATUSES = ("current", "update", "unknown", "error", "unsupported")


@dataclass
class InstalledFile:
    """One catalogued file and what it is at one source (all its links to that source, newest last)."""

    record_id: int
    path: str
    name: str
    sha256: str | None
    infos: list[SourceInfo]

    @property
    def info(self) -> SourceInfo:
        return self.infos[-1]


@dataclass
class UpdateInfo:
    """One row of ``sdhub updates``: the installed version against the newest one, and a ref installing it.

    ``newer`` lists every version newer than the installed one, newest first, each
    ``{"version", "name", "published_at", "early_access_until", "downloadable", "ref"}``: an
    early-access or not downloadable version is marked there, not hidden.
    """

    source: str
    record_id: int | None
    path: str
    model_id: str
    model_name: str | None = None
    installed_version: str | None = None
    installed_version_name: str | None = None
    newest_version: str | None = None
    newest_version_name: str | None = None
    ref: str | None = None
    published_at: str | None = None
    early_access_until: str | None = None
    downloadable: bool | None = None
    status: str = "unknown"
    newer: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None
    error: str | None = None
    checked_at: float | None = None  # when the source gave the answer used (epoch seconds)
    from_cache: bool = False

    @property
    def update_available(self) -> bool:
        return self.status == "update"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        data = asdict(self)
        data["update_available"] = self.update_available
        data["checked_at"] = _iso(self.checked_at)
        data["age_s"] = round((now or time.time()) - self.checked_at, 1) if self.checked_at else None
        return data


@dataclass
class Answer:
    """A source's answer about one model: fresh, from the cache (``from_cache``), or only an ``error``."""

    data: Any = None
    fetched_at: float | None = None
    from_cache: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


# Errors that are about the one model (gone, private), not about the source being down: no cache fallback.
_MODEL_ERRORS = (RemoteNotFoundError, AccessDeniedError, AuthRequiredError)


class UpdateCache:
    """Answers kept in ``<home>/cache/updates.json`` as ``{key: {"at": epoch, "data": …}}``.

    Online, every key is fetched once per run and stored; when fetching fails because the source is
    down, a cached answer is used and says how old it is. Offline, only the cache answers.
    """

    def __init__(self, path: Path, *, offline: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.offline = offline
        self.clock = clock
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    @classmethod
    def for_home(cls, home: str | os.PathLike[str], *, offline: bool = False) -> UpdateCache:
        return cls(Path(home) / "cache" / CACHE_NAME, offline=offline)

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raw = {}
            entries = raw.get("entries") if isinstance(raw, dict) and raw.get("format") == CACHE_FORMAT else None
            self._entries = {k: v for k, v in (entries or {}).items()
                             if isinstance(v, dict) and isinstance(v.get("at"), (int, float)) and "data" in v}
        return self._entries

    def get(self, key: str) -> tuple[Any, float] | None:
        entry = self._load().get(key)
        return (entry["data"], float(entry["at"])) if entry else None

    def put(self, key: str, data: Any) -> float:
        at = self.clock()
        self._load()[key] = {"at": at, "data": data}
        self._dirty = True
        return at

    def drop(self, key: str) -> None:
        if self._load().pop(key, None) is not None:
            self._dirty = True

    def save(self) -> None:
        """Write the cache atomically; a cache that cannot be written only costs requests next time."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"format": CACHE_FORMAT, "entries": self._load()}), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            pass

    def answers(
        self,
        keys: Mapping[str, str],
        fetch: Callable[[list[str]], tuple[Mapping[str, Any], Mapping[str, BaseException]]],
    ) -> dict[str, Answer]:
        """``{id: Answer}`` for ``keys`` (id → cache key); ``fetch(ids)`` returns (values, errors) by id.

        Offline nothing is fetched. Online everything is fetched (once: callers pass distinct ids);
        an id whose fetch failed for a reason other than the model itself falls back to the cache.
        """
        out: dict[str, Answer] = {}
        if self.offline:
            for mid, key in keys.items():
                hit = self.get(key)
                out[mid] = (Answer(hit[0], hit[1], from_cache=True) if hit else
                            Answer(error="not in the update cache yet (run `sdhub updates` online once)",
                                   from_cache=True))
            return out
        values, errors = fetch(list(keys)) if keys else ({}, {})
        for mid, key in keys.items():
            if mid in values and values[mid] is not None:
                out[mid] = Answer(values[mid], self.put(key, values[mid]))
                continue
            exc = errors.get(mid)
            message = str(exc) if exc is not None else "the source gave no answer"
            if isinstance(exc, _MODEL_ERRORS):
                self.drop(key)
                out[mid] = Answer(error=message)
                continue
            hit = self.get(key)
            out[mid] = Answer(hit[0], hit[1], from_cache=True, error=message) if hit else Answer(error=message)
        return out


def fetch_each(ids: Iterable[str], fetch_one: Callable[[str], Any]) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """Fetch ids one by one; once the source looks down (not a per-model 404/403), the rest are not asked.

    A source answering 503 to the first of fifty models would answer 503 to the others too: asking
    each (with back-off) would only make ``sdhub updates`` slow, so they share the first error.
    """
    values: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    down: BaseException | None = None
    for mid in ids:
        if down is not None:
            errors[mid] = down
            continue
        try:
            values[mid] = fetch_one(mid)
        except _MODEL_ERRORS as exc:
            errors[mid] = exc
        except SdhubError as exc:
            errors[mid] = exc
            down = exc
    return values, errors


def group_by_model(installed: Sequence[InstalledFile]) -> dict[str, list[InstalledFile]]:
    """Installed files by their model id at the source, in first-seen order."""
    groups: dict[str, list[InstalledFile]] = {}
    for item in installed:
        groups.setdefault(str(item.info.model_id), []).append(item)
    return groups


def error_row(item: InstalledFile, source: str, message: str, status: str = "error") -> UpdateInfo:
    info = item.info
    return UpdateInfo(source=source, record_id=item.record_id, path=item.path, model_id=str(info.model_id),
                      model_name=info.model_name, installed_version=info.version_id,
                      installed_version_name=info.version_name, status=status, error=message)


def age_text(seconds: float | None) -> str:
    """``3 min``, ``2 h 5 min``, ``4 days``: how old a cached answer is, for people."""
    if seconds is None:
        return "unknown age"
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} days"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

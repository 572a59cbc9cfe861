"""``sdhub updates`` and ``sdhub install --upgrade``: is a newer version of an installed file out there?

The catalogue says what is installed (each file's source links); each source answers for all of
its files at once (:meth:`hub.sources.protocol.Source.updates_for`), asking once per model, with
the answers kept on disk (:class:`hub.sources.updates.UpdateCache`) so ``--offline`` can answer.
A source that fails is reported and the others still answer. Upgrading installs the newest version
beside the old file: removing the old one stays the user's choice.

``Hub.updates`` and ``Hub.install(upgrade=True)`` delegate here (first argument: the Hub).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalogue.records import FileRecord, SourceInfo
from ..errors import AmbiguousReferenceError, BadReferenceError, NotInCatalogueError, SourceError
from .install import InstallResult, _local, build_context, install, parse_ref, source_failure
from .protocol import Source, SourceContext, get_sources
from .updates import InstalledFile, UpdateCache, UpdateInfo, age_text, error_row

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub

_COMMIT = 40


@dataclass
class UpdatesReport:
    """What ``sdhub updates --json`` prints: one row per installed file and source, and each failing source."""

    rows: list[UpdateInfo] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    asked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def updates(self) -> list[UpdateInfo]:
        return [r for r in self.rows if r.update_available]

    @property
    def all_failed(self) -> bool:
        """Every row is an error: nothing could be told (a down source and no cache, offline with no cache)."""
        return bool(self.rows) and all(r.status == "error" for r in self.rows)

    def cache_ages(self, now: float | None = None) -> dict[str, float]:
        """The oldest cached answer used, per source, in seconds."""
        now = now or time.time()
        ages: dict[str, float] = {}
        for r in self.rows:
            if r.from_cache and r.checked_at:
                ages[r.source] = max(ages.get(r.source, 0.0), now - r.checked_at)
        return ages

    def to_dict(self) -> dict[str, Any]:
        now = time.time()
        return {"updates": [r.to_dict(now) for r in self.rows], "errors": dict(self.errors),
                "offline": self.offline, "warnings": list(self.warnings),
                "cache_age_s": {k: round(v, 1) for k, v in self.cache_ages(now).items()}}


# -- which files ----------------------------------------------------------------------------------


def select_installed(hub: Hub, refs: Sequence[str] | None, warnings: list[str] | None = None) -> list[FileRecord]:
    """The catalogued files ``refs`` name (all files with a source when none): source refs name every file
    installed from that model/version, other refs (``#12``, a path, a hash, a name) what ``Hub.get`` finds.
    What a reference itself warns about (an AIR ecosystem sdhub does not know yet) goes to ``warnings``."""
    if not refs:
        return [r for r in hub.catalogue.list() if r.sources]
    chosen: dict[int, FileRecord] = {}
    for ref in refs:
        for record in _records_for(hub, ref, warnings if warnings is not None else []):
            chosen.setdefault(record.id, record)
    return list(chosen.values())


def _records_for(hub: Hub, ref: str, warnings: list[str]) -> list[FileRecord]:
    parsed = None
    bad: BadReferenceError | None = None
    try:
        parsed = parse_ref(hub, ref)
    except BadReferenceError as exc:
        bad = exc
    if parsed is not None:
        warnings.extend(w for w in parsed.warnings if w not in warnings)
    if parsed is not None and parsed.scheme != "hash":
        version = parsed.version_id
        if parsed.scheme == "hf" and not (version and len(version) == _COMMIT):
            version = None  # a branch name is not what the catalogue stores (it stores commits)
        found = hub.catalogue.by_source(parsed.scheme, parsed.model_id, version, parsed.file)
        if not found:
            raise NotInCatalogueError(f"nothing installed from {parsed.canonical()} (`sdhub list --source"
                                      f" {parsed.scheme}` shows what is)")
        return found
    found = hub._match(ref)
    if not found:
        if bad is not None and ":" in ref:
            raise bad  # a malformed source reference: say which part is wrong
        raise NotInCatalogueError(f"{ref!r} matches nothing in the catalogue (try `sdhub list`)")
    return found


def _installed_by_source(records: Sequence[FileRecord], sources: Sequence[Source]
                         ) -> tuple[dict[str, list[InstalledFile]], list[UpdateInfo]]:
    """Each source's installed files; rows for links to sources no plugin provides any more."""
    by_source: dict[str, list[InstalledFile]] = {}
    orphans: list[UpdateInfo] = []
    names = {s.name: s.name for s in sources}
    names.update({alias: s.name for s in sources for alias in s.aliases})
    for rec in records:
        infos: dict[str, list[SourceInfo]] = {}
        for info in rec.sources:
            infos.setdefault(names.get(info.source, info.source), []).append(info)
        for name, linked in infos.items():
            item = InstalledFile(record_id=rec.id, path=rec.path, name=rec.name, sha256=rec.sha256, infos=linked)
            if name in [s.name for s in sources]:
                by_source.setdefault(name, []).append(item)
            else:
                orphans.append(error_row(item, name, f"no registered source is called {name!r} (is its plugin"
                                         " installed?)", status="unsupported"))
    return by_source, orphans


# -- asking ---------------------------------------------------------------------------------------


def check_updates(
    hub: Hub,
    refs: Sequence[str] | None = None,
    *,
    offline: bool = False,
    ctx: SourceContext | None = None,
    cache: UpdateCache | None = None,
) -> UpdatesReport:
    """One row per installed file (and source): installed version, newest version, a ref installing it."""
    report = UpdatesReport(offline=offline)
    records = select_installed(hub, refs, report.warnings)
    sources = get_sources()
    by_source, orphans = _installed_by_source(records, sources)
    report.rows.extend(orphans)
    cache = cache or UpdateCache.for_home(hub.settings.home, offline=offline)
    ctx = build_context(hub, ctx=ctx)
    for source in sources:
        items = by_source.get(source.name)
        if not items:
            continue
        report.asked.append(source.name)
        try:
            rows = source.updates_for(ctx, items, cache)
            if not isinstance(rows, list) or not all(isinstance(r, UpdateInfo) for r in rows):
                raise TypeError(f"updates_for returned {type(rows).__name__}, not a list of UpdateInfo")
        except NotImplementedError:
            report.rows.extend(error_row(i, source.name, f"{source.name} cannot tell whether a newer version"
                                         " exists", status="unsupported") for i in items)
            continue
        except Exception as exc:  # noqa: BLE001 - one source (maybe a plugin's) failing must not hide the others
            message = source_failure(source.name, "updates", exc)
            report.errors[source.name] = message
            report.rows.extend(error_row(i, source.name, message) for i in items)
            continue
        report.rows.extend(rows)
        problems = list(dict.fromkeys(r.error for r in rows if r.error))
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            report.errors[source.name] = "; ".join(problems[:3]) + more
    cache.save()
    _note_installed_targets(hub, report.updates)
    report.rows.sort(key=lambda r: (r.record_id or 0, r.source))
    return report


def _installed_target(hub: Hub, ref: str | None) -> FileRecord | None:
    """The catalogued file ``ref`` installs, when it is already there (by source ids: no network)."""
    if not ref:
        return None
    try:
        found = _local(hub, parse_ref(hub, ref))
    except (BadReferenceError, NotInCatalogueError):
        return None
    return found[-1] if found else None


def _note_installed_targets(hub: Hub, rows: Sequence[UpdateInfo]) -> None:
    """A newer version installed beside the old file is still newer, but the row says where it is."""
    seen: dict[str, FileRecord | None] = {}
    for row in rows:
        target = _target(row)
        if target is None:
            continue
        if target not in seen:
            seen[target] = _installed_target(hub, target)
        there = seen[target]
        if there is not None and there.id != row.record_id:
            row.note = f"{target} is installed too: #{there.id} {there.path}"


# -- upgrading ------------------------------------------------------------------------------------


def _target(row: UpdateInfo) -> str | None:
    """The ref of the newest version that has files to download (early access included: install tries)."""
    for entry in row.newer:
        if entry.get("downloadable", True) and entry.get("ref"):
            return str(entry["ref"])
    return None


def upgrade(hub: Hub, ref: str, *, ctx: SourceContext | None = None, **install_kwargs: Any) -> InstallResult:
    """Install the newest version of what ``ref`` names, beside the installed one.

    ``ref`` names installed files (``#12``, a path, ``civitai:4201``); when nothing from that
    source reference is installed yet, it is simply installed. Up to date: status ``up-to-date``.
    """
    install_kwargs.pop("force", None)
    ctx = build_context(hub, ctx=ctx, progress=install_kwargs.pop("progress", None),
                        connections=install_kwargs.pop("connections", None))
    try:
        report = check_updates(hub, [ref], ctx=ctx)
    except NotInCatalogueError:
        parsed = None
        try:
            parsed = parse_ref(hub, ref)
        except (BadReferenceError, NotInCatalogueError):
            pass
        if parsed is None or parsed.scheme == "hash":
            raise
        result = install(hub, parsed, ctx=ctx, **install_kwargs)
        result.warnings.append(f"nothing from {parsed.canonical()} was installed before: installed it")
        return result
    wanted: dict[str, list[UpdateInfo]] = {}
    for row in report.updates:
        target = _target(row)
        if target is not None:
            wanted.setdefault(target, []).append(row)
    if not wanted:
        return _no_upgrade(ref, report)
    if len(wanted) > 1:
        listing = ", ".join(f"#{rows[0].record_id} → {target}" for target, rows in list(wanted.items())[:6])
        raise AmbiguousReferenceError(
            f"{ref!r} names {len(wanted)} installed files with newer versions ({listing}); upgrade one at a time,"
            f" e.g. `sdhub install --upgrade '#{next(iter(wanted.values()))[0].record_id}'`"
        )
    target, rows = next(iter(wanted.items()))
    there = _installed_target(hub, target)
    if there is not None:
        return InstallResult(ref=target, status="up-to-date", record=there, path=there.path)
    result = install(hub, target, force=True, ctx=ctx, **install_kwargs)
    result.upgraded_from = [r.path for r in rows if r.path and r.path != result.path]
    for row in rows:
        if row.newest_version and _target(row) != row.ref:
            result.warnings.append(f"the newest version ({row.newest_version_name or row.newest_version}) has no"
                                   " downloadable file: installed the newest one that has")
    return result


def _no_upgrade(ref: str, report: UpdatesReport) -> InstallResult:
    """Nothing to install: up to date, or say why no newer version can be installed."""
    rows = report.rows
    current = [r for r in rows if r.status == "current"]
    if rows and len(current) == len(rows):
        row = current[0]
        return InstallResult(ref=row.ref or ref, status="up-to-date", path=row.path, warnings=[
            f"the source did not answer now; its answer from {age_text(time.time() - row.checked_at)} ago says"
            f" this is the newest version" for row in current[:1] if row.from_cache and row.checked_at])
    stuck = [r for r in rows if r.update_available]
    if stuck:
        row = stuck[0]
        raise SourceError(f"{ref}: the newer versions of {row.model_name or row.model_id} have no downloadable files"
                          f" ({', '.join(str(e.get('name') or e.get('version')) for e in row.newer)})")
    reasons = list(dict.fromkeys(r.error or r.note or r.status for r in rows if r.status != "current"))
    raise SourceError(f"{ref}: cannot tell whether a newer version exists: {'; '.join(reasons[:3]) or 'no answer'}")


__all__ = ["UpdatesReport", "check_updates", "upgrade", "select_installed"]

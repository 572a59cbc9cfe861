"""``sdhub install --from``: install what an image or workflow needs, each file where its UI looks for it.

Store files are installed and verified exactly as ``sdhub install`` does; with ``into`` a UI, each
is then hard-linked (symlinked across file systems) into that UI's folder under the file name the
workflow uses. URLs are fetched only from the sources' hosts and their mirrors unless the user
allows a host; a hash the workflow gives must match before anything is downloaded and after.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..catalogue.records import SourceInfo
from ..errors import ConfigError, SdhubError
from ..sources.protocol import DownloadPlan, SearchPage, Source
from .classify import ResourceReport, ResourceStatus, resources
from .comfyui import MODEL_EXTENSIONS
from .model import A1111_FOLDERS, KIND_FOLDERS

if TYPE_CHECKING:
    from ..api import Hub
    from ..sources.refs import Ref
    from ..sources.protocol import SourceContext

UI_NAMES = ("comfyui", "a1111", "forge")


@dataclass
class FromResult:
    """One resource's outcome: installed / planned / have / unknown / failed, and where it was placed."""

    status: StatusView
    outcome: str
    store_path: str | None = None
    placed: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.status.to_dict()
        out.update({"outcome": self.outcome, "store_path": self.store_path, "placed": self.placed,
                    "message": self.message})
        return out


StatusView = ResourceStatus


@dataclass
class FromReport:
    results: list[FromResult]
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(r.outcome == "failed" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results],
                "errors": [{"file": f, "error": e} for f, e in self.errors]}


def parse_into(hub: Hub, into: str | None) -> tuple[str, Path] | None:
    """``comfyui=/path`` or ``comfyui`` with ``[ui] comfyui = "/path"`` in the config file."""
    if not into:
        return None
    name, sep, root = into.partition("=")
    name = name.strip().lower()
    if name not in UI_NAMES:
        raise ConfigError(f"--into {into!r}: unknown UI {name!r} (one of {', '.join(UI_NAMES)}, as NAME or NAME=PATH)")
    if not sep:
        from ..config import _read_config_file

        table = _read_config_file(Path(hub.settings.config_file)).get("ui") or {}
        root = table.get(name) if isinstance(table, dict) else None
        if not isinstance(root, str) or not root:
            raise ConfigError(f"--into {name}: where is {name}? Give --into {name}=/path/to/{name} or set "
                              f'[ui] {name} = "/path" in {hub.settings.config_file}')
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--into {name}: {path} is not a folder")
    return name, path


class _UrlSource(Source):
    """Plain URLs on a host the user allowed with ``--allow-host`` (never registered as a source)."""

    name = "url"

    def search(self, ctx: SourceContext, query: Any) -> SearchPage:  # pragma: no cover - never searched
        raise NotImplementedError

    def plan(self, ctx: SourceContext, ref: Ref) -> DownloadPlan:  # pragma: no cover - plans are built directly
        raise NotImplementedError


def _url_plan(url: str, name: str | None, sha256: str | None) -> DownloadPlan:
    filename = PurePosixPath(unquote(urlsplit(url).path)).name or (name or "download").rsplit("/", 1)[-1]
    info = SourceInfo(source="url", model_id=url, download_url=url, original_filename=filename)
    return DownloadPlan(source="url", ref=url, url=url, filename=filename, size=None, source_info=info,
                        sha256=sha256 if sha256 and len(sha256) == 64 else None)


def install_from(
    hub: Hub,
    paths: Sequence[str | os.PathLike[str]],
    *,
    into: str | None = None,
    dry_run: bool = False,
    allow_hosts: Sequence[str] = (),
    ctx: SourceContext | None = None,
) -> FromReport:
    """Install every fetchable missing resource the files name; report the rest (nothing executed)."""
    from ..sources.install import build_context, install_plan, parse_ref, plan_for

    ui = parse_into(hub, into)
    report: ResourceReport = resources(hub, paths, ctx=ctx, use_cache=False)
    ctx = ctx or build_context(hub)
    allowed = {h.lower() for h in allow_hosts}
    out = FromReport([], list(report.errors))
    for st in report.statuses:
        res = st.resource
        want = res.hash if res.hash and (len(res.hash) == 64 or res.hash_kind == "sha256") else None
        if st.state == "have":
            result = FromResult(st, "have", store_path=st.path)
        elif st.state == "unknown" and not _allowed(st.install_ref, allowed):
            out.results.append(FromResult(st, "unknown", message=_unknown_message(st)))
            continue
        else:
            try:
                if st.state == "unknown":  # a URL on a host the user allowed
                    source: Source = _UrlSource()
                    plan = _url_plan(st.install_ref or "", res.name, want)
                elif st.plan is not None:
                    source = next(s for s in _sources() if s.name == st.source) if st.source else _UrlSource()
                    plan = st.plan
                else:
                    source, plan = plan_for(hub, parse_ref(hub, st.install_ref or ""), ctx)
                if want and plan.sha256 and not plan.sha256.lower().startswith(want.lower()):
                    raise SdhubError(f"{res.name}: the file names SHA-256 {want} but {plan.ref} is "
                                     f"{plan.sha256}; not installed")
                if dry_run:
                    result = FromResult(st, "planned", message=f"{plan.ref} → {plan.filename}"
                                        + (f" ({plan.size} bytes)" if plan.size else ""))
                    result.store_path = None
                    result.placed = str(_target(ui, st, plan.filename)) if ui else None
                    out.results.append(result)
                    continue
                done = install_plan(hub, source, plan, ctx)
                got = done.record.sha256 if done.record else None
                if want and got and not got.startswith(want.lower()):
                    raise SdhubError(f"{res.name}: downloaded file is SHA-256 {got}, not the {want} the file names")
                result = FromResult(st, "installed" if done.status == "installed" else "have", store_path=done.path)
            except SdhubError as exc:
                out.results.append(FromResult(st, "failed", message=str(exc)))
                continue
        if ui and result.store_path:
            try:
                result.placed = _place(ui, st, Path(result.store_path), dry_run)
            except (SdhubError, OSError) as exc:
                result.outcome, result.message = "failed", f"{res.name}: cannot place it in {ui[0]}: {exc}"
        out.results.append(result)
    return out


def _allowed(url: str | None, allowed: set[str]) -> bool:
    if not url or not url.startswith(("http://", "https://")):
        return False
    parts = urlsplit(url)
    return (parts.hostname or "").lower() in allowed or parts.netloc.lower() in allowed


def _sources() -> list[Source]:
    from ..sources.protocol import get_sources

    return get_sources()


def _unknown_message(st: ResourceStatus) -> str:
    parts = [st.note or "not found"]
    if st.closest:
        parts.append("closest in the catalogue: " + ", ".join(st.closest))
    return "; ".join(parts)


def _target(ui: tuple[str, Path] | None, st: ResourceStatus, stored_name: str) -> Path:
    assert ui is not None
    name, root = ui
    res = st.resource
    wanted = res.name if res.name and res.name.lower().endswith(MODEL_EXTENSIONS) else stored_name
    parts = [p for p in wanted.replace("\\", "/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or wanted.startswith("/"):
        raise SdhubError(f"{wanted!r} is not a plain relative file name; not placed")
    if name == "comfyui":
        folder = res.folder or KIND_FOLDERS.get(res.kind) or ""
        fparts = [p for p in folder.split("/") if p]
        if not fparts or any(p in (".", "..") for p in fparts) or folder.startswith("/"):
            raise SdhubError(f"no ComfyUI folder for a {res.kind} ({folder!r})")
        return root.joinpath("models", *fparts, *parts)
    folder = A1111_FOLDERS.get(res.kind)
    if folder is None:
        raise SdhubError(f"{name} has no folder for a {res.kind}")
    return root.joinpath(*folder.split("/"), parts[-1])


def _place(ui: tuple[str, Path], st: ResourceStatus, stored: Path, dry_run: bool) -> str:
    target = _target(ui, st, stored.name)
    if target.exists() or target.is_symlink():
        if target.exists() and os.path.samefile(target, stored):
            return str(target)
        raise SdhubError(f"{target} already exists and is another file; left alone")
    if dry_run:
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(stored, target)
    except OSError:
        os.symlink(stored, target)
    return str(target)

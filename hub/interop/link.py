"""``sdhub link``: expose catalogued files in a UI's own folder layout, by symlink, hardlink or copy.

Every link sdhub makes is recorded in the catalogue (``links``), so a re-run changes nothing, ``--check``
can tell sdhub's links from a user's files, and ``--prune`` removes only what sdhub made. Each link is
made under a temporary name in its folder and renamed into place, so Ctrl-C never leaves a half-written
copy under a model's name; a re-run finishes the tree. Nothing outside the target folder is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LinkError
from .layouts import Layout, get_layout, looks_like, safe_part

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub
    from ..catalogue import FileRecord

MODES = ("symlink", "hardlink", "copy")
TMP_PREFIX = ".sdhub-tmp-"


@dataclass
class LinkEntry:
    path: str
    status: str  # linked | relinked | unchanged | adopted | skipped | pruned | kept | dangling | changed | missing | foreign | stale
    target: str | None = None
    file_id: int | None = None
    mode: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "target": self.target, "id": self.file_id,
                "mode": self.mode, "message": self.message}


@dataclass
class LinkReport:
    root: str
    layout: str
    mode: str
    dry_run: bool = False
    check: bool = False
    entries: list[LinkEntry] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
        return dict(sorted(out.items()))

    def modes_used(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            if e.mode and e.status in ("linked", "relinked", "unchanged", "adopted"):
                out[e.mode] = out.get(e.mode, 0) + 1
        return dict(sorted(out.items()))

    @property
    def drift(self) -> list[LinkEntry]:
        return [e for e in self.entries if e.status in ("dangling", "changed", "missing", "foreign", "stale")]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "layout": self.layout, "mode": self.mode, "modes_used": self.modes_used(),
                "fallbacks": self.fallbacks, "dry_run": self.dry_run, "check": self.check,
                "summary": self.summary(), "entries": [e.to_dict() for e in self.entries]}


def _inside(root: Path, path: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _dest_folder(layout: Layout, root: Path, rec: FileRecord, family_folders: bool) -> Path | None:
    rel = layout.folders.get(rec.kind or "")
    if rel is None:
        return None
    folder = root / rel
    if family_folders:
        folder = folder / safe_part(rec.family or "unknown")
    return folder


def _suffixed(name: str, rec: FileRecord, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    tag = (rec.sha256 or f"{rec.id:08d}")[:8]
    extra = tag if n == 1 else f"{tag}-{n}"
    return f"{stem}-{extra}.{ext}" if ext else f"{stem}-{extra}"


def _is_ours(link: dict[str, Any] | None, dest: Path, target: Path) -> str | None:
    """Why the thing at ``dest`` is a valid link to ``target`` (``None`` when it is not)."""
    try:
        if dest.is_symlink():
            return "symlink" if os.readlink(dest) == str(target) and target.exists() else None
        if not dest.is_file():
            return None
        st, tst = dest.stat(), target.stat()
    except OSError:
        return None
    if (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino):
        return "hardlink"
    if link is not None and link["mode"] == "copy" and st.st_size == tst.st_size and \
            (st.st_size, st.st_mtime_ns, st.st_ino) == (link["size"], link["mtime_ns"], link["inode"]):
        return "copy"
    return None


def _make(dest: Path, target: Path, order: list[str], report: LinkReport) -> str:
    """Create ``dest`` -> ``target`` with the first mode that works; returns the mode used."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A name of this run's own: another machine linking the same folder at once must not unlink or rename ours.
    tmp = dest.parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{dest.name}"
    errors: list[str] = []
    for mode in order:
        try:
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            if mode == "symlink":
                os.symlink(target, tmp)
            elif mode == "hardlink":
                os.link(target, tmp)
            else:
                shutil.copy2(target, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            errors.append(f"{mode}: {exc.strerror or exc}")
            try:
                if tmp.is_symlink() or tmp.exists():
                    tmp.unlink()
            except OSError:
                pass
            continue
        except BaseException:  # Ctrl-C: no half-made file left behind under either name
            try:
                if tmp.is_symlink() or tmp.exists():
                    tmp.unlink()
            except OSError:
                pass
            raise
        if errors:
            note = f"{'; '.join(errors)}; used {mode}"
            if note not in report.fallbacks:
                report.fallbacks.append(note)
        return mode
    raise LinkError(f"cannot create {dest}: " + "; ".join(errors))


def _record(pending: list[dict[str, Any]], dest: Path, rec: FileRecord, root: Path, layout: Layout,
            mode: str) -> None:
    st = dest.lstat() if mode == "symlink" else dest.stat()
    pending.append({"path": str(dest), "file_id": rec.id, "target": rec.path, "root": str(root),
                               "layout": layout.name, "mode": mode, "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns, "inode": st.st_ino})


def link_layout(hub: Hub, directory: str | os.PathLike[str], layout_name: str, *, mode: str = "symlink",
                family_folders: bool = False, check: bool = False, prune: bool = False, dry_run: bool = False,
                family: str | None = None, kind: str | None = None, force: bool = False,
                only_ids: set[int] | None = None) -> LinkReport:
    """Link the catalogue (filtered by ``family``/``kind``) into ``directory`` laid out as ``layout_name``."""
    try:
        layout = get_layout(layout_name)
    except ValueError as exc:
        raise LinkError(str(exc)) from None
    if mode not in MODES:
        raise LinkError(f"unknown link mode {mode!r}; expected one of {', '.join(MODES)}")
    root = Path(directory).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise LinkError(f"{root} is not a folder")
    if not (root.exists() and looks_like(layout, root)):
        if not force:
            raise LinkError(f"{root} does not look like {layout.expected}; check the path, or pass --force "
                            f"to create the {layout.title} layout there")
        if not dry_run and not check:
            root.mkdir(parents=True, exist_ok=True)
    root = root.resolve() if root.exists() else root
    order = list(MODES[MODES.index(mode):])
    report = LinkReport(str(root), layout.name, mode, dry_run=dry_run, check=check)
    recorded = {link["path"]: link for link in hub.catalogue.links(str(root))}

    # Links are recorded in batches: one interrupted before its batch was written is adopted by the next run.
    pending: list[dict[str, Any]] = []
    try:
        _plan_and_link(hub, root, layout, report, recorded, order, pending, family_folders=family_folders,
                       check=check, prune=prune, dry_run=dry_run, family=family, kind=kind, only_ids=only_ids)
    finally:
        hub.catalogue.record_links(pending)
    return report


def _plan_and_link(hub: Hub, root: Path, layout: Layout, report: LinkReport, recorded: dict[str, dict[str, Any]],
                   order: list[str], pending: list[dict[str, Any]], *, family_folders: bool, check: bool,
                   prune: bool, dry_run: bool, family: str | None, kind: str | None,
                   only_ids: set[int] | None) -> None:
    by_file: dict[int, list[str]] = {}
    for path, link in sorted(recorded.items()):
        if link["file_id"] is not None:
            by_file.setdefault(link["file_id"], []).append(path)
    planned: dict[str, int] = {}  # dest path -> file id
    wanted_ids: set[int] = set()
    records = hub.list(family=family, kind=kind) if only_ids is None else [
        r for r in (hub.catalogue.get(i) for i in sorted(only_ids)) if r is not None]
    for rec in sorted(records, key=lambda r: r.id):
        target = Path(rec.path)
        folder = _dest_folder(layout, root, rec, family_folders)
        if folder is None:
            report.entries.append(LinkEntry(rec.path, "skipped", rec.path, rec.id,
                                            message=f"{layout.title} has no folder for kind {rec.kind or 'unknown'}"))
            continue
        if _inside(root, target):
            report.entries.append(LinkEntry(rec.path, "skipped", rec.path, rec.id, message="already inside the folder"))
            wanted_ids.add(rec.id)
            continue
        if not target.is_file():
            report.entries.append(LinkEntry(rec.path, "skipped", rec.path, rec.id, message=(
                "a folder (diffusers), not linked" if target.is_dir() else "catalogued but no longer on disk")))
            continue
        wanted_ids.add(rec.id)
        name = safe_part(rec.name)
        dest, n = folder / name, 0
        # A name this file already has here stays its name (a freed plain name does not move it).
        kept = [p for p in by_file.get(rec.id, []) if Path(p).parent == folder and p not in planned]
        while not kept:
            key = str(dest)
            link = recorded.get(key)
            taken = key in planned or (
                (dest.is_symlink() or dest.exists())
                and not (link is not None and link["file_id"] == rec.id)
                and _is_ours(None, dest, target) is None)
            if link is not None and link["file_id"] != rec.id and key not in planned:
                taken = True  # sdhub's link for another file holds this name
            if not taken:
                break
            n += 1
            dest = folder / _suffixed(name, rec, n)
        if kept:
            dest = Path(kept[0])
        planned[str(dest)] = rec.id
        link = recorded.get(str(dest))
        present = dest.is_symlink() or dest.exists()
        valid = _is_ours(link, dest, target) if present else None
        if valid and link is not None and link["target"] == rec.path:
            report.entries.append(LinkEntry(str(dest), "unchanged", rec.path, rec.id, link["mode"]))
            continue
        if check:
            if link is None and valid is None:
                report.entries.append(LinkEntry(str(dest), "missing", rec.path, rec.id,
                                                message="catalogued but not linked yet"))
            elif valid is None:
                state = "dangling" if dest.is_symlink() and not dest.exists() else (
                    "missing" if not present else "changed")
                report.entries.append(LinkEntry(str(dest), state, rec.path, rec.id, link["mode"] if link else None,
                                                "sdhub's link no longer points at the catalogued file"))
            else:
                report.entries.append(LinkEntry(str(dest), "unchanged", rec.path, rec.id, valid,
                                                "not recorded yet; a run adopts it"))
            continue
        if valid is not None:  # made by an interrupted run, or by hand: it is right, so keep it and record it
            if not dry_run:
                _record(pending, dest, rec, root, layout, valid)
            report.entries.append(LinkEntry(str(dest), "adopted", rec.path, rec.id, valid))
            continue
        status = "relinked" if present else "linked"
        if dry_run:
            report.entries.append(LinkEntry(str(dest), status, rec.path, rec.id, order[0], "dry run"))
            continue
        used = _make(dest, target, order, report)
        _record(pending, dest, rec, root, layout, used)
        if len(pending) >= 1000:
            hub.catalogue.record_links(pending)
            pending.clear()
        report.entries.append(LinkEntry(str(dest), status, rec.path, rec.id, used))

    for path, link in recorded.items():
        if only_ids is not None:
            break  # linking a few new files: the rest of the tree is not this call's business
        if path in planned:
            continue
        dest = Path(path)
        filtered_out = link["file_id"] is not None and link["file_id"] not in wanted_ids and (family or kind)
        if filtered_out:
            rec = hub.catalogue.get(link["file_id"])
            if rec is not None and ((family and rec.family != family) or (kind and rec.kind != kind)):
                continue  # outside this run's filter: not this run's business
        present = dest.is_symlink() or dest.exists()
        target = Path(link["target"])
        still_ours = present and _is_ours(link, dest, target) is not None or (
            dest.is_symlink() and os.readlink(dest) == link["target"])
        if not present:
            if not check and not dry_run and prune:
                hub.catalogue.forget_link(path)
            report.entries.append(LinkEntry(path, "pruned" if prune and not check else "stale", link["target"],
                                            link["file_id"], link["mode"], "already gone"))
            continue
        if not prune or check:
            if dest.is_symlink() and not dest.exists():
                report.entries.append(LinkEntry(path, "dangling", link["target"], link["file_id"], link["mode"],
                                                "its file is gone (--prune removes the link)"))
            else:
                report.entries.append(LinkEntry(path, "stale", link["target"], link["file_id"], link["mode"],
                                                "sdhub made it for a file no longer catalogued here (--prune removes it)"))
            continue
        if not still_ours:
            report.entries.append(LinkEntry(path, "kept", link["target"], link["file_id"], link["mode"],
                                            "changed since sdhub made it: left alone"))
            if not dry_run:
                hub.catalogue.forget_link(path)
            continue
        if not dry_run:
            dest.unlink()
            hub.catalogue.forget_link(path)
        report.entries.append(LinkEntry(path, "pruned", link["target"], link["file_id"], link["mode"],
                                        "dry run" if dry_run else None))

    if check:
        ours = set(planned) | set(recorded)
        catalogued = {r.path for r in hub.list()}
        for rel in sorted(set(layout.folders.values())):
            folder = root / rel
            if not folder.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for fname in sorted(filenames):
                    p = os.path.join(dirpath, fname)
                    if fname.startswith(TMP_PREFIX):
                        report.entries.append(LinkEntry(p, "foreign", message="left by an interrupted link run"))
                    elif p not in ours and p not in catalogued and Path(fname).suffix.lower() in (
                            ".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf"):
                        report.entries.append(LinkEntry(p, "foreign", message="not made by sdhub, not catalogued"))

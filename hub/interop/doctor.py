"""``sdhub doctor``: what is wrong between the catalogue, the store and the links sdhub made.

Reports missing, moved and changed files, dangling or drifted links, orphaned ``.part`` downloads and
quarantined files, and duplicate contents (one SHA-256 under several paths, with the bytes they waste).
``fix`` does only what is safe, and says each step: re-points a link sdhub made at its file's new path,
removes links sdhub made whose file is gone, removes ``.part`` files untouched for a day and quarantined
files. It never deletes a catalogued file or a file sdhub did not make.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub

STALE_PART_SECONDS = 24 * 3600


@dataclass
class Finding:
    problem: str  # missing | moved | changed | dangling-link | drifted-link | orphan-part | quarantined | duplicate
    path: str
    detail: str
    id: int | None = None
    wasted_bytes: int = 0
    fixed: str | None = None  # the step taken by --fix

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.problem, "path": self.path, "detail": self.detail, "id": self.id,
                "wasted_bytes": self.wasted_bytes, "fixed": self.fixed}


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.problem] = out.get(f.problem, 0) + 1
        return dict(sorted(out.items()))

    @property
    def wasted_bytes(self) -> int:
        return sum(f.wasted_bytes for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "wasted_bytes": self.wasted_bytes,
                "findings": [f.to_dict() for f in self.findings]}


def doctor(hub: Hub, *, fix: bool = False) -> DoctorReport:
    report = DoctorReport()
    records = hub.list()
    by_sha: dict[str, list[Any]] = {}
    present: dict[int, os.stat_result] = {}
    for rec in records:
        try:
            st = os.stat(rec.path)
        except OSError:
            continue
        present[rec.id] = st
        if rec.sha256 and not os.path.isdir(rec.path):
            by_sha.setdefault(rec.sha256, []).append(rec)
    for rec in records:
        st = present.get(rec.id)
        if st is None:
            twins = [r.path for r in by_sha.get(rec.sha256 or "", []) if r.id != rec.id]
            if twins:
                report.findings.append(Finding("moved", rec.path, f"gone; the same content is catalogued at {twins[0]}",
                                               rec.id))
            else:
                report.findings.append(Finding("missing", rec.path, "catalogued but not on disk (sdhub scan the "
                                               "folder it went to, or sdhub rm it)", rec.id))
        elif not os.path.isdir(rec.path) and (st.st_size, st.st_mtime_ns) != (rec.size, rec.mtime_ns):
            report.findings.append(Finding("changed", rec.path, "size or mtime differ from the catalogue: sdhub scan "
                                           "it (or sdhub verify)", rec.id))
    for sha, recs in sorted(by_sha.items()):
        inodes = {(present[r.id].st_dev, present[r.id].st_ino) for r in recs}
        if len(inodes) > 1:
            size = recs[0].size
            report.findings.append(Finding(
                "duplicate", recs[0].path, f"same SHA-256 {sha[:12]}… at {len(inodes)} places: "
                + ", ".join(r.path for r in recs), recs[0].id, wasted_bytes=size * (len(inodes) - 1)))

    live = {r.id: r for r in records}
    for link in hub.catalogue.links():
        dest = Path(link["path"])
        rec = live.get(link["file_id"]) if link["file_id"] is not None else None
        is_link = dest.is_symlink()
        if not (is_link or dest.exists()):
            f = Finding("dangling-link", link["path"], "sdhub's link is gone", link["file_id"])
            if fix:
                hub.catalogue.forget_link(link["path"])
                f.fixed = "forgot the record"
            report.findings.append(f)
            continue
        if is_link and rec is not None and os.readlink(dest) != rec.path and os.path.exists(rec.path):
            f = Finding("drifted-link", link["path"], f"points at {os.readlink(dest)}; its file is now {rec.path}",
                        rec.id)
            if fix:
                tmp = dest.with_name(f".sdhub-tmp-{dest.name}")
                if tmp.is_symlink():
                    tmp.unlink()
                os.symlink(rec.path, tmp)
                os.replace(tmp, dest)
                st = dest.lstat()
                hub.catalogue.record_link({**link, "target": rec.path, "size": st.st_size,
                                           "mtime_ns": st.st_mtime_ns, "inode": st.st_ino})
                f.fixed = f"re-linked to {rec.path}"
            report.findings.append(f)
        elif is_link and not dest.exists():
            f = Finding("dangling-link", link["path"], f"points at {os.readlink(dest)}, which is gone", link["file_id"])
            if fix and os.readlink(dest) == link["target"] and (rec is None or not os.path.exists(rec.path)):
                dest.unlink()
                hub.catalogue.forget_link(link["path"])
                f.fixed = "removed the link sdhub made"
            report.findings.append(f)

    store = Path(hub.settings.store).expanduser()
    now = time.time()
    for sub, problem in ((".incoming", "orphan-part"), (".quarantine", "quarantined")):
        folder = store / sub
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if not p.is_file():
                continue
            try:
                st = p.stat()
            except OSError:
                continue
            if problem == "orphan-part":
                if not p.name.endswith(".part"):
                    continue
                age = now - st.st_mtime
                f = Finding(problem, str(p), f"unfinished download, untouched for {age / 3600:.1f} h "
                            "(sdhub install resumes it)", wasted_bytes=st.st_size)
                if fix and age > STALE_PART_SECONDS:
                    p.unlink()
                    f.fixed = "removed (untouched for over a day)"
            else:
                f = Finding(problem, str(p), "failed verification at install", wasted_bytes=st.st_size)
                if fix:
                    p.unlink()
                    f.fixed = "removed"
            report.findings.append(f)
    return report

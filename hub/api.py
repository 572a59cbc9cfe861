"""``Hub``: the Python API that the CLI merely calls.

It ties the pure modules (fingerprint, identify, refs) to the catalogue and the sources. Every
method returns plain values (``FileRecord``, small dataclasses) that ``to_dict()`` into the
documented ``--json`` shapes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat as stat_mod
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalogue import Catalogue, FileRecord, SourceInfo
from .catalogue.models import utcnow
from .config import Settings, load_settings
from .sources.refs import ACCEPTED_FORMS, catalogue_id  # ACCEPTED_FORMS: the CLI shows it in --help
from .sources.updates import age_text  # noqa: F401 - the CLI prints cache ages with it
from .errors import (
    AmbiguousReferenceError,
    FileAccessError,
    NotInCatalogueError,
    SdhubError,
)
from .limits import hash_budget

MODEL_SUFFIXES = frozenset({".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf"})
DIFFUSERS_MARKER = "model_index.json"
ProgressFactory = Callable[[str, int], Callable[[int], None]]
"""``progress(label, total_bytes)`` returns a callback taking byte increments."""


@dataclass
class ScanEntry:
    path: str
    status: str  # added | updated | moved | unchanged | missing | error | distrusted (a contradicting sidecar)
    record_id: int | None = None
    message: str | None = None
    family: str | None = None
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "id": self.record_id, "message": self.message,
                "family": self.family, "kind": self.kind}


@dataclass
class ScanReport:
    entries: list[ScanEntry] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for e in self.entries if e.status == status)

    @property
    def errors(self) -> list[ScanEntry]:
        return [e for e in self.entries if e.status == "error"]

    def summary(self) -> dict[str, int]:
        keys = ("added", "updated", "moved", "unchanged", "missing", "error", "distrusted")
        return {k: self.count(k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "files": [e.to_dict() for e in self.entries]}


@dataclass
class VerifyResult:
    record: FileRecord
    status: str  # ok | mismatch | missing | error
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.record.id, "path": self.record.path, "status": self.status,
                "problems": self.problems, "checked": self.checked}


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime_ns); for a diffusers folder, size and mtime cover its files."""
    st = path.stat()
    if not stat_mod.S_ISDIR(st.st_mode):
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
    total, newest = 0, st.st_mtime_ns
    for sub in sorted(path.rglob("*")):
        if sub.is_file():
            sst = sub.stat()
            total += sst.st_size
            newest = max(newest, sst.st_mtime_ns)
    return st.st_dev, st.st_ino, total, newest


def _file_format(path: Path) -> str:
    if path.is_dir():
        return "diffusers"
    suffix = path.suffix.lower()
    return {".safetensors": "safetensors", ".sft": "safetensors", ".ckpt": "ckpt", ".pt": "ckpt",
            ".pth": "ckpt", ".bin": "bin"}.get(suffix, "unknown")


class Hub:
    """A catalogue plus the settings around it. Use as a context manager or call :meth:`close`."""

    def __init__(self, home: str | os.PathLike[str] | None = None, db_url: str | None = None,
                 settings: Settings | None = None) -> None:
        if settings is None:
            env = dict(os.environ)
            if home is not None:
                env["SDHUB_HOME"] = str(home)
            if db_url is not None:
                env["SDHUB_DB_URL"] = db_url
            settings = load_settings(env)
        self.settings = settings
        self._catalogue: Catalogue | None = None
        self._opening = threading.Lock()

    @property
    def catalogue(self) -> Catalogue:
        # One Catalogue per Hub, opened (and upgraded) once even when a server's threads ask for it at the same moment.
        if self._catalogue is None:
            with self._opening:
                if self._catalogue is None:
                    self._catalogue = Catalogue(self.settings.db_url)
        return self._catalogue

    def close(self) -> None:
        if self._catalogue is not None:
            self._catalogue.close()
            self._catalogue = None

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scanning ----------------------------------------------------------------------------
    def walk_model_paths(self, paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[ScanEntry]]:
        """The model files and diffusers folders under ``paths``, and an entry for each path that could not be walked."""
        report = ScanReport()
        found = list(self.iter_model_paths(paths, report))
        return found, report.entries

    def iter_model_paths(self, paths: Iterable[str | os.PathLike[str]], report: ScanReport) -> Iterator[Path]:
        """Model files and diffusers folders under ``paths``; unreadable places become report errors."""
        for raw in paths:
            root = Path(raw).expanduser()
            if not root.exists():
                report.entries.append(ScanEntry(str(root), "error", message="no such file or folder"))
                continue
            root = root.resolve()
            special = _special_file_error(root)
            if special is not None:
                report.entries.append(ScanEntry(str(root), "error", message=special))
                continue
            if root.is_file():
                if root.suffix.lower() in MODEL_SUFFIXES:
                    yield root
                else:
                    report.entries.append(ScanEntry(str(root), "error", message=(
                        f"not a model file type (expected one of {', '.join(sorted(MODEL_SUFFIXES))})")))
                continue
            if (root / DIFFUSERS_MARKER).is_file():
                yield root
                continue

            def on_error(exc: OSError, root: Path = root) -> None:
                report.entries.append(ScanEntry(str(exc.filename or root), "error",
                                                message=f"cannot read folder: {exc.strerror or exc}"))

            for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
                here = Path(dirpath)
                dirnames.sort()
                keep = []
                for d in dirnames:
                    if d.startswith("."):
                        continue
                    if (here / d / DIFFUSERS_MARKER).is_file():
                        yield here / d
                    else:
                        keep.append(d)
                dirnames[:] = keep
                for name in sorted(filenames):
                    if Path(name).suffix.lower() in MODEL_SUFFIXES and not name.startswith("."):
                        special = _special_file_error(here / name)
                        if special is not None:
                            report.entries.append(ScanEntry(str(here / name), "error", message=special))
                            continue
                        yield here / name

    def scan(self, paths: Sequence[str | os.PathLike[str]], *, progress: ProgressFactory | None = None,
             lookup: bool = False, include_broken: bool = False) -> ScanReport:
        """Register every model file under ``paths``.

        Unchanged files (same device, inode, size and mtime) are not re-read; a file whose content is
        already catalogued at a path that no longer exists is recorded as moved, not duplicated. Each
        file is one transaction: an error leaves the catalogue as it was for that file.

        A file that cannot be identified (malformed, truncated, an unsafe or hostile pickle) is an
        ``error`` entry with the reason and is not catalogued, unless ``include_broken``: then it is
        catalogued with its reason as before (family and kind empty). Identifying and hashing each
        file run under a time budget (:mod:`hub.limits`): a file past it is an error, the scan goes on.
        """
        from .identify import IDENTIFY_VERSION as identify_version

        report = ScanReport()
        known = self.catalogue.stat_rows()
        seen: set[str] = set()
        roots = [str(Path(p).expanduser().resolve()) for p in paths]
        for path in self.iter_model_paths(paths, report):
            spath = str(path)
            seen.add(spath)
            try:
                key = _stat_key(path)
            except OSError as exc:
                report.entries.append(ScanEntry(spath, "error", message=f"vanished or unreadable: {exc.strerror or exc}"))
                continue
            row = known.get(spath)
            if row is not None and (row.device, row.inode, row.size, row.mtime_ns) == key and row.has_hashes:
                if row.identify_version != identify_version:
                    report.entries.append(self._reidentify(row.id, path, include_broken))
                elif row.identify_error and not include_broken:
                    report.entries.append(_broken_entry(spath, row.identify_error, row.id))
                else:
                    report.entries.append(ScanEntry(spath, "unchanged", row.id))
                continue
            report.entries.append(self._register_scanned(path, key, progress, include_broken))
        self._scan_sidecars(report)
        moved_ids = {e.record_id for e in report.entries if e.status == "moved"}
        for spath, row in known.items():
            if row.id in moved_ids:  # its old path is gone because it now lives at the new one
                continue
            if spath not in seen and any(spath == r or spath.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
                if not os.path.lexists(spath):
                    report.entries.append(ScanEntry(spath, "missing", row.id, "catalogued but no longer on disk"))
        if lookup:
            targets = [Path(e.path) for e in report.entries if e.status in ("added", "updated", "moved")]
            if targets:
                self.lookup(targets)
        return report

    def scan_hf_cache(self, cache_dir: str | os.PathLike[str] | None = None, *,
                      progress: ProgressFactory | None = None) -> ScanReport:
        """Register what the user's Hugging Face cache holds, in place, with repo, revision and path."""
        if cache_dir is None:
            env = os.environ
            cache_dir = env.get("HF_HUB_CACHE") or (Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME") else
                                                    Path.home() / ".cache" / "huggingface" / "hub")
        cache = Path(cache_dir).expanduser()
        if not cache.is_dir():
            raise FileAccessError(f"{cache}: no Hugging Face cache there (set HF_HUB_CACHE, or give the folder)")
        report = self.scan([cache], progress=progress)
        root = cache.resolve()
        for entry in report.entries:
            if entry.record_id is None or entry.status == "missing":
                continue
            try:
                parts = Path(entry.path).relative_to(root).parts
            except ValueError:
                continue
            # A diffusers repository is one record: its snapshot folder itself (parts end at the commit).
            whole_repo = len(parts) == 3 and Path(entry.path).is_dir()
            if (len(parts) < 4 and not whole_repo) or not parts[0].startswith("models--") or parts[1] != "snapshots":
                continue
            repo = parts[0][len("models--"):].replace("--", "/")
            rev, rel = parts[2], "/".join(parts[3:])
            def work(s: Any, record_id: int = entry.record_id, repo: str = repo, rev: str = rev, rel: str = rel) -> None:
                if self.catalogue.has_source_version(s, record_id, "hf", repo, rev):
                    return
                row = self.catalogue.row(s, record_id)
                self.catalogue.link_source(s, row, SourceInfo(
                    source="hf", model_id=repo, version_id=rev, file_id=rel or None, model_name=repo,
                    original_filename=Path(rel).name if rel else repo.rsplit("/", 1)[-1], creator=repo.split("/")[0],
                    extra={"revision": rev, "path": rel, "hf_cache": str(root)}))
                self.catalogue.reindex(s, row)

            self.catalogue.write(work)
        return report

    def _scan_sidecars(self, report: ScanReport) -> None:
        """Read what other tools keep beside each scanned file; a sidecar unchanged since last read is skipped."""
        from .interop.sidecars import contradiction, find_sidecars, read_sidecar

        cached: dict[int, dict[str, tuple[int, int]]] = {}
        for (fid, sc_path), stat_key in self.catalogue.sidecar_stats().items():
            cached.setdefault(fid, {})[sc_path] = stat_key
        listings: dict[Path, set[str]] = {}
        for entry in report.entries:
            if entry.record_id is None or entry.status not in ("added", "updated", "moved", "unchanged"):
                continue
            path = Path(entry.path)
            if path.is_dir():
                continue
            folder = path.parent
            if folder not in listings:
                try:
                    listings[folder] = set(os.listdir(folder))
                except OSError:
                    listings[folder] = set()
            found = []
            for fmt, sc_path in find_sidecars(path, listings[folder]):
                try:
                    st = sc_path.stat()
                except OSError:
                    continue
                found.append((fmt, sc_path, st.st_size, st.st_mtime_ns))
            old = cached.get(entry.record_id, {})
            now = {str(p): (size, mtime) for _, p, size, mtime in found}
            if entry.status == "unchanged" and old == now:
                continue  # nothing beside it changed: not one sidecar read

            def work(s: Any, record_id: int = entry.record_id, path: Path = path,
                     found: list[Any] = found) -> list[ScanEntry]:
                items, distrusted = [], []
                row = self.catalogue.row(s, record_id)
                ours = {"sha256": row.sha256, "autov3": row.autov3, "crc32": row.crc32, "blake3": row.blake3,
                        "autov2": row.sha256[:10] if row.sha256 else None}
                for fmt, sc_path, size, mtime in found:
                    problem = None
                    try:
                        data = read_sidecar(fmt, sc_path, path.name)
                    except (OSError, ValueError) as exc:
                        data, problem = {}, f"unreadable: {getattr(exc, 'strerror', None) or exc}"
                    if problem is None:
                        problem = contradiction(data.get("hashes") or {}, ours)
                        if problem:
                            problem = f"not trusted: {problem}"
                            distrusted.append(ScanEntry(str(sc_path), "distrusted", record_id,
                                                        f"sidecar of {path.name} {problem}"))
                    items.append({"path": str(sc_path), "format": fmt, "size": size, "mtime_ns": mtime,
                                  "data": data, "problem": problem})
                self.catalogue.set_sidecars(s, row, items)
                for item in items:
                    d = item["data"]
                    if item["problem"] or d.get("source") != "civitai" or not d.get("model_id"):
                        continue
                    if self.catalogue.has_source_version(s, row.id, "civitai", d["model_id"], d.get("version_id")):
                        continue
                    self.catalogue.link_source(s, row, SourceInfo(
                        source="civitai", model_id=d["model_id"], version_id=d.get("version_id"),
                        model_name=d.get("model_name"), version_name=d.get("version_name"),
                        model_type=d.get("model_type"), base_model=d.get("base_model"),
                        trained_words=list(d.get("trained_words") or []), tags=list(d.get("tags") or []),
                        nsfw=d.get("nsfw") if isinstance(d.get("nsfw"), bool) else None,
                        published_hashes=dict(d.get("hashes") or {}),
                        extra={"from_sidecar": item["path"]},
                    ))
                self.catalogue.reindex(s, row)
                return distrusted

            report.entries.extend(self.catalogue.write(work))  # another machine may read the same sidecars

    def _identify(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        from .identify import identify_path
        from .plugins import registered_families

        try:
            return identify_path(path, families=registered_families()).to_dict(), None
        except SdhubError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"cannot read {path}: {exc.strerror or exc}"

    def _fingerprint_values(self, path: Path, progress: ProgressFactory | None, total: int) -> dict[str, Any]:
        from .files.fingerprint import fingerprint_file

        if path.is_dir():
            return self._fingerprint_folder(path, progress)
        callback = progress(path.name, total) if progress else None
        fp = fingerprint_file(path, progress=callback, budget=hash_budget(path, total))
        return {"sha256": fp.sha256, "autov1": fp.autov1, "autov3": fp.autov3, "crc32": fp.crc32,
                "blake3": fp.blake3, "hash_error": fp.autov3_error if path.suffix.lower() in (".safetensors", ".sft")
                else None}

    def _fingerprint_folder(self, path: Path, progress: ProgressFactory | None) -> dict[str, Any]:
        """A diffusers folder's identity: hashes of a manifest of its weight files' hashes."""
        from .files.fingerprint import fingerprint_file

        import blake3 as _blake3

        lines_sha, lines_b3 = [], []
        for sub in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES):
            rel = sub.relative_to(path).as_posix()
            size = sub.stat().st_size
            callback = progress(rel, size) if progress else None
            fp = fingerprint_file(sub, progress=callback, budget=hash_budget(sub, size))
            lines_sha.append(f"{rel}\t{fp.sha256}\n")
            lines_b3.append(f"{rel}\t{fp.blake3}\n")
        return {"sha256": hashlib.sha256("".join(lines_sha).encode()).hexdigest(), "autov1": None, "autov3": None,
                "crc32": None, "blake3": _blake3.blake3("".join(lines_b3).encode()).hexdigest(), "hash_error": None}

    def _row_values(self, path: Path, key: tuple[int, int, int, int], hashes: dict[str, Any],
                    ident: dict[str, Any] | None, ident_err: str | None) -> dict[str, Any]:
        device, inode, size, mtime_ns = key
        return {
            "name": path.name, "format": _file_format(path), "size": size, "mtime_ns": mtime_ns,
            "device": device, "inode": inode, **hashes, "hashed_at": utcnow(),
            "family": (ident or {}).get("family"), "kind": (ident or {}).get("kind"),
            "variant": (ident or {}).get("variant"), "precision": (ident or {}).get("precision"),
            "identification": ident, "identify_error": ident_err,
            "identify_version": _identify_version(),
        }

    def _register_scanned(self, path: Path, key: tuple[int, int, int, int],
                          progress: ProgressFactory | None, include_broken: bool = False) -> ScanEntry:
        spath = str(path)
        # Identify first: it reads only the header, and a file that is not a model is not hashed at all.
        ident, ident_err = self._identify(path)
        if ident_err is not None and not include_broken:
            return _broken_entry(spath, ident_err)
        try:
            hashes = self._fingerprint_values(path, progress, key[2])
            if _stat_key(path) != key:
                return ScanEntry(spath, "error", message="the file changed while it was being scanned; scan it again")
        except SdhubError as exc:
            return ScanEntry(spath, "error", message=_without_path(str(exc), spath))
        except OSError as exc:
            return ScanEntry(spath, "error", message=f"vanished or unreadable: {exc.strerror or exc}")
        def work(s: Any) -> tuple[str, int]:
            existing = self.catalogue.by_path_row(s, spath)
            status = "updated" if existing is not None else "added"
            file_id = existing.id if existing is not None else None
            if existing is None:
                moved = self.catalogue.find_moved(s, hashes["sha256"], spath)
                if moved is not None:
                    file_id, status = moved.id, "moved"
            row = self.catalogue.upsert_file(s, path=spath, file_id=file_id,
                                             values=self._row_values(path, key, hashes, ident, ident_err))
            self.catalogue.reindex(s, row)
            return status, row.id

        status, rid = self.catalogue.write(work)  # another machine scanning the same folder may add it first
        message = "moved from elsewhere (same SHA256)" if status == "moved" else ident_err
        return ScanEntry(spath, status, rid, message, (ident or {}).get("family"), (ident or {}).get("kind"))

    def _reidentify(self, file_id: int, path: Path, include_broken: bool = False) -> ScanEntry:
        ident, ident_err = self._identify(path)
        def work(s: Any) -> None:
            row = self.catalogue.row(s, file_id)
            row.identification, row.identify_error = ident, ident_err
            row.identify_version = _identify_version()
            for k in ("family", "kind", "variant", "precision"):
                setattr(row, k, (ident or {}).get(k))
            self.catalogue.reindex(s, row)

        self.catalogue.write(work)
        if ident_err is not None and not include_broken:
            return _broken_entry(str(path), ident_err, file_id)
        return ScanEntry(str(path), "updated", file_id, ident_err, (ident or {}).get("family"), (ident or {}).get("kind"))

    # -- registering downloads ---------------------------------------------------------------
    def register_file(self, path: str | os.PathLike[str], *, source: SourceInfo | None = None,
                      move_from: str | os.PathLike[str] | None = None, fingerprints: Any = None,
                      identification: Any = None) -> FileRecord:
        """Register ``path`` (fingerprinted and identified) with its source, in one transaction.

        With ``move_from``, the finished download at that path is moved to ``path`` inside the
        transaction, just before commit: if the catalogue write fails the file stays where it was,
        and if the move fails nothing is registered.
        """
        final = _canonical_path(Path(path).expanduser())
        src = Path(move_from) if move_from is not None else final
        if not src.exists():
            raise FileAccessError(f"{src}: no such file")
        from .files.regular import check_not_special

        check_not_special(src)  # a FIFO would block fingerprinting forever
        if fingerprints is None:
            hashes = self._fingerprint_values(src, None, 0)
        else:
            hashes = {"sha256": fingerprints.sha256, "autov1": fingerprints.autov1, "autov3": fingerprints.autov3,
                      "crc32": fingerprints.crc32, "blake3": fingerprints.blake3, "hash_error": fingerprints.autov3_error}
        if identification is None:
            ident, ident_err = self._identify(src)
        else:
            ident, ident_err = identification.to_dict(), None
        mismatch = family_mismatch(ident, source)
        kind_flag = kind_mismatch(ident, source)
        try:
            key = _stat_key(src)
        except OSError as exc:
            raise FileAccessError(f"{src}: vanished or unreadable: {exc.strerror or exc}") from exc
        def work(s: Any) -> int:
            existing = self.catalogue.by_path_row(s, str(final))
            row = self.catalogue.upsert_file(
                s, path=str(final), file_id=existing.id if existing is not None else None,
                values={**self._row_values(final, key, hashes, ident, ident_err), "family_mismatch": mismatch,
                        "kind_mismatch": kind_flag},
            )
            if source is not None:
                self.catalogue.link_source(s, row, source)
            self.catalogue.reindex(s, row)
            if move_from is not None and src != final:  # last: a retried transaction has not moved anything yet
                try:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, final)
                except OSError as exc:  # the transaction rolls back: nothing registered, the file stays at src
                    raise FileAccessError(f"cannot move {src} to {final}: {exc.strerror or exc}") from exc
            return row.id

        file_id = self.catalogue.write(work)
        record = self.catalogue.get(file_id)
        assert record is not None
        from . import plugins

        plugins.fire("model_installed", record=record)
        return record

    def attach_source(self, record: FileRecord, source: SourceInfo) -> FileRecord:
        """Link an already catalogued file to what a source says about it (``sdhub lookup``)."""
        mismatch = family_mismatch(record.identification, source)
        kind_flag = kind_mismatch(record.identification, source)
        def work(s: Any) -> None:
            row = self.catalogue.row(s, record.id)
            self.catalogue.link_source(s, row, source)
            if mismatch:
                row.family_mismatch = mismatch
            if kind_flag:
                row.kind_mismatch = kind_flag
            self.catalogue.reindex(s, row)

        self.catalogue.write(work)  # machines installing the same file through other refs attach at once
        updated = self.catalogue.get(record.id)
        assert updated is not None
        return updated

    # -- reading -----------------------------------------------------------------------------
    def list(self, *, family: str | None = None, kind: str | None = None, source: str | None = None,
             text: str | None = None, limit: int | None = None) -> list[FileRecord]:
        return self.catalogue.list(family=family, kind=kind, source=source, text=text, limit=limit)

    def find_by_hash(self, digest: str) -> list[FileRecord]:
        return self.catalogue.by_hash(_strip_hash_prefix(digest))

    def get(self, ref: str) -> FileRecord:
        """A catalogued file by id, path, hash (≥ 8 hex, any of the six), source reference or name."""
        matches = self._match(ref)
        if not matches and catalogue_id(ref) is not None:
            raise NotInCatalogueError(f"there is no file #{catalogue_id(ref)} in the catalogue (`sdhub list` shows the ids)")
        if not matches:
            raise NotInCatalogueError(
                f"{ref!r} matches nothing in the catalogue (try `sdhub list`, or `sdhub scan` / `sdhub install` it first)"
            )
        if len(matches) > 1:
            names = ", ".join(f"#{m.id} {m.name}" for m in matches[:8])
            raise AmbiguousReferenceError(f"{ref!r} matches {len(matches)} files ({names}); use a longer hash or an id")
        return matches[0]

    def _match(self, ref: str) -> list[FileRecord]:
        ref = ref.strip()
        if not ref:
            raise NotInCatalogueError("empty reference")
        wanted = catalogue_id(ref)
        if wanted is None and ref.isascii() and ref.isdigit() and len(ref) < 8:
            wanted = int(ref)
        if wanted is not None:
            rec = self.catalogue.get(wanted) if wanted < 2**63 else None  # SQLite ids are 64-bit
            return [rec] if rec else []
        path = Path(ref).expanduser()
        if path.exists():
            rec = self.catalogue.by_path(str(path.resolve()))
            return [rec] if rec else []
        if os.sep in ref:  # a catalogued file that is no longer there can still be named by its path
            rec = self.catalogue.by_path(str(_canonical_path(path)))
            if rec is not None:
                return [rec]
        digest = _strip_hash_prefix(ref)
        if len(digest) >= 8 and all(c in "0123456789abcdefABCDEF" for c in digest):
            found = self.catalogue.by_hash(digest)
            if found or ":" in ref:
                return found
        if ":" in ref and not ref.lower().startswith(("sha256:", "blake3:", "autov")):
            local = self._match_source_ref(ref)
            if local is not None:
                return local
        return self.catalogue.by_name(ref) or self.catalogue.by_name(ref + ".safetensors")

    def _match_source_ref(self, ref: str) -> list[FileRecord] | None:
        try:
            from .sources.install import find_local
        except ImportError:
            return None
        return find_local(self, ref)

    def info(self, ref: str, *, with_hashes: bool = False) -> dict[str, Any]:
        """Everything known about a catalogued file, or a header-only look at any path (milliseconds)."""
        path = Path(ref).expanduser()
        record: FileRecord | None = None
        if path.exists():
            record = self.catalogue.by_path(str(path.resolve()))
        else:
            record = self.get(ref)
            path = Path(record.path)
        if record is not None and record.identification is not None:
            ident = dict(record.identification)
        elif record is not None and record.identify_error:
            ident = {"family": "unknown", "kind": "unknown", "variant": None, "format": record.format,
                     "identify_error": record.identify_error}
        else:
            if not path.exists():
                raise FileAccessError(f"{path}: catalogued but no longer on disk")
            from .identify import identify_path
            from .plugins import registered_families

            ident = identify_path(path, families=registered_families()).to_dict()
        data: dict[str, Any] = {**ident}
        data["path"] = str(path.resolve()) if path.exists() else str(path)
        data["size"] = record.size if record else _stat_key(path)[2]
        data["in_catalogue"] = record is not None
        data["id"] = record.id if record else None
        data["hashes"] = record.hashes() if record else None
        data["sources"] = record.to_dict()["sources"] if record else []
        data["family_mismatch"] = record.family_mismatch if record else None
        data["kind_mismatch"] = record.kind_mismatch if record else None
        data["verify_status"] = record.verify_status if record else None
        data["metadata"] = record.metadata if record else {}
        data["sidecars"] = [dict(sc) for sc in record.sidecars] if record else []
        if with_hashes and data["hashes"] is None:
            from .files.fingerprint import fingerprint_file

            if path.is_dir():
                v = self._fingerprint_folder(path, None)
                data["hashes"] = {k: v[k] for k in ("sha256", "autov1", "autov3", "crc32", "blake3")}
                data["hashes"]["autov2"] = v["sha256"][:10]
            else:
                fp = fingerprint_file(path)
                data["hashes"] = {k: v for k, v in fp.to_dict().items() if k not in ("size",)}
        return data

    # -- interop -----------------------------------------------------------------------------
    def link(self, directory: str | os.PathLike[str], layout: str, **kwargs: Any) -> Any:
        """Link catalogued files into a UI folder laid out as ``layout`` (see :mod:`hub.interop.link`)."""
        from .interop.link import link_layout

        return link_layout(self, directory, layout, **kwargs)

    def after_install(self, record: FileRecord, plan: Any = None, into: Sequence[str] = ()) -> list[str]:
        """Sidecars beside a new install and links into the ``[ui]`` folders (and ``into``); one line per step.

        A failure here is reported in the lines, never undoes the install.
        """
        from .interop.install_hooks import link_new_file, resolve_into, ui_folders, write_install_sidecars

        lines: list[str] = []
        try:
            for p in write_install_sidecars(self, record, plan, fetch_preview=_fetch_preview):
                lines.append(f"sidecar {p}")
        except (OSError, SdhubError) as exc:
            lines.append(f"sidecars not written: {exc}")
        try:
            uis = ui_folders(self)
            for item in into:
                name, root = resolve_into(self, item)
                uis[name] = root
            lines += link_new_file(self, record, uis)
        except (OSError, SdhubError) as exc:
            lines.append(f"not linked into the UI: {exc}")
        return lines

    def doctor(self, *, fix: bool = False) -> Any:
        """What is wrong between catalogue, store and sdhub's links; ``fix`` does only the safe repairs."""
        from .interop.doctor import doctor

        return doctor(self, fix=fix)

    def comfyui_extra_paths(self, file: str | os.PathLike[str], *, section: str = "sdhub",
                            dry_run: bool = False) -> dict[str, Any]:
        """Write (or update) sdhub's section of a ComfyUI ``extra_model_paths.yaml`` pointing at the store."""
        from .interop.comfy_yaml import store_folders, write_extra_paths

        store = Path(self.settings.store).expanduser().absolute()
        folders = store_folders(store, self.settings.store_layout, self.list())
        return write_extra_paths(file, section, store, folders, dry_run=dry_run)

    # -- changing ----------------------------------------------------------------------------
    def remove(self, ref: str, *, delete_file: bool = False) -> FileRecord:
        """Forget a file; with ``delete_file`` also delete it from disk (the row goes only if that worked)."""
        record = self.get(ref)
        with self.catalogue.transaction() as s:
            row = self.catalogue.row(s, record.id)
            s.delete(row)
            s.flush()
            if delete_file and os.path.lexists(record.path):
                try:
                    if os.path.isdir(record.path) and not os.path.islink(record.path):
                        shutil.rmtree(record.path)
                    else:
                        os.unlink(record.path)
                except OSError as exc:
                    raise FileAccessError(f"cannot delete {record.path}: {exc.strerror or exc}; catalogue left as it was") from exc
        from . import plugins

        plugins.fire("model_removed", record=record, deleted_file=delete_file)
        return record

    def verify(self, refs: Sequence[str] | None = None, *, progress: ProgressFactory | None = None) -> list[VerifyResult]:
        """Re-hash files (never from the cache) and compare with recorded and published hashes."""
        records = [self.get(r) for r in refs] if refs else self.catalogue.list()
        results = []
        for rec in records:
            result = self._verify_one(rec, progress)
            self.catalogue.set_verified(rec.id, result.status, "; ".join(result.problems) or None)
            results.append(result)
        return results

    def _verify_one(self, rec: FileRecord, progress: ProgressFactory | None) -> VerifyResult:
        path = Path(rec.path)
        if not path.exists():
            return VerifyResult(rec, "missing", [f"{rec.path} is no longer on disk"])
        try:
            now = self._fingerprint_values(path, progress, rec.size)
        except SdhubError as exc:
            return VerifyResult(rec, "error", [str(exc)])
        except OSError as exc:
            return VerifyResult(rec, "error", [f"cannot read {rec.path}: {exc.strerror or exc}"])
        problems, checked = [], []
        for name in ("sha256", "blake3", "autov3", "autov1", "crc32"):
            recorded = getattr(rec, name)
            if recorded:
                checked.append(f"recorded {name}")
                if now.get(name) != recorded:
                    problems.append(f"{name} is {now.get(name)} but was {recorded} when catalogued")
        for src in rec.sources:
            for name, published in src.published_hashes.items():
                ours = _our_hash_for(name, now)
                if ours is None or not published:
                    continue
                checked.append(f"{src.source} {name}")
                if not ours.lower().startswith(published.lower()) and not _crc_equal(name, ours, published):
                    problems.append(f"{name} {ours} does not match {src.source}'s published {published.upper()}")
        return VerifyResult(rec, "mismatch" if problems else "ok", problems, checked)

    # -- sources (hub/sources/install.py does the work) ------------------------------------------------
    def resolve(self, ref: str, *, download: bool = True, **kwargs: Any) -> Any:
        from .sources.install import resolve

        return resolve(self, ref, download=download, **kwargs)

    def install(self, ref: str, *, upgrade: bool = False, **kwargs: Any) -> Any:
        """Install ``ref``; ``upgrade``: the newest version of what ``ref`` names, beside the installed one."""
        if upgrade:
            from .sources.upgrades import upgrade as upgrade_installed

            return upgrade_installed(self, ref, **kwargs)
        from .sources.install import install

        return install(self, ref, **kwargs)

    def updates(self, refs: Sequence[str] | None = None, *, offline: bool = False, **kwargs: Any) -> Any:
        """For installed files (all, or those ``refs`` name): is a newer version out? One request per model;
        ``offline`` answers from the cache of earlier answers, each with its age (hub.sources.upgrades)."""
        from .sources.upgrades import check_updates

        return check_updates(self, refs, offline=offline, **kwargs)

    def search(self, query: str, **kwargs: Any) -> Any:
        from .sources.install import search

        return search(self, query, **kwargs)

    def lookup(self, paths: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Any:
        from .sources.install import lookup

        return lookup(self, paths, **kwargs)

    def resources(self, paths: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Any:
        """The models images/workflows at ``paths`` name: have / fetchable / unknown (hub.resources)."""
        from .resources.classify import resources

        return resources(self, paths, **kwargs)

    def install_from(self, paths: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Any:
        """Install the fetchable models images/workflows name, optionally into a UI's folders."""
        from .resources.fetch import install_from

        return install_from(self, paths, **kwargs)

    # -- the catalogue's schema ----------------------------------------------------------------
    def db_status(self) -> Any:
        """The catalogue's schema revision and what an upgrade would run (``sdhub db current``); changes nothing."""
        from .catalogue.migrate import database_status

        if self._catalogue is not None:  # already open, so already upgraded
            from .catalogue.migrate import status

            return status(self._catalogue.engine, self.settings.db_url)
        return database_status(self.settings.db_url)

    def db_upgrade(self) -> Any:
        """Run the pending migrations now (``sdhub db upgrade``); opening the catalogue does the same."""
        from .catalogue.migrate import upgrade_database

        return upgrade_database(self.settings.db_url)


def _special_file_error(path: Path) -> str | None:
    """"not a regular file (a FIFO ...)" for FIFOs, devices and sockets; None for files and folders."""
    from .files.regular import check_not_special

    try:
        check_not_special(path)
    except FileAccessError as exc:
        return str(exc).split(": ", 1)[-1] if str(exc).startswith(str(path)) else str(exc)
    return None


def _fetch_preview(url: str) -> bytes | None:
    import requests

    resp = requests.get(url, timeout=30)
    resp.raise_for_status()
    return resp.content if len(resp.content) < 32 * 1024 * 1024 else None


def _without_path(message: str, path: str) -> str:
    """An error message without the leading ``path: `` (a scan entry names its path already)."""
    return message[len(path) + 2:] if message.startswith(f"{path}: ") else message


def _broken_entry(path: str, reason: str, record_id: int | None = None) -> ScanEntry:
    """A file that cannot be identified: an error, not a model (``--include-broken`` catalogues it)."""
    message = f"not catalogued: {_without_path(reason, path)}"
    if record_id is not None:
        message += f" (an earlier scan catalogued it as #{record_id}: `sdhub rm '#{record_id}'` removes it)"
    return ScanEntry(path, "error", record_id, message)


def _canonical_path(path: Path) -> Path:
    """The spelling of a path the catalogue uses (as scan stores it), even before the file exists."""
    path = path.absolute()
    return path.parent.resolve() / path.name


def _identify_version() -> int:
    from .identify import IDENTIFY_VERSION

    return IDENTIFY_VERSION


def _strip_hash_prefix(value: str) -> str:
    v = value.strip()
    for prefix in ("sha256:", "blake3:", "autov1:", "autov2:", "autov3:", "crc32:"):
        if v.lower().startswith(prefix):
            return v[len(prefix):].lower()
    return v.lower()


def _our_hash_for(name: str, values: dict[str, Any]) -> str | None:
    name = name.lower()
    if name == "autov2":
        return values["sha256"][:10] if values.get("sha256") else None
    return values.get(name)


def _crc_equal(name: str, ours: str, published: str) -> bool:
    """Civitai publishes CRC32 little-endian; accept zlib's order too, so old records still verify."""
    if name.lower() != "crc32" or len(ours) != 8 or len(published) != 8:
        return False
    return bytes.fromhex(ours)[::-1].hex() == published.lower()


def family_mismatch(ident: dict[str, Any] | None, source: SourceInfo | None) -> str | None:
    """A message when the identified family disagrees with what the source claims; None when they agree."""
    if not ident or source is None or not source.claimed_family:
        return None
    found = ident.get("family")
    claimed = source.claimed_family
    said = f"{source.source} says base model {source.base_model or claimed!r} ({claimed})"
    if not found or found == claimed:
        return None
    if found == "unknown":
        # A VAE or text encoder often fits several families; it is a mismatch only if none is the claimed one.
        candidates = ident.get("candidates") or []
        if candidates and claimed not in candidates:
            return f"{said} but the file's header fits only {', '.join(candidates)}"
        return None
    return f"{said} but the file's header says {found}"


# Kinds identification can tell apart that sources also claim; a checkpoint may ship as its diffusion model only.
_COMPARABLE_KINDS = {"checkpoint": {"checkpoint", "diffusion_model"}, "diffusion_model": {"checkpoint", "diffusion_model"},
                     "lora": {"lora"}, "embedding": {"embedding"}, "vae": {"vae"}, "text_encoder": {"text_encoder"}}


def kind_mismatch(ident: dict[str, Any] | None, source: SourceInfo | None) -> str | None:
    """A message when the identified kind contradicts the source's claim (or the AIR used contradicted the
    source's own payload); None when nothing disagrees."""
    if source is None:
        return None
    problems = []
    claimed, found = source.claimed_kind, (ident or {}).get("kind")
    if claimed in _COMPARABLE_KINDS and found in _COMPARABLE_KINDS and found not in _COMPARABLE_KINDS[claimed]:
        said = f"{source.source} says {source.model_type or claimed!r} ({claimed})"
        problems.append(f"{said} but the file's header says {found}")
    air = source.extra.get("air_mismatch") if source.extra else None
    if air:
        problems.append(str(air))
    return "; ".join(problems) or None

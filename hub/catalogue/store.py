"""The Catalogue: opening the database and every query sdhub makes. The only module that speaks SQL.

SQLite gets WAL and foreign keys, and a writer waits up to 30 s for another process's lock
(``?timeout=`` in the URL changes that); any other SQLAlchemy URL (PostgreSQL for teams) goes through
the same portable queries. Each write is one transaction, so a failure (or Ctrl-C) never leaves a
half-registered file.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, delete, event, make_url, or_, select
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from ..errors import CatalogueError, NotInCatalogueError
from .models import (
    File,
    FileSource,
    Link,
    SchemaMeta,
    SearchTerm,
    Sidecar,
    SourceModel,
    SourceVersion,
    utcnow,
)
from .records import FileRecord, SourceInfo
from .search_terms import prefix_upper_bound, query_terms, terms_of

T = TypeVar("T")
# How often a unit of work that lost a race to another process is run again (each try sees more committed rows).
WRITE_ATTEMPTS = 8
HASH_COLUMNS = ("sha256", "autov3", "blake3", "autov1", "crc32")
# How long a SQLite writer waits for another process's transaction before "locked" (``?timeout=`` changes it).
DEFAULT_LOCK_TIMEOUT = 30.0


@dataclass
class StatRow:
    """What a re-scan needs to decide whether a file changed, without loading whole rows."""

    id: int
    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    has_hashes: bool
    identify_version: int | None
    identify_error: str | None = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except Exception:  # read-only media: WAL cannot be set; the catalogue still reads
        pass
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _is_creation_race(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc) or exc).lower()
    return "already exists" in text or "unique constraint" in text or "duplicate" in text or "locked" in text


def _lost_a_race(exc: BaseException) -> bool:
    """A unique violation, deadlock or lock timeout: another process got there first; trying again can pass."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if code in ("23505", "40001", "40P01", "55P03"):  # unique_violation, serialization, deadlock, lock_not_available
        return True
    text = str(getattr(exc, "orig", exc) or exc).lower()
    return "unique constraint" in text or "database is locked" in text or "busy" in text


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for other databases and in-memory ones)."""
    if not url.startswith("sqlite"):
        return None
    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is reported by create_engine
        return None
    return database if database and database != ":memory:" else None


def lock_timeout(url: str) -> float:
    """Seconds a SQLite writer waits for a lock: ``?timeout=`` in the URL, else DEFAULT_LOCK_TIMEOUT."""
    try:
        value = make_url(url).query.get("timeout")
        return float(value if isinstance(value, str) else value[0]) if value else DEFAULT_LOCK_TIMEOUT
    except Exception:  # noqa: BLE001 - a bad ?timeout= is refused by the driver with its own message
        return DEFAULT_LOCK_TIMEOUT


def _waited_out_a_lock(url: str, exc: BaseException, seconds: float) -> bool:
    """A SQLite lock error after the whole busy wait: another process holds the catalogue, not a quick race."""
    text = str(getattr(exc, "orig", exc) or exc).lower()
    return url.startswith("sqlite") and ("locked" in text or "busy" in text) and seconds >= min(lock_timeout(url), 1.0)


def _nearly_full(db_file: str | None) -> bool:
    """Whether the catalogue's disk has (almost) no room left: SQLite reports ENOSPC in the WAL as an I/O error."""
    if db_file is None:
        return False
    try:
        return shutil.disk_usage(Path(db_file).parent).free < 4 * 1024 * 1024
    except OSError:
        return False


def _describe_db_error(url: str, exc: BaseException) -> str:
    from .migrate import display_url

    db_file = _sqlite_file(url)
    timeout = lock_timeout(url)
    url = display_url(url)  # never a PostgreSQL password in a message
    where = db_file or url
    text = str(getattr(exc, "orig", exc) or exc)
    if "locked" in text or "busy" in text:
        waited = f" (waited {timeout:g} s)" if db_file else ""
        return f"the catalogue {where} is locked by another process{waited}; try again when it finishes"
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        recover = (f"move it aside (mv {db_file} {db_file}.broken) and run `sdhub scan` on your model folders to "
                   f"rebuild it, or salvage it with `sqlite3 {db_file} .recover`") if db_file else \
            "restore it from a backup or point SDHUB_DB_URL at another database"
        return f"the catalogue {where} is corrupt or not an sdhub database ({text}); sdhub left it as it is: {recover}"
    if "disk is full" in text or "disk full" in text or "disk I/O error" in text and _nearly_full(db_file):
        return (f"disk full: the catalogue {where} cannot grow ({text}); nothing was half-written: free some space, "
                f"then run the same command again")
    if "disk I/O error" in text:  # SQLite's word for a write the OS refused: a file-size limit, a failing drive
        return (f"the catalogue {where} could not be written ({text}: a full disk, a file-size limit or a failing "
                f"drive); nothing was half-written: free some space, then run the same command again")
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return f"cannot open the catalogue at {url}: {text} (check the path and permissions, or set SDHUB_DB_URL)"
    return f"catalogue error ({url}): {text}"


class Catalogue:
    """One database: schema checks on open, then queries that return plain records."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            db_path = url.split("///", 1)[1] if "///" in url else ""
            if db_path and db_path != ":memory:":
                try:
                    Path(db_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise CatalogueError(f"cannot create the folder for the catalogue {db_path}: {exc}") from exc
        connect_args: dict[str, Any] = {}
        if self.is_sqlite and "timeout=" not in url:
            connect_args["timeout"] = DEFAULT_LOCK_TIMEOUT
        try:
            self.engine: Engine = create_engine(url, future=True, connect_args=connect_args)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise CatalogueError(f"cannot use catalogue URL {url!r}: {exc}") from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._ensure_schema()

    # -- schema ------------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        for attempt in range(5):
            started = time.monotonic()
            try:
                self._check_or_create_schema()
                return
            except CatalogueError:
                raise
            except (SQLAlchemyError, OSError) as exc:
                # Upgrades run under a lock, but a writer that is not migrating (a long scan) can
                # still hold SQLite past the lock wait; once it has committed, trying again passes.
                # A lock held past the whole wait is reported now, not waited out five times.
                if attempt < 4 and _is_creation_race(exc) and not _waited_out_a_lock(
                        self.url, exc, time.monotonic() - started):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise CatalogueError(_describe_db_error(self.url, exc)) from exc

    def _check_or_create_schema(self) -> None:
        """Create a new catalogue or upgrade an old one in place (Alembic revisions, under a lock)."""
        from .migrate import upgrade

        upgrade(self.engine, self.url)

    def schema_version(self) -> int:
        with self.session() as s:
            row = s.get(SchemaMeta, "schema_version")
            return int(row.value) if row else 0

    # -- sessions ----------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session; database errors become one clear CatalogueError."""
        try:
            with self._sessions() as s:
                yield s
        except (OperationalError, DatabaseError) as exc:
            raise CatalogueError(_describe_db_error(self.url, exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed together or not at all."""
        try:
            with self._sessions.begin() as s:
                yield s
        except IntegrityError as exc:
            raise CatalogueError(f"catalogue refused a duplicate or inconsistent entry: {exc.orig}") from exc
        except (OperationalError, DatabaseError) as exc:
            raise CatalogueError(_describe_db_error(self.url, exc)) from exc

    def write(self, work: Callable[[Session], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
        """Run ``work(session)`` as one transaction, again from the start when it lost a race to another process.

        Several processes (machines) share a catalogue: two may insert the same path, model, version or
        search term at once. The loser's transaction fails on the unique constraint (or, on PostgreSQL,
        as a deadlock victim; on SQLite, past the lock wait) and is rolled back whole; run again, its
        lookups now find the winner's committed rows and it updates them instead. ``work`` must
        therefore be safe to repeat: read what it needs inside, and touch nothing outside the database
        before its last statement.
        """
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                with self._sessions.begin() as s:
                    return work(s)
            except (IntegrityError, OperationalError) as exc:
                # a SQLite lock that outlasted the whole busy wait is another process's long hold, not a race:
                # trying again would only wait that long again, eight times
                if attempt == attempts or not _lost_a_race(exc) or _waited_out_a_lock(
                        self.url, exc, time.monotonic() - started):
                    if isinstance(exc, IntegrityError):
                        raise CatalogueError(f"catalogue refused a duplicate or inconsistent entry: {exc.orig}") from exc
                    raise CatalogueError(_describe_db_error(self.url, exc)) from exc
            except DatabaseError as exc:
                raise CatalogueError(_describe_db_error(self.url, exc)) from exc
            time.sleep(random.uniform(0.005, 0.03) * attempt)  # let the winner finish; do not retry in lock-step
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.engine.dispose()

    # -- reading -----------------------------------------------------------------------------
    def stat_rows(self) -> dict[str, StatRow]:
        """Every file's stat key in one query, so a re-scan of unchanged files touches nothing else."""
        with self.session() as s:
            rows = s.execute(
                select(
                    File.id, File.path, File.size, File.mtime_ns, File.device, File.inode,
                    File.sha256, File.hash_error, File.identify_version, File.identify_error,
                )
            ).all()
        return {
            r.path: StatRow(
                r.id, r.path, r.size, r.mtime_ns, r.device, r.inode,
                r.sha256 is not None or r.hash_error is not None, r.identify_version, r.identify_error,
            )
            for r in rows
        }

    def _records(self, s: Session, stmt: Any) -> list[FileRecord]:
        files = s.scalars(
            stmt.options(selectinload(File.sources).selectinload(FileSource.version).selectinload(SourceVersion.model),
                         selectinload(File.sidecars))
        ).all()
        return [to_record(f) for f in files]

    def get(self, file_id: int) -> FileRecord | None:
        with self.session() as s:
            found = self._records(s, select(File).where(File.id == file_id))
        return found[0] if found else None

    def by_path(self, path: str) -> FileRecord | None:
        with self.session() as s:
            found = self._records(s, select(File).where(File.path == path))
        return found[0] if found else None

    def by_name(self, name: str) -> list[FileRecord]:
        with self.session() as s:
            return self._records(s, select(File).where(File.name == name).order_by(File.id))

    def by_hash(self, digest: str) -> list[FileRecord]:
        """Files whose SHA256, AutoV3, BLAKE3, AutoV1 or CRC32 equals ``digest`` or starts with it (≥ 8 hex)."""
        h = digest.strip().lower()
        conds = []
        for col_name in HASH_COLUMNS:
            col = getattr(File, col_name)
            width = {"sha256": 64, "autov3": 64, "blake3": 64, "autov1": 8, "crc32": 8}[col_name]
            if len(h) == width:
                conds.append(col == h)
            elif len(h) < width:
                conds.append((col >= h) & (col < prefix_upper_bound(h)))
        if len(h) == 8 and all(c in "0123456789abcdef" for c in h):
            # CRC32 as zlib / most tools print it: the byte-swapped form of Civitai's, which we store.
            conds.append(File.crc32 == bytes.fromhex(h)[::-1].hex())
        if not conds:
            return []
        with self.session() as s:
            return self._records(s, select(File).where(or_(*conds)).order_by(File.id))

    def by_sha256s(self, digests: Sequence[str]) -> list[FileRecord]:
        """The files with any of these full SHA256s, in one query (a page of cards, not one query per card)."""
        wanted = sorted({d.strip().lower() for d in digests})
        if not wanted:
            return []
        with self.session() as s:
            return self._records(s, select(File).where(File.sha256.in_(wanted)).order_by(File.id))

    def by_source(self, source: str, model_id: str | None = None, version_id: str | None = None,
                  file_id: str | None = None) -> list[FileRecord]:
        ids = (
            select(FileSource.file_id)
            .join(SourceVersion, SourceVersion.id == FileSource.version_id)
            .join(SourceModel, SourceModel.id == SourceVersion.model_id)
            .where(SourceModel.source == source)
        )
        if model_id is not None:
            ids = ids.where(SourceModel.source_model_id == str(model_id))
        if version_id is not None:
            ids = ids.where(SourceVersion.source_version_id == str(version_id))
        if file_id is not None:
            ids = ids.where(or_(FileSource.source_file_id == str(file_id), FileSource.original_filename == str(file_id)))
        # IN, not JOIN + DISTINCT: PostgreSQL cannot compare json columns, so SELECT DISTINCT files.* fails there.
        with self.session() as s:
            return self._records(s, select(File).where(File.id.in_(ids)).order_by(File.id))

    def list(self, *, family: str | None = None, kind: str | None = None, source: str | None = None,
             text: str | None = None, limit: int | None = None, offset: int = 0) -> list[FileRecord]:
        stmt = select(File)
        if family:
            stmt = stmt.where(File.family == family)
        if kind:
            stmt = stmt.where(File.kind == kind)
        if source:
            stmt = stmt.where(
                File.id.in_(
                    select(FileSource.file_id)
                    .join(SourceVersion, SourceVersion.id == FileSource.version_id)
                    .join(SourceModel, SourceModel.id == SourceVersion.model_id)
                    .where(SourceModel.source == source)
                )
            )
        if text:
            words = query_terms(text)
            for word in words:
                stmt = stmt.where(
                    File.id.in_(
                        select(SearchTerm.file_id).where(
                            SearchTerm.term >= word, SearchTerm.term < prefix_upper_bound(word)
                        )
                    )
                )
        stmt = stmt.order_by(File.name, File.id).offset(offset)
        if limit:
            stmt = stmt.limit(limit)
        with self.session() as s:
            return self._records(s, stmt)

    def count(self) -> int:
        from sqlalchemy import func

        with self.session() as s:
            return int(s.scalar(select(func.count(File.id))) or 0)

    # -- writing -----------------------------------------------------------------------------
    def row(self, s: Session, file_id: int) -> File:
        """The ORM row of a file inside the caller's transaction."""
        found = s.get(File, file_id)
        if found is None:
            raise NotInCatalogueError(f"file #{file_id} is no longer in the catalogue")
        return found

    def by_path_row(self, s: Session, path: str) -> File | None:
        return s.scalar(select(File).where(File.path == path))

    def upsert_file(self, s: Session, *, path: str, values: dict[str, Any], file_id: int | None = None) -> File:
        """Insert or update a file row inside the caller's transaction."""
        row = s.get(File, file_id) if file_id is not None else s.scalar(select(File).where(File.path == path))
        if row is None:
            row = File(path=path, **values)
            s.add(row)
        else:
            row.path = path
            for key, value in values.items():
                setattr(row, key, value)
        s.flush()
        return row

    def find_moved(self, s: Session, sha256: str, exclude_path: str) -> File | None:
        """A catalogued file with this content whose path no longer exists: the same file, moved."""
        for row in s.scalars(select(File).where(File.sha256 == sha256, File.path != exclude_path)):
            if not os.path.lexists(row.path):
                return row
        return None

    def link_source(self, s: Session, file_row: File, info: SourceInfo) -> FileSource:
        """Record that ``file_row`` is ``info`` at its source (model → version → file link), idempotently."""
        model = s.scalar(
            select(SourceModel).where(SourceModel.source == info.source, SourceModel.source_model_id == str(info.model_id))
        )
        if model is None:
            model = SourceModel(source=info.source, source_model_id=str(info.model_id))
            s.add(model)
        for attr, value in (("name", info.model_name), ("type", info.model_type), ("creator", info.creator),
                            ("description", info.description), ("page_url", info.page_url), ("nsfw", info.nsfw),
                            ("license", info.license), ("tags", info.tags or None)):
            if value is not None:
                setattr(model, attr, value)
        s.flush()
        version_key = str(info.version_id) if info.version_id is not None else ""
        version = s.scalar(
            select(SourceVersion).where(SourceVersion.model_id == model.id, SourceVersion.source_version_id == version_key)
        )
        if version is None:
            version = SourceVersion(model_id=model.id, source_version_id=version_key)
            s.add(version)
        for attr, value in (("name", info.version_name), ("base_model", info.base_model),
                            ("trained_words", info.trained_words or None)):
            if value is not None:
                setattr(version, attr, value)
        s.flush()
        link = s.scalar(select(FileSource).where(FileSource.file_id == file_row.id, FileSource.version_id == version.id))
        if link is None:
            link = FileSource(file_id=file_row.id, version_id=version.id)
            s.add(link)
        link.source_file_id = info.file_id
        link.original_filename = info.original_filename
        link.download_url = info.download_url
        link.published_hashes = {k.lower(): v.lower() for k, v in info.published_hashes.items() if v} or None
        link.claimed_family = info.claimed_family
        extra = {**info.extra, **({"claimed_kind": info.claimed_kind} if info.claimed_kind else {})}
        link.extra = extra or None  # per file: a version's files differ (format, fp16/fp32, size…)
        s.flush()
        return link

    def reindex(self, s: Session, file_row: File) -> None:
        """Rebuild the search terms of one file from its name, path stem, sources, tags and trigger words."""
        s.execute(delete(SearchTerm).where(SearchTerm.file_id == file_row.id))
        texts: list[str | None] = [file_row.name, Path(file_row.path).stem, file_row.family, file_row.kind]
        for link in s.scalars(select(FileSource).where(FileSource.file_id == file_row.id)):
            version = s.get(SourceVersion, link.version_id)
            if version is None:
                continue
            model = s.get(SourceModel, version.model_id)
            texts += [version.name, version.base_model, link.original_filename]
            texts += list(version.trained_words or [])
            if model is not None:
                texts += [model.name, model.creator, model.type]
                texts += list(model.tags or [])
        for sc in s.scalars(select(Sidecar).where(Sidecar.file_id == file_row.id, Sidecar.problem.is_(None))):
            d = sc.data or {}
            texts += [d.get("model_name"), d.get("version_name"), d.get("base_model")]
            texts += list(d.get("trained_words") or []) + list(d.get("tags") or [])
        for term in sorted(terms_of(texts)):
            s.add(SearchTerm(term=term, file_id=file_row.id))
        s.flush()

    # -- sidecars ----------------------------------------------------------------------------
    def sidecar_stats(self) -> dict[tuple[int, str], tuple[int, int]]:
        """``(file_id, sidecar path) -> (size, mtime_ns)`` in one query: an unchanged sidecar is not read again."""
        with self.session() as s:
            rows = s.execute(select(Sidecar.file_id, Sidecar.path, Sidecar.size, Sidecar.mtime_ns)).all()
        return {(r.file_id, r.path): (r.size, r.mtime_ns) for r in rows}

    def set_sidecars(self, s: Session, file_row: File, found: Sequence[dict[str, Any]]) -> None:
        """Make the file's sidecar rows exactly ``found`` (``path, format, size, mtime_ns, data, problem``)."""
        by_path = {sc.path: sc for sc in s.scalars(select(Sidecar).where(Sidecar.file_id == file_row.id))}
        keep = set()
        for item in found:
            keep.add(item["path"])
            row = by_path.get(item["path"])
            if row is None:
                row = Sidecar(file_id=file_row.id, path=item["path"])
                s.add(row)
            row.format, row.size, row.mtime_ns = item["format"], item["size"], item["mtime_ns"]
            row.data, row.problem, row.read_at = item.get("data"), item.get("problem"), utcnow()
        for path, row in by_path.items():
            if path not in keep:
                s.delete(row)
        s.flush()

    def has_source_version(self, s: Session, file_id: int, source: str, model_id: str, version_id: str | None) -> bool:
        stmt = (select(FileSource.id).join(SourceVersion, SourceVersion.id == FileSource.version_id)
                .join(SourceModel, SourceModel.id == SourceVersion.model_id)
                .where(FileSource.file_id == file_id, SourceModel.source == source,
                       SourceModel.source_model_id == model_id))
        if version_id is not None:
            stmt = stmt.where(SourceVersion.source_version_id == version_id)
        return s.scalar(stmt.limit(1)) is not None

    # -- links made by sdhub -------------------------------------------------------------------
    def links(self, root: str | None = None) -> list[dict[str, Any]]:
        with self.session() as s:
            stmt = select(Link)
            if root is not None:
                stmt = stmt.where(Link.root == root)
            return [_link_dict(r) for r in s.scalars(stmt.order_by(Link.path))]

    def record_link(self, values: dict[str, Any]) -> None:
        self.record_links([values])

    def record_links(self, many: Sequence[dict[str, Any]]) -> None:
        """Record (or update) links sdhub made, all in one transaction."""
        if not many:
            return

        def work(s: Session) -> None:
            existing = {r.path: r for r in s.scalars(select(Link).where(Link.path.in_([v["path"] for v in many])))}
            for values in many:
                row = existing.get(values["path"])
                if row is None:
                    row = Link(**values)
                    s.add(row)
                    existing[values["path"]] = row
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
            s.flush()

        self.write(work)  # another process linking the same folder may record the same paths first

    def forget_link(self, path: str) -> None:
        with self.transaction() as s:
            s.execute(delete(Link).where(Link.path == path))

    def set_verified(self, file_id: int, status: str, detail: str | None) -> None:
        with self.transaction() as s:
            row = s.get(File, file_id)
            if row is not None:
                row.verified_at = utcnow()
                row.verify_status = status
                row.verify_detail = detail

    def delete_file(self, file_id: int) -> None:
        with self.transaction() as s:
            row = s.get(File, file_id)
            if row is not None:
                s.delete(row)

    def bulk_insert_for_bench(self, rows: Sequence[dict[str, Any]], terms: Iterable[tuple[str, int]]) -> None:
        """Fast path used only by benchmarks to build a large catalogue."""
        with self.transaction() as s:
            s.execute(File.__table__.insert(), list(rows))
            s.execute(SearchTerm.__table__.insert(), [{"term": t, "file_id": f} for t, f in terms])


def _link_dict(r: Link) -> dict[str, Any]:
    return {"path": r.path, "file_id": r.file_id, "target": r.target, "root": r.root, "layout": r.layout,
            "mode": r.mode, "size": r.size, "mtime_ns": r.mtime_ns, "inode": r.inode}


def to_record(f: File) -> FileRecord:
    sources = []
    for link in f.sources:
        v = link.version
        m = v.model
        sources.append(
            SourceInfo(
                source=m.source,
                model_id=m.source_model_id,
                version_id=v.source_version_id or None,
                file_id=link.source_file_id,
                model_name=m.name,
                version_name=v.name,
                model_type=m.type,
                base_model=v.base_model,
                page_url=m.page_url,
                download_url=link.download_url,
                original_filename=link.original_filename,
                published_hashes=dict(link.published_hashes or {}),
                trained_words=list(v.trained_words or []),
                tags=list(m.tags or []),
                nsfw=m.nsfw,
                license=m.license,
                creator=m.creator,
                description=m.description,
                claimed_family=link.claimed_family,
                extra=dict(link.extra or {}),
                claimed_kind=(link.extra or {}).get("claimed_kind"),
            )
        )
    return FileRecord(
        id=f.id, path=f.path, name=f.name, format=f.format, size=f.size, mtime_ns=f.mtime_ns,
        sha256=f.sha256, autov1=f.autov1, autov3=f.autov3, crc32=f.crc32, blake3=f.blake3,
        family=f.family, kind=f.kind, variant=f.variant, precision=f.precision,
        identification=f.identification, identify_error=f.identify_error, hash_error=f.hash_error,
        family_mismatch=f.family_mismatch, kind_mismatch=f.kind_mismatch, added_at=_aware(f.added_at), verified_at=_aware(f.verified_at),
        verify_status=f.verify_status, verify_detail=f.verify_detail, sources=sources,
        sidecars=[{"path": sc.path, "format": sc.format, "data": dict(sc.data or {}), "problem": sc.problem}
                  for sc in f.sidecars],
    )


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    from datetime import timezone

    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value



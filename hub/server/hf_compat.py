"""A Hugging Face Hub endpoint over the store: ``HF_ENDPOINT=http://server:8765`` for huggingface_hub, diffusers, ``hf``.

What the store holds from Hugging Face (files installed with ``sdhub install hf:…``, a Hugging Face cache registered
with ``sdhub scan --hf-cache``, diffusers folders linked to a repo) is seen as repositories at the commits they came
from. Routes, with the headers huggingface_hub checks (offline-testing.md §5):

- ``HEAD|GET /{repo}/resolve/{revision}/{path}`` (``repo`` is ``org/name`` or a legacy root name): 200 with the bytes
  (``Range`` honoured), ``X-Repo-Commit``, a strong quoted ``ETag``; weights (LFS on the Hub) also carry
  ``X-Linked-Etag: "<sha256>"`` and ``X-Linked-Size``, and their ``ETag`` is the SHA256, so the client's blob is named
  by its content. Other files' ``ETag`` is their git blob SHA-1, as on the Hub. The bytes are served directly, not
  through a redirect: the client follows only relative redirects, and there is no CDN to send it to.
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{revision}``: ``{"id", "sha", "siblings", …}``
  (``?blobs=true`` adds sizes and LFS hashes).
- ``GET /api/models/{repo}/tree/{revision}[/{path}]?recursive=`` : the file listing ``snapshot_download`` reads.

Revisions: a commit the store holds files of answers as itself; a branch or tag name answers with the newest commit
installed under that name, and ``main`` with the newest commit held at all. A file asked for at a name that the newest
commit lacks is served from the newest commit that has it. Misses answer as the Hub does (401 ``RepoNotFound``, 404
``RevisionNotFound``/``EntryNotFound``), or are fetched through :mod:`.pull_through` when the server has
``--upstream`` and the request the token.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..catalogue import FileRecord
from .common import JSONReply, StoreFileResponse, state_of

# What the Hub keeps in LFS: weights by suffix, anything else from 10 MB up.
LFS_SUFFIXES = (".safetensors", ".sft", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".h5", ".gguf", ".pb")
LFS_MIN_SIZE = 10 * 1024 * 1024
EPOCH = datetime(1970, 1, 1)


@dataclass
class RepoFile:
    """One file of a repository snapshot, and where the store keeps it."""

    path: str
    disk: str
    size: int
    sha256: str | None = None  # known for catalogued weights; computed on first use for files inside a folder

    @property
    def lfs(self) -> bool:
        return self.path.lower().endswith(LFS_SUFFIXES) or self.size >= LFS_MIN_SIZE


@dataclass
class Snapshot:
    repo: str
    commit: str
    names: set[str] = field(default_factory=set)  # branch/tag names it was installed under
    files: dict[str, RepoFile] = field(default_factory=dict)
    newest: datetime = EPOCH
    tags: list[str] = field(default_factory=list)


_digests: dict[tuple[str, int, int], tuple[str, str]] = {}
_digest_lock = threading.Lock()


def digests(disk: str) -> tuple[str, str]:
    """(SHA256, git blob SHA-1) of a file, remembered by path, size and mtime (a folder's files are not catalogued)."""
    st = os.stat(disk)
    key = (disk, st.st_size, st.st_mtime_ns)
    with _digest_lock:
        if key in _digests:
            return _digests[key]
    sha, git = hashlib.sha256(), hashlib.sha1(f"blob {st.st_size}\0".encode())
    with open(disk, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
            git.update(block)
    value = (sha.hexdigest(), git.hexdigest())
    with _digest_lock:
        _digests[key] = value
    return value


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file the Hub's git tree holds for an LFS file (its SHA-1 is the tree ``oid``)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_oid(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def sha256_of(f: RepoFile) -> str:
    if f.sha256 is None:
        f.sha256 = digests(f.disk)[0]
    return f.sha256


def blob_oid(f: RepoFile) -> str:
    """The tree ``oid`` the Hub shows: the pointer's SHA-1 for LFS files, the content's otherwise."""
    if f.lfs:
        return git_oid(lfs_pointer(sha256_of(f), f.size))
    return digests(f.disk)[1]


def snapshots(hub: Any, repo: str) -> list[Snapshot]:
    """The commits of ``repo`` the store holds files of, newest first."""
    found: dict[str, Snapshot] = {}
    for record in hub.catalogue.by_source("hf", model_id=repo):
        for src in record.sources:
            if src.source != "hf" or src.model_id != repo:
                continue
            commit = src.version_id or ""
            snap = found.setdefault(commit, Snapshot(repo, commit))
            revision = (src.extra or {}).get("revision")
            if revision and revision != commit:
                snap.names.add(str(revision))
            snap.tags = list(dict.fromkeys(snap.tags + list(src.tags or [])))
            if record.added_at is not None:
                snap.newest = max(snap.newest, record.added_at.replace(tzinfo=None))
            _add_files(snap, record, src.file_id)
    return sorted((s for s in found.values() if s.files and s.commit),
                  key=lambda s: (s.newest, s.commit), reverse=True)


def _add_files(snap: Snapshot, record: FileRecord, file_id: str | None) -> None:
    if os.path.isdir(record.path):  # a diffusers folder: every file under it, at file_id (the folder's repo path)
        root = Path(record.path)
        prefix = f"{file_id.strip('/')}/" if file_id else ""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                disk = os.path.join(dirpath, name)
                if name.startswith(".") or not os.path.isfile(disk):
                    continue
                rel = Path(disk).relative_to(root).as_posix()
                snap.files.setdefault(prefix + rel, RepoFile(prefix + rel, disk, os.path.getsize(disk)))
    elif os.path.isfile(record.path):
        path = (file_id or record.name).strip("/")
        snap.files[path] = RepoFile(path, record.path, record.size, record.sha256)


def pick(snaps: list[Snapshot], revision: str) -> list[Snapshot]:
    """The snapshots that answer for ``revision``, best first (empty: the store has no such revision)."""
    exact = [s for s in snaps if s.commit == revision]
    if exact:
        return exact
    named = [s for s in snaps if revision in s.names]
    if revision == "main":
        return named + [s for s in snaps if s not in named]
    return named


def hub_error(status: int, code: str, message: str, commit: str | None = None) -> JSONReply:
    """An error as the Hub sends it: huggingface_hub maps ``X-Error-Code`` to its exception types."""
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    if commit:
        headers["X-Repo-Commit"] = commit
    return JSONReply({"error": message}, status_code=status, headers=headers)


def _repo_of(request: Request) -> str:
    p = request.path_params
    return f"{p['org']}/{p['name']}" if "org" in p else p["name"]


def resolve(request: Request) -> Response:
    state = state_of(request)
    repo, revision, path = _repo_of(request), request.path_params["revision"], request.path_params["path"]
    snaps = snapshots(state.hub, repo)
    if not snaps:
        return _miss(request, repo, revision, path) or hub_error(401, "RepoNotFound", f"Repository {repo} not found")
    candidates = pick(snaps, revision)
    if not candidates:
        return _miss(request, repo, revision, path) or hub_error(
            404, "RevisionNotFound", f"Invalid rev id: {revision}")
    for snap in candidates:
        f = snap.files.get(path)
        if f is not None:
            return file_reply(snap.commit, f)
    return _miss(request, repo, revision, path) or hub_error(
        404, "EntryNotFound", f"{path} does not exist on {revision}", candidates[0].commit)


def _miss(request: Request, repo: str, revision: str, path: str) -> Response | None:
    """Pull-through for a file the store lacks, when this server may (otherwise None: answer the miss)."""
    from .pull_through import puller

    pull = puller(request)
    if pull is None or isinstance(pull, Response):
        return pull
    ref = f"hf:{repo}/{path}" + ("" if revision == "main" else f"@{revision}")
    return pull.respond(request, ref, headers_for=_plan_headers)


def _plan_headers(plan: Any) -> dict[str, str]:
    """The Hub's headers for a file still being fetched upstream, from the source's plan."""
    extra = plan.extra or {}
    headers = {"X-Repo-Commit": str(extra.get("commit") or "")}
    if plan.sha256:
        headers.update({"ETag": f'"{plan.sha256}"', "X-Linked-Etag": f'"{plan.sha256}"'})
        if plan.size is not None:
            headers["X-Linked-Size"] = str(plan.size)
    elif extra.get("git_sha1"):
        headers["ETag"] = f'"{extra["git_sha1"]}"'
    return headers


def file_reply(commit: str, f: RepoFile) -> Response:
    if f.lfs:
        sha = sha256_of(f)
        headers = {"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(f.size)}
    else:
        headers = {"ETag": f'"{digests(f.disk)[1]}"'}
    headers["X-Repo-Commit"] = commit
    return StoreFileResponse(f.disk, headers=headers, filename=f.path.rsplit("/", 1)[-1],
                             media_type="application/octet-stream", content_disposition_type="inline")


def _split_api_path(rest: str) -> tuple[str, str, str | None, str]:
    """``org/name[/revision/REV | /tree/REV[/path]]`` → (repo, action, revision, path); root repos have one part."""
    segs = rest.strip("/").split("/")
    for at in (2, 1):
        if len(segs) > at + 1 and segs[at] in ("revision", "tree"):
            return "/".join(segs[:at]), segs[at], segs[at + 1], "/".join(segs[at + 2:])
    return "/".join(segs), "info", None, ""


def models_api(request: Request) -> Response:
    repo, action, revision, path = _split_api_path(request.path_params["rest"])
    if not repo or repo.count("/") > 1:
        return hub_error(404, "RepoNotFound", "not a repository path")
    state = state_of(request)
    snaps = snapshots(state.hub, repo)
    if not snaps:
        return hub_error(401, "RepoNotFound", f"Repository {repo} not found")
    chosen = pick(snaps, revision or "main")
    if not chosen:
        return hub_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    snap = chosen[0]
    if action == "tree":
        return JSONReply(tree(snap, path, request.query_params.get("recursive", "").lower() in ("1", "true")))
    return JSONReply(model_info(snap, blobs=request.query_params.get("blobs", "").lower() == "true"))


def model_info(snap: Snapshot, *, blobs: bool) -> dict[str, Any]:
    siblings = []
    for path, f in sorted(snap.files.items()):
        entry: dict[str, Any] = {"rfilename": path}
        if blobs:
            entry.update({"size": f.size, "blobId": blob_oid(f)})
            if f.lfs:
                entry["lfs"] = {"sha256": sha256_of(f), "size": f.size, "pointerSize": len(lfs_pointer(sha256_of(f), f.size))}
        siblings.append(entry)
    modified = snap.newest.isoformat(timespec="milliseconds") + "Z"
    return {"_id": snap.repo, "id": snap.repo, "modelId": snap.repo, "sha": snap.commit, "lastModified": modified,
            "createdAt": modified, "private": False, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
            "tags": snap.tags, "library_name": "diffusers" if "model_index.json" in snap.files else None,
            "siblings": siblings, "cardData": {}}


def tree(snap: Snapshot, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = prefix.strip("/")
    items: list[dict[str, Any]] = []
    dirs: set[str] = set()
    for path, f in sorted(snap.files.items()):
        if prefix and not path.startswith(prefix + "/"):
            continue
        rel = path[len(prefix) + 1:] if prefix else path
        parts = rel.split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            folder = "/".join(([prefix] if prefix else []) + parts[:depth])
            if folder not in dirs:
                dirs.add(folder)
                items.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
        if len(parts) > 1 and not recursive:
            continue
        item: dict[str, Any] = {"type": "file", "oid": blob_oid(f), "size": f.size, "path": path}
        if f.lfs:
            sha = sha256_of(f)
            item["lfs"] = {"oid": sha, "size": f.size, "pointerSize": len(lfs_pointer(sha, f.size))}
        items.append(item)
    return items


def routes() -> list[BaseRoute]:
    return [
        Route("/api/models/{rest:path}", models_api, methods=["GET"]),
        Route("/{org}/{name}/resolve/{revision}/{path:path}", resolve, methods=["GET", "HEAD"]),
        Route("/{name}/resolve/{revision}/{path:path}", resolve, methods=["GET", "HEAD"]),
    ]

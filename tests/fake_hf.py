"""A fake Hugging Face Hub on 127.0.0.1: the same app on two ports ("primary" and "mirror"), plus CDNs.

Wire contract (sources.md §4, §6; offline-testing.md §5):
- ``HEAD/GET /{repo}/resolve/{rev}/{path}``: LFS files answer 302 to a CDN on another host with
  ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"``, ``X-Linked-Size`` and no ``X-Xet-*`` headers;
  small (git) files answer 200 with a quoted ``ETag`` (git blob SHA-1) and ``Content-Length``;
  a missing file is 404 with ``X-Error-Code: EntryNotFound``; a missing repo 401 ``RepoNotFound``.
- ``/api/models/{repo}[/revision/{rev}]``, ``/api/models/{repo}/tree/{rev}[/{path}]`` (LFS ``oid``),
  and ``/api/models`` search with ``Link: <…>; rel="next"`` pagination.
Each server can be switched ``down`` (connection refused: its port is closed), made to answer 5xx,
or have its CDN fail, so fallback is tested against real sockets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.fake_http import FakeServer, Reply, Request, ServedFile, json_reply


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class HFRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str = "a" * 40
    tags: list[str] = field(default_factory=list)
    gated: bool = False
    downloads: int = 0
    lfs_min_size: int = 1024  # bigger files (and all weights) are LFS

    def is_lfs(self, path: str) -> bool:
        return len(self.files[path]) >= self.lfs_min_size or path.endswith((".safetensors", ".ckpt", ".bin"))


class HFApp:
    """Repos shared by every server that runs the app."""

    def __init__(self) -> None:
        self.repos: dict[str, HFRepo] = {}
        self.page_size = 2

    def add(self, repo: HFRepo) -> HFRepo:
        self.repos[repo.repo_id] = repo
        return repo


class HFServer:
    """One Hub endpoint (app) plus its CDN host."""

    def __init__(self, app: HFApp, name: str, token: str = "hf_secret") -> None:
        self.app = app
        self.name = name
        self.token = token
        self.api = FakeServer(f"hf-{name}")
        self.cdn = FakeServer(f"hf-{name}-cdn")
        self.fail_status: int | None = None  # answer this status to every Hub request
        self.cdn_fail_status: int | None = None
        self.cdn_files: dict[str, ServedFile] = {}
        self.down = False
        self._routes()

    @property
    def url(self) -> str:
        return self.api.url

    def _repo(self, org: str, name: str) -> HFRepo | None:
        return self.app.repos.get(f"{org}/{name}")

    def _authorised(self, req: Request) -> bool:
        return (req.header("Authorization") or "") == f"Bearer {self.token}"

    def _routes(self) -> None:
        api = self.api

        # Legacy root repos (gpt2, bert-base-uncased) have no organisation: /gpt2/resolve/main/config.json
        @api.route("GET", r"/([^/]+)/resolve/([^/]+)/(.+)")
        @api.route("GET", r"/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)")
        def resolve(req: Request) -> Reply:
            if self.fail_status:
                return json_reply({"error": "upstream trouble"}, self.fail_status)
            segs = req.path.split("/")[1:]
            at = 1 if segs[1] == "resolve" else 2
            rev, path = segs[at + 1], "/".join(segs[at + 2:])
            repo = self.app.repos.get("/".join(segs[:at]))
            if repo is None:
                return json_reply({"error": "Repository not found"}, 401, {"X-Error-Code": "RepoNotFound"})
            if rev not in ("main", repo.commit):
                return json_reply({"error": "Invalid rev id"}, 404, {"X-Error-Code": "RevisionNotFound"})
            if repo.gated and not self._authorised(req):
                return json_reply({"error": "Access to this model is restricted"}, 401,
                                  {"X-Error-Code": "GatedRepo", "X-Error-Message": "gated"})
            if path not in repo.files:
                return json_reply({"error": "Entry not found"}, 404,
                                  {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit})
            data = repo.files[path]
            if repo.is_lfs(path):
                sha = hashlib.sha256(data).hexdigest()
                self.cdn_files[sha] = self.cdn_files.get(sha) or ServedFile(
                    data, filename=path.rsplit("/", 1)[-1], etag=f'"{sha}"')
                return Reply(302, {
                    "Location": f"{self.cdn.url}/repos/{sha[:2]}/{sha}?X-Amz-Signature=sig&response-content-disposition="
                                + quote(f'inline; filename="{path.rsplit("/", 1)[-1]}"'),
                    "X-Repo-Commit": repo.commit,
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{git_sha1(data)}"',
                    "Accept-Ranges": "bytes",
                }, b"")
            return Reply(200, {"X-Repo-Commit": repo.commit, "ETag": f'"{git_sha1(data)}"',
                               "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}, data)

        def model_json(repo: HFRepo, blobs: bool) -> dict[str, Any]:
            siblings = []
            for path, data in sorted(repo.files.items()):
                entry: dict[str, Any] = {"rfilename": path}
                if blobs:
                    entry.update({"size": len(data), "blobId": git_sha1(data)})
                    if repo.is_lfs(path):
                        entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                siblings.append(entry)
            return {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit, "lastModified": "2025-01-01T00:00:00.000Z",
                    "private": False, "gated": "auto" if repo.gated else False, "downloads": repo.downloads, "likes": 1,
                    "library_name": "diffusers", "tags": repo.tags, "pipeline_tag": "text-to-image",
                    "cardData": {"license": "openrail++"}, "siblings": siblings}

        @api.route("GET", r"/api/models/([^/]+)(/revision/[^/]+)?")  # a legacy root repo
        @api.route("GET", r"/api/models/([^/]+)/([^/]+)(/revision/[^/]+)?")
        def model_info(req: Request) -> Reply:
            if self.fail_status:
                return json_reply({"error": "upstream trouble"}, self.fail_status)
            repo = self.app.repos.get(req.path[len("/api/models/"):].split("/revision/")[0])
            if repo is None:
                return json_reply({"error": "Repository not found"}, 401, {"X-Error-Code": "RepoNotFound"})
            return json_reply(model_json(repo, (req.query.get("blobs") or ["false"])[0] == "true"))

        @api.route("GET", r"/api/models/([^/]+)/([^/]+)/tree/([^/]+)(/.*)?")
        def tree(req: Request) -> Reply:
            if self.fail_status:
                return json_reply({"error": "upstream trouble"}, self.fail_status)
            parts = req.path.split("/")
            repo = self._repo(parts[3], parts[4])
            if repo is None:
                return json_reply({"error": "Repository not found"}, 401, {"X-Error-Code": "RepoNotFound"})
            prefix = "/".join(parts[7:])
            recursive = (req.query.get("recursive") or ["false"])[0] in ("true", "True", "1")
            items: list[dict[str, Any]] = []
            dirs: set[str] = set()
            for path, data in sorted(repo.files.items()):
                if prefix and not path.startswith(prefix + "/"):
                    continue
                rel = path[len(prefix) + 1:] if prefix else path
                if "/" in rel:
                    top = (prefix + "/" if prefix else "") + rel.split("/")[0]
                    if top not in dirs:
                        dirs.add(top)
                        items.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": top})
                    if not recursive:
                        continue
                item: dict[str, Any] = {"type": "file", "oid": git_sha1(data), "size": len(data), "path": path}
                if repo.is_lfs(path):
                    item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                items.append(item)
            return json_reply(items)

        @api.route("GET", r"/api/models")
        def list_models(req: Request) -> Reply:
            if self.fail_status:
                return json_reply({"error": "upstream trouble"}, self.fail_status)
            search = [s.lower() for s in req.query.get("search", [])]
            filters = req.query.get("filter", [])
            pipeline = (req.query.get("pipeline_tag") or [None])[0]
            repos = [r for r in self.app.repos.values()
                     if all(s in r.repo_id.lower() for s in search) and all(f in r.tags for f in filters)
                     and (pipeline is None or pipeline == "text-to-image")]
            if (req.query.get("sort") or [""])[0] == "downloads":
                repos.sort(key=lambda r: -r.downloads)
            offset = int((req.query.get("cursor") or ["0"])[0])
            limit = int((req.query.get("limit") or ["1000"])[0])
            size = min(self.app.page_size, limit)
            page = repos[offset: offset + size]
            headers = {}
            if offset + size < len(repos):
                q = {k: v for k, v in req.query.items() if k != "cursor"}
                q["cursor"] = [str(offset + size)]
                headers["Link"] = f'<{self.api.url}/api/models?{urlencode(q, doseq=True)}>; rel="next"'
            body = [{"id": r.repo_id, "_id": r.repo_id, "modelId": r.repo_id, "likes": 1, "downloads": r.downloads,
                     "private": False, "tags": r.tags, "pipeline_tag": "text-to-image", "library_name": "diffusers",
                     "createdAt": "2025-01-01T00:00:00.000Z"} for r in page]
            return json_reply(body, headers=headers)

        @self.cdn.route("GET", r"/repos/[0-9a-f]{2}/([0-9a-f]{64})")
        def cdn(req: Request) -> Reply:
            if self.cdn_fail_status:
                return Reply(self.cdn_fail_status, {"Content-Type": "text/plain"}, b"CDN error")
            sha = req.path.rsplit("/", 1)[1]
            f = self.cdn_files.get(sha)
            return f.reply(req) if f else Reply(404, {"Content-Type": "text/plain"}, b"NoSuchKey")

    def start(self) -> HFServer:
        self.api.start()
        self.cdn.start()
        return self

    def stop(self) -> None:
        if not self.down:
            self.api.stop()
        self.cdn.stop()

    def go_down(self) -> None:
        """Close the endpoint's listening socket: clients get 'connection refused'."""
        self.api.stop()
        self.down = True

    def all_requests(self) -> list[Request]:
        return self.api.requests() + self.cdn.requests()


@dataclass
class FakeHub:
    app: HFApp
    primary: HFServer
    mirror: HFServer

    @property
    def endpoints(self) -> list[str]:
        return [self.primary.url, self.mirror.url]


@pytest.fixture
def fake_hub():
    app = HFApp()
    primary = HFServer(app, "primary").start()
    mirror = HFServer(app, "mirror").start()
    yield FakeHub(app, primary, mirror)
    primary.stop()
    mirror.stop()


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()

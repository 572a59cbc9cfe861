"""What only the web page needs from the server: install jobs, resources of a dropped file, card details, the page.

The catalogue list, a file's record and remote search come from the server's JSON API (hub/server/app.py);
this module adds what a page needs on top of it:

- ``POST /api/sdhub/v1/installs`` ``{"ref": …}`` starts an install job; ``GET …/installs[/{id}]`` reports
  bytes, speed, ETA, the host serving it, resumed-from and each step; ``DELETE …/installs/{id}`` cancels
  (the partial download stays, the next install of the same reference resumes it).
- ``POST /api/sdhub/v1/resources?filename=NAME`` (the file's bytes as the body): what an image or a
  ComfyUI workflow uses, have / fetchable / unknown, as ``sdhub resources --json`` says.
- ``GET /api/sdhub/v1/ui/cards?sha256=A,B`` the badges of the cards on screen: preview and its NSFW level,
  missing or changed on disk, the checkpoints an add-on fits (or the add-ons a checkpoint takes), evidence,
  trigger words, links into UIs; ``GET /api/sdhub/v1/ui/preview/{sha256}`` the preview image itself.
- ``POST /api/sdhub/v1/ui/updates`` ``{"sha256": [...]}`` asks each file's source for a newer version.
- ``GET /api/sdhub/v1/ui/search?q=&source=&type=&nsfw=&cursor=`` searches the sources (``sdhub search --json``).
- ``/`` and ``/api/sdhub/v1/ui/static/…``: the page (plain HTML, CSS and JS shipped in the package; nothing from a CDN).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import SdhubError
from .install_jobs import InstallJobs

API = "/api/sdhub/v1"
STATIC_DIR = Path(__file__).parent / "static" / "ui"
STATIC_PREFIX = f"{API}/ui/static"  # under the API prefix: never a Hugging Face repo path
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # an image or workflow, never a model
MAX_CARDS = 200  # one request's cards; a page shows fewer
FIT_NAMES = 6  # names listed per badge; the count says the rest
_SHA256 = re.compile(r"[0-9a-f]{64}")
UI_FLAG = "local_ui"
UI_HEADER = "X-Sdhub-UI"  # a custom header: a cross-site request cannot send it without a CORS preflight


def error(message: str, status: int) -> Response:
    from .common import error_reply

    return error_reply(status, " ".join(str(message).split()))


def routes() -> list[BaseRoute]:
    """The page's endpoints and the page itself (``/`` and its static files); handlers find the hub on ``app.state.sdhub``."""
    api = _UiApi()
    return [
        Route(f"{API}/installs", api.installs, methods=["GET", "POST"]),
        Route(f"{API}/installs/{{job_id:int}}", api.install_job, methods=["GET", "DELETE"]),
        Route(f"{API}/resources", api.resources, methods=["POST"]),
        Route(f"{API}/ui/cards", api.cards, methods=["GET"]),
        Route(f"{API}/ui/preview/{{sha256}}", api.preview, methods=["GET"]),
        Route(f"{API}/ui/updates", api.updates, methods=["POST"]),
        Route(f"{API}/ui/search", api.search, methods=["GET"]),
        Route(f"{API}/ui/settings", api.ui_settings, methods=["GET"]),
        Route("/", _index, methods=["GET"]),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=str(STATIC_DIR)), name="ui-static"),
    ]


def enable_local_ui(app: Any) -> None:
    """Mark ``app`` as ``sdhub ui``'s: the page's installs and look-ups need no token (it listens on 127.0.0.1 only)."""
    app.state.sdhub.extras[UI_FLAG] = True


def _refused(request: Request, what: str) -> Response | None:
    """None when ``request`` may do ``what`` (start downloads, ask the sources); else the reply to send.

    ``sdhub ui`` (loopback only) allows it to the page itself: a request from another site's page (its
    ``Origin`` or ``Sec-Fetch-Site`` says so) or one that is not JSON (no CORS preflight) is refused, so
    no web page the browser visits can make sdhub download. ``sdhub serve`` asks for its token instead.
    """
    from .common import refuse_unauthorised, state_of

    state = state_of(request)
    if not state.extras.get(UI_FLAG):
        return refuse_unauthorised(request, what)
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if (origin is not None and origin != own) or request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return error(f"{what} is allowed from sdhub's own page only", 403)
    host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        return error(f"{what}: the page is served on 127.0.0.1 only (Host {host!r} refused)", 403)
    if request.headers.get(UI_HEADER) != "1":
        return error(f"{what} needs the {UI_HEADER}: 1 header the page sends", 403)
    return None


def _renamed(value: Any, old: str, new: str) -> Any:
    """``value`` with every string's ``old`` replaced by ``new`` (lists and dicts walked)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    return value


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


class _UiApi:
    """The handlers; the install jobs live on the server's state (one registry per app)."""

    @staticmethod
    def hub(request: Request) -> Any:
        from .common import state_of

        return state_of(request).hub

    @staticmethod
    def jobs(request: Request) -> InstallJobs:
        from .common import state_of

        state = state_of(request)
        with state.lock:
            jobs = state.extras.get("install_jobs")
            if jobs is None:
                jobs = state.extras["install_jobs"] = InstallJobs(state.hub.settings)
        return jobs

    # -- installs --------------------------------------------------------------------------------
    async def installs(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"installs": [j.to_dict() for j in self.jobs(request).all()]})
        refused = _refused(request, "installing")
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return error('send JSON: {"ref": "civitai:…"}', 400)
        ref = body.get("ref") if isinstance(body, dict) else None
        if not isinstance(ref, str) or not ref.strip():
            return error('"ref" is required: what `sdhub install` takes (civitai:…, hf:…, liblib:…, a URL)', 400)
        job = self.jobs(request).start(ref)
        return JSONResponse(job.to_dict(), status_code=202)

    async def install_job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        jobs = self.jobs(request)
        if request.method == "DELETE":
            refused = _refused(request, "cancelling an install")
            if refused is not None:
                return refused
            job = jobs.cancel(job_id)
        else:
            job = jobs.get(job_id)
        if job is None:
            return error(f"no install job {job_id}", 404)
        return JSONResponse(job.to_dict())

    # -- resources -------------------------------------------------------------------------------
    async def resources(self, request: Request) -> Response:
        refused = _refused(request, "looking up a file's resources")
        if refused is not None:
            return refused
        name = os.path.basename(request.query_params.get("filename", "").replace("\\", "/")).strip()
        if not name or name.startswith("."):
            return error("?filename= is required (the dropped file's name: its suffix says how to read it)", 400)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            return error(f"{name}: {int(declared)} bytes is too large for an image or workflow", 413)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                return error(f"{name}: too large for an image or workflow (over {MAX_UPLOAD_BYTES} bytes)", 413)
        if not data:
            return error(f"{name}: the file is empty", 400)
        offline = request.query_params.get("offline") in ("1", "true", "yes")
        try:
            report = await run_in_threadpool(_resources, self.hub(request), name, bytes(data), offline)
        except SdhubError as exc:
            return error(str(exc), 400)
        return JSONResponse(report)

    # -- cards -----------------------------------------------------------------------------------
    async def cards(self, request: Request) -> Response:
        wanted = [s.strip().lower() for s in request.query_params.get("sha256", "").split(",") if s.strip()]
        bad = [s for s in wanted if not _SHA256.fullmatch(s)]
        if bad:
            return error(f"not a SHA-256: {bad[0][:80]}", 400)
        if len(wanted) > MAX_CARDS:
            return error(f"at most {MAX_CARDS} files per request (got {len(wanted)})", 400)
        from .cards import card_details

        cards = await run_in_threadpool(card_details, self.hub(request), wanted, fit_names=FIT_NAMES)
        return JSONResponse({"cards": cards})

    async def preview(self, request: Request) -> Response:
        sha = request.path_params["sha256"].lower()
        if not _SHA256.fullmatch(sha):
            return error(f"not a SHA-256: {sha[:80]}", 400)
        from .cards import preview_path

        found = await run_in_threadpool(preview_path, self.hub(request), sha)
        if found is None:
            return error(f"no preview image beside {sha}", 404)
        return FileResponse(found, headers={"Cache-Control": "max-age=60"})

    async def updates(self, request: Request) -> Response:
        refused = _refused(request, "checking for updates")
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return error('send JSON: {"sha256": ["…"]}', 400)
        wanted = body.get("sha256") if isinstance(body, dict) else None
        if not isinstance(wanted, list) or not all(isinstance(s, str) and _SHA256.fullmatch(s.lower()) for s in wanted):
            return error('"sha256" must be a list of SHA-256 hex strings', 400)
        if len(wanted) > MAX_CARDS:
            return error(f"at most {MAX_CARDS} files per request (got {len(wanted)})", 400)
        from .cards import check_updates

        found = await run_in_threadpool(check_updates, self.hub(request), [s.lower() for s in wanted])
        return JSONResponse({"updates": found})

    async def search(self, request: Request) -> Response:
        """``sdhub search --json`` across the sources for the page (``/search/remote`` is ``serve --upstream``'s)."""
        refused = _refused(request, "searching the sources")
        if refused is not None:
            return refused
        q = request.query_params
        raw_limit = q.get("limit") or "20"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            return error(f"limit must be a whole number from 1 to 100, not {raw_limit!r}", 400)
        hub = self.hub(request)

        def run() -> Any:
            return hub.search((q.get("q") or "").strip(), sources=[s for s in q.getlist("source") if s] or None,
                              types=[t for t in q.getlist("type") if t], base=[b for b in q.getlist("base") if b],
                              sort=q.get("sort") or None, period=q.get("period") or None, limit=int(raw_limit),
                              nsfw=q.get("nsfw", "").lower() in ("1", "true", "yes"), cursor=q.get("cursor") or None)

        try:
            report = await run_in_threadpool(run)
        except SdhubError as exc:
            return error(str(exc), 400)
        return JSONResponse(report.to_dict(), status_code=502 if report.all_failed else 200)

    async def ui_settings(self, request: Request) -> Response:
        from .cards import configured_nsfw_level
        from .common import state_of

        state = state_of(request)
        return JSONResponse({"nsfw_level": await run_in_threadpool(configured_nsfw_level, state.hub),
                             "local_ui": bool(state.extras.get(UI_FLAG))})


def _resources(hub: Any, name: str, data: bytes, offline: bool) -> dict[str, Any]:
    """``sdhub resources --json`` for one uploaded file, with its name where the report would say a temp path."""
    from ..api import Hub

    folder = Path(tempfile.mkdtemp(prefix="sdhub-ui-drop-"))
    try:
        path = folder / name
        path.write_bytes(data)
        with Hub(settings=hub.settings) as own:
            report = own.resources([path], offline=offline).to_dict()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _renamed(report, str(path), name)

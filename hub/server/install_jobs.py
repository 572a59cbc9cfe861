"""Install jobs the web page starts: one background thread each, with live bytes, speed, ETA and steps.

A job runs the same steps as ``sdhub install`` (plan → download → verify → identify → register), on
its own :class:`~hub.api.Hub` so a download never holds the server's catalogue connection. Cancel
stops the transfer at the next chunk and keeps the ``.part`` and its state file, so installing the
same reference again resumes where it stopped (the job then reports ``resumed_from``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import SdhubError

MAX_RUNNING = 2  # downloads at once; more wait their turn ("queued")
SPEED_WINDOW_S = 3.0  # speed is measured over the last few seconds, not since the start


class InstallCancelled(SdhubError):
    """Raised inside the transfer when the user cancels: the partial download stays resumable."""


@dataclass
class Step:
    name: str  # plan | download | verify | identify | register | place
    text: str
    state: str = "running"  # running | done | failed

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text, "state": self.state}


@dataclass
class InstallJob:
    id: int
    ref: str
    state: str = "queued"  # queued | planning | downloading | verifying | done | failed | cancelled
    filename: str | None = None
    source: str | None = None
    total: int | None = None
    bytes_done: int = 0
    resumed_from: int = 0
    served_by: str | None = None
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    result: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    cancel_requested: bool = False
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=256), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def step(self, name: str, text: str, state: str = "running") -> None:
        with self._lock:
            for s in self.steps:
                if s.state == "running":
                    s.state = "done"
            self.steps.append(Step(name, text, state))

    def speed(self) -> float | None:
        """Bytes per second over the last few seconds (None before two samples)."""
        with self._lock:
            if len(self._samples) < 2:
                return None
            t1, b1 = self._samples[-1]
            t0, b0 = next(((t, b) for t, b in self._samples if t1 - t <= SPEED_WINDOW_S), self._samples[0])
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def to_dict(self) -> dict[str, Any]:
        speed = self.speed() if self.state == "downloading" else None
        eta = None
        if speed and self.total:
            eta = max(self.total - self.bytes_done, 0) / speed
        with self._lock:
            steps = [s.to_dict() for s in self.steps]
        return {
            "id": self.id, "ref": self.ref, "state": self.state, "filename": self.filename, "source": self.source,
            "total": self.total, "bytes": self.bytes_done, "speed": speed, "eta": eta,
            "resumed_from": self.resumed_from, "served_by": self.served_by, "steps": steps,
            "warnings": list(self.warnings), "error": self.error, "error_type": self.error_type,
            "result": self.result, "started_at": self.started_at, "finished_at": self.finished_at,
            "cancel_requested": self.cancel_requested,
        }


class _JobProgress:
    """The download engine's Progress for one job; raising from ``update`` is how cancel reaches the transfer."""

    def __init__(self, job: InstallJob) -> None:
        self.job = job
        self._lock = threading.Lock()

    def start(self, total: int | None, initial: int, description: str) -> None:
        job = self.job
        with self._lock:
            job.total = total if total is not None else job.total
            job.bytes_done = initial
            job.resumed_from = max(job.resumed_from, initial)
            job._samples.clear()
            job._samples.append((time.monotonic(), initial))
        job.state = "downloading"
        text = f"downloading {description}"
        if initial:
            text += f", resumed from {initial} bytes"
        job.step("download", text)

    def update(self, n: int) -> None:
        job = self.job
        if job.cancel_requested:
            raise InstallCancelled(f"{job.ref}: cancelled at {job.bytes_done} bytes")
        with self._lock:
            job.bytes_done += n
            now = time.monotonic()
            if not job._samples or now - job._samples[-1][0] >= 0.1:
                job._samples.append((now, job.bytes_done))

    def close(self) -> None:
        job = self.job  # the engine closes after the last byte, and also on a failure or cancel
        if not job.cancel_requested and (job.total is None or job.bytes_done >= job.total):
            job.state = "verifying"
            job.step("verify", "checking the hashes, identifying the file")


class InstallJobs:
    """Every install the page started in this server's life, newest last."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._jobs: dict[int, InstallJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_RUNNING)

    def start(self, ref: str) -> InstallJob:
        ref = ref.strip()
        with self._lock:
            for job in self._jobs.values():  # the same reference twice: the running job answers
                if job.ref == ref and not job.finished:
                    return job
            job = InstallJob(next(self._ids), ref)
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"sdhub-ui-install-{job.id}").start()
        return job

    def get(self, job_id: int) -> InstallJob | None:
        return self._jobs.get(job_id)

    def all(self) -> list[InstallJob]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: int) -> InstallJob | None:
        job = self._jobs.get(job_id)
        if job is not None and not job.finished:
            job.cancel_requested = True
        return job

    def _run(self, job: InstallJob) -> None:
        with self._slots:
            if job.cancel_requested:
                self._end(job, "cancelled", error=None)
                job.step("cancel", "cancelled before it started", "done")
                return
            try:
                self._install(job)
            except InstallCancelled:
                part = f" at {job.bytes_done} of {job.total} bytes" if job.total else ""
                job.step("cancel", f"cancelled{part}; the partial download is kept and Install resumes it", "done")
                self._end(job, "cancelled", error=None)
            except SdhubError as exc:
                self._fail(job, str(exc), type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - a page must show the failure, not lose the thread
                self._fail(job, f"internal error: {type(exc).__name__}: {exc}", type(exc).__name__)

    def _fail(self, job: InstallJob, message: str, error_type: str) -> None:
        line = " ".join(message.split())  # one clear line on the card
        with job._lock:
            for s in job.steps:
                if s.state == "running":
                    s.state = "failed"
        job.error_type = error_type
        self._end(job, "failed", error=line)

    def _end(self, job: InstallJob, state: str, error: str | None) -> None:
        job.error = error
        job.finished_at = time.time()
        job.state = state

    def _install(self, job: InstallJob) -> None:
        from ..api import Hub
        from ..sources.install import build_context, find_local, install_plan, parse_ref, plan_for

        job.state = "planning"
        job.step("plan", f"asking the source about {job.ref}")
        with Hub(settings=self.settings) as hub:
            parsed = parse_ref(hub, job.ref)
            local = find_local(hub, job.ref)
            if local:
                rec = local[-1]
                job.step("plan", f"already installed: {rec.path}", "done")
                job.result = _result_dict(hub, rec, "already-installed")
                self._end(job, "done", None)
                return
            progress = _JobProgress(job)
            ctx = build_context(hub, progress=progress)
            _watch_hosts(ctx, job)
            source, plan = plan_for(hub, parsed, ctx)
            job.filename, job.source, job.total = plan.filename, plan.source, plan.size
            job.warnings = list(plan.warnings)
            host = urlsplit(plan.url).netloc
            job.step("plan", f"{plan.source}: {plan.filename}" + (f", {plan.size} bytes" if plan.size else "")
                     + f", from {host}")
            if job.cancel_requested:
                raise InstallCancelled(f"{job.ref}: cancelled")
            result = install_plan(hub, source, plan, ctx)
            job.served_by = result.served_by or job.served_by
            job.resumed_from = result.resumed_from or job.resumed_from
            job.warnings = list(result.warnings)
            if result.status == "already-installed":
                job.step("register", "; ".join(result.warnings[-1:]) or "already in the store", "done")
            else:
                rec = result.record
                published = sorted((plan.published_hashes or {}).keys())
                job.step("verify", f"verified against {plan.source}'s published "
                         f"{', '.join(published) if published else 'size'}", "done")
                if rec is not None:
                    what = f"{rec.family or 'unknown family'} {(rec.kind or 'unknown kind').replace('_', ' ')}"
                    job.step("identify", f"identified: {what}" + (f" ({rec.variant})" if rec.variant else ""), "done")
                    job.step("register", f"registered at {rec.path}", "done")
                for line in result.placed:
                    job.step("place", line, "done")
            job.result = _result_dict(hub, result.record, result.status) if result.record else None
            self._end(job, "done", None)


def _watch_hosts(ctx: Any, job: InstallJob) -> None:
    """Note which host answers each streamed request, so the card shows the endpoint or mirror serving it now."""
    http = ctx.http
    original = http.open

    def open_watched(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        resp = original(method, url, *args, **kwargs)
        if kwargs.get("stream"):
            job.served_by = urlsplit(getattr(resp, "url", url) or url).netloc
        return resp

    http.open = open_watched


def _result_dict(hub: Any, record: Any, status: str) -> dict[str, Any]:
    return {"status": status, "sha256": record.sha256, "name": record.name, "path": record.path,
            "family": record.family, "kind": record.kind, "variant": record.variant,
            "family_mismatch": record.family_mismatch, "kind_mismatch": record.kind_mismatch}

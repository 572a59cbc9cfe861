"""Downloads from misbehaving HTTP servers (issue 18): each ends in the right file or one clear error, in bounded time.

Every server here is a real HTTP server on 127.0.0.1 (tests/fake_http.py). A token passed as auth
header must never reach another host nor appear in any error message.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from fake_http import FakeServer, Reply, ServedFile

from hub.sources.download import Downloader, DownloadOptions, RetryPolicy
from hub.errors import (
    AccessDeniedError,
    AuthRequiredError,
    DownloadError,
    RateLimitedError,
    RemoteNotFoundError,
    SdhubError,
    SourceError,
)

TOKEN = "sk-ADVERSARIAL-SECRET-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = RetryPolicy(attempts=3, base_wait=0.01, max_wait=0.05)


@pytest.fixture
def server() -> Any:
    with FakeServer("hostile") as srv:
        yield srv


def engine(**opts: Any) -> Downloader:
    opts.setdefault("retry", FAST)
    return Downloader(DownloadOptions(**opts))


def _leftovers(dest: Path) -> list[str]:
    """Files a failed download left that hold bytes under a final-looking name (.part/.json state are allowed)."""
    if not dest.exists():
        return []
    return sorted(p.name for p in dest.iterdir() if not p.name.endswith((".part", ".part.json", ".lock")))


@pytest.mark.parametrize("status, error", [
    (401, AuthRequiredError), (403, AccessDeniedError), (404, RemoteNotFoundError), (410, RemoteNotFoundError),
])
def test_client_errors_are_one_clear_error_without_the_token(server: FakeServer, tmp_path: Path, status: int,
                                                            error: type[Exception]) -> None:
    server.route("GET", "/f")(lambda req: Reply(status, {"Content-Type": "text/html"}, b"<html>nope</html>"))
    with pytest.raises(error) as info:
        engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors", auth_headers=AUTH)
    assert f"HTTP {status}" in str(info.value) and TOKEN not in str(info.value)
    assert len(server.requests("/f")) == 1  # a 4xx is not retried
    assert _leftovers(tmp_path) == []


def test_429_with_retry_after_is_waited_then_succeeds(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    f = ServedFile(data, status_queue=[(429, {"Retry-After": "0"}, b"slow down")])
    server.route("GET", "/f")(f.reply)
    result = engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors")
    assert result.part_path.read_bytes() == data and len(server.requests("/f")) == 2


def test_429_with_huge_retry_after_is_capped_and_then_rate_limited(server: FakeServer, tmp_path: Path) -> None:
    server.route("GET", "/f")(lambda req: Reply(429, {"Retry-After": "86400"}, b"slow down"))
    t0 = time.monotonic()
    with pytest.raises(RateLimitedError):
        engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors")
    assert time.monotonic() - t0 < 10  # Retry-After: 86400 is not obeyed blindly


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_persistent_5xx_gives_up_after_the_retries(server: FakeServer, tmp_path: Path, status: int) -> None:
    server.route("GET", "/f")(lambda req: Reply(status, {}, b"broken"))
    with pytest.raises(SdhubError) as info:
        engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors", auth_headers=AUTH)
    assert str(status) in str(info.value) and TOKEN not in str(info.value)
    assert len(server.requests("/f")) == FAST.attempts


def test_cut_body_resumes_to_the_exact_file(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(600_000)
    f = ServedFile(data, drop_after=200_000, drop_times=2)
    server.route("GET", "/f")(f.reply)
    result = engine(chunk_size=50_000).fetch(server.url + "/f", tmp_path, filename="m.safetensors")
    assert result.part_path.read_bytes() == data
    assert any(r.header("Range") for r in server.requests("/f"))


def test_lying_content_length_never_yields_a_short_file(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(100_000)

    def liar(req: Any) -> Reply:
        def stream(handler: Any) -> None:
            handler.wfile.write(data)
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
        return Reply(200, {"Content-Length": str(len(data) + 50_000), "Content-Type": "application/octet-stream"},
                     stream=stream)

    server.route("GET", "/f")(liar)
    t0 = time.monotonic()
    with pytest.raises(SdhubError):
        engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors")
    assert time.monotonic() - t0 < 30
    assert _leftovers(tmp_path) == []


def test_ignored_range_after_a_cut_restarts_cleanly(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(400_000)
    f = ServedFile(data, drop_after=150_000, drop_times=1, ignore_range=True)
    server.route("GET", "/f")(f.reply)
    result = engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors")
    assert result.part_path.read_bytes() == data  # the 200 to a Range request did not get appended


def test_etag_changed_between_resumes_gives_the_new_file_whole(server: FakeServer, tmp_path: Path) -> None:
    old, new = os.urandom(300_000), os.urandom(300_000)
    served = {"f": ServedFile(old, drop_after=100_000, drop_times=1)}
    server.route("GET", "/f")(lambda req: served["f"].reply(req))
    with pytest.raises(SdhubError):
        engine(retry=RetryPolicy(attempts=1, base_wait=0, max_wait=0)).fetch(
            server.url + "/f", tmp_path, filename="m.safetensors")
    served["f"] = ServedFile(new)  # the file changed on the server: a new ETag
    result = engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors")
    assert result.part_path.read_bytes() == new  # never old bytes followed by new ones


def test_redirect_loop_is_one_error_in_bounded_requests(server: FakeServer, tmp_path: Path) -> None:
    server.route("GET", "/a")(lambda req: Reply(302, {"Location": "/b"}))
    server.route("GET", "/b")(lambda req: Reply(302, {"Location": "/a"}))
    with pytest.raises(SourceError, match="too many redirects"):
        engine().fetch(server.url + "/a", tmp_path, filename="m.safetensors", auth_headers=AUTH)
    assert len(server.log) <= 12 * FAST.attempts


def test_redirect_to_another_host_does_not_carry_the_token(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(30_000)
    with FakeServer("storage") as storage:
        storage.route("GET", "/signed")(ServedFile(data).reply)
        # same IP, other port: another origin, as a CDN's signed URL is
        server.route("GET", "/f")(lambda req: Reply(302, {"Location": storage.url + "/signed?sig=abc"}))
        result = engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors", auth_headers=AUTH)
        assert result.part_path.read_bytes() == data
        assert server.requests("/f")[0].header("Authorization") == f"Bearer {TOKEN}"
        for req in storage.requests():
            assert req.header("Authorization") is None
            assert all(TOKEN not in v for v in req.headers.values()) and TOKEN not in req.path


def test_redirect_back_to_the_first_host_stays_without_token(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    with FakeServer("bounce") as other:
        other.route("GET", "/x")(lambda req: Reply(302, {"Location": server.url + "/final"}))
        server.route("GET", "/f")(lambda req: Reply(302, {"Location": other.url + "/x"}))
        server.route("GET", "/final")(ServedFile(data).reply)
        engine().fetch(server.url + "/f", tmp_path, filename="m.safetensors", auth_headers=AUTH)
        assert server.requests("/final")[0].header("Authorization") is None


@pytest.mark.parametrize("header", [
    'attachment; filename="../../x.safetensors"',
    "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd",
    'attachment; filename="/etc/cron.d/evil"',
    'attachment; filename="..\\\\..\\\\win.safetensors"',
    'attachment; filename=".bashrc"',
    'attachment; filename="a\x00b.safetensors"',
])
def test_hostile_content_disposition_stays_inside_dest(server: FakeServer, tmp_path: Path, header: str) -> None:
    data = os.urandom(5_000)
    server.route("GET", "/f")(ServedFile(data, content_disposition=header).reply)
    dest = tmp_path / "deep" / "dest"
    result = engine().fetch(server.url + "/f", dest)
    part = result.part_path.resolve()
    assert part.parent == dest.resolve()
    assert not result.part_path.name.startswith(".")  # no hidden dotfile (.bashrc) planted
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        p.name for p in dest.iterdir() if p.is_file())


def test_server_stalling_mid_body_times_out_boundedly(server: FakeServer, tmp_path: Path) -> None:
    data = os.urandom(200_000)

    def staller(req: Any) -> Reply:
        def stream(handler: Any) -> None:
            handler.wfile.write(data[:50_000])
            handler.wfile.flush()
            time.sleep(8)  # then goes silent, connection held open
        return Reply(200, {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
                     stream=stream)

    server.route("GET", "/f")(staller)
    t0 = time.monotonic()
    with pytest.raises((DownloadError, SourceError)) as info:
        engine(timeout=(2.0, 0.5), retry=RetryPolicy(attempts=2, base_wait=0.01, max_wait=0.05)).fetch(
            server.url + "/f", tmp_path, filename="m.safetensors", auth_headers=AUTH)
    assert time.monotonic() - t0 < 8  # the read timeout, not the server, ended it
    assert TOKEN not in str(info.value)

"""The download engine against a real HTTP server on 127.0.0.1: resume, ranges, faults, names, auth."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hub.sources.download import (
    CallbackProgress,
    DownloadOptions,
    Downloader,
    HttpClient,
    RetryPolicy,
    file_lock,
    filename_from_content_disposition,
    parse_retry_after,
    sanitize_filename,
)
from hub.errors import DownloadError, RateLimitedError, SourceError
from tests.fake_http import FakeServer, Reply, ServedFile

FAST = RetryPolicy(attempts=3, base_wait=0.01, max_wait=0.05)


def _data(n: int, seed: int = 1) -> bytes:
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:n])


@pytest.fixture
def server():
    srv = FakeServer("files").start()
    yield srv
    srv.stop()


def serve(server: FakeServer, path: str, f: ServedFile) -> ServedFile:
    server.route("GET", path)(f.reply)
    return f


def engine(**opts) -> Downloader:
    opts.setdefault("retry", FAST)
    return Downloader(DownloadOptions(**opts))


def test_plain_download_names_file_from_content_disposition(server, tmp_path):
    f = serve(server, "/dl/1", ServedFile(_data(300_000), filename="model.safetensors"))
    res = engine().fetch(server.url + "/dl/1", tmp_path)
    assert res.filename == "model.safetensors"
    assert res.part_path == tmp_path / "model.safetensors.part"
    assert res.part_path.read_bytes() == f.data
    assert res.sha256 == f.sha256
    assert not (tmp_path / "model.safetensors.part.json").exists()


def test_dropped_connection_resumes_with_range_and_if_range(server, tmp_path):
    f = serve(server, "/dl/2", ServedFile(_data(1_000_000), filename="m.safetensors", drop_after=300_000, drop_times=1))
    res = engine(chunk_size=50_000).fetch(server.url + "/dl/2", tmp_path, filename="m.safetensors",
                                          expected_size=len(f.data))
    assert res.sha256 == f.sha256
    gets = server.requests("/dl/2", "GET")
    assert len(gets) == 2
    assert gets[0].header("Range") is None
    assert gets[1].header("Range") == "bytes=300000-"
    assert gets[1].header("If-Range") == f.etag


def test_interrupted_download_leaves_part_and_next_run_resumes(server, tmp_path):
    f = serve(server, "/dl/3", ServedFile(_data(800_000), filename="x.bin", drop_after=200_000, drop_times=5))
    dl = Downloader(DownloadOptions(retry=RetryPolicy(attempts=1, base_wait=0, max_wait=0), chunk_size=50_000))
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        dl.fetch(server.url + "/dl/3?X-Amz-Signature=SIG", tmp_path, filename="x.bin")
    part = tmp_path / "x.bin.part"
    assert part.stat().st_size == 200_000
    assert "SIG" not in (tmp_path / "x.bin.part.json").read_text()  # the signed query is not kept on disk
    f.drop_times = 0
    res = engine().fetch(server.url + "/dl/3", tmp_path, filename="x.bin")
    assert res.resumed_from == 200_000
    assert res.sha256 == f.sha256
    assert server.requests("/dl/3", "GET")[-1].header("Range") == "bytes=200000-"


def test_server_answering_200_to_range_restarts_cleanly(server, tmp_path):
    f = serve(server, "/dl/4", ServedFile(_data(500_000), filename="y.bin"))
    (tmp_path / "y.bin.part").write_bytes(b"garbage-prefix" * 1000)
    f.ignore_range = True
    res = engine().fetch(server.url + "/dl/4", tmp_path, filename="y.bin")
    assert res.part_path.read_bytes() == f.data
    assert res.sha256 == f.sha256
    assert res.resumed_from == 0


def test_changed_file_detected_by_if_range(server, tmp_path):
    old = _data(400_000, seed=1)
    f = serve(server, "/dl/5", ServedFile(old, filename="z.bin", drop_after=100_000, drop_times=1))
    with pytest.raises(DownloadError):
        Downloader(DownloadOptions(retry=RetryPolicy(attempts=1, base_wait=0, max_wait=0), chunk_size=50_000)).fetch(
            server.url + "/dl/5", tmp_path, filename="z.bin"
        )
    new = _data(400_000, seed=2)
    f.data, f.etag = new, '"changed"'
    res = engine().fetch(server.url + "/dl/5", tmp_path, filename="z.bin")
    assert res.sha256 == hashlib.sha256(new).hexdigest()
    last = server.requests("/dl/5", "GET")[-1]
    assert last.header("Range") == "bytes=100000-" and last.header("If-Range") != '"changed"'


def test_416_on_complete_part_is_success(server, tmp_path):
    data = _data(50_000)
    serve(server, "/dl/6", ServedFile(data, filename="c.bin"))
    (tmp_path / "c.bin.part").write_bytes(data)
    res = engine().fetch(server.url + "/dl/6", tmp_path, filename="c.bin")
    assert res.sha256 == hashlib.sha256(data).hexdigest()


def test_parallel_ranges_assemble_the_exact_file(server, tmp_path):
    f = serve(server, "/dl/7", ServedFile(_data(3_000_000), filename="big.safetensors"))
    dl = engine(connections=4, parallel_min_size=1_000_000, chunk_size=64 * 1024)
    seen: list[tuple[int, int | None]] = []
    dl.progress = CallbackProgress(lambda done, total: seen.append((done, total)))
    res = dl.fetch(server.url + "/dl/7", tmp_path)
    assert res.connections == 4
    assert res.sha256 == f.sha256
    ranges = sorted(r.header("Range") or "" for r in server.requests("/dl/7", "GET"))
    assert len(ranges) == 4 and ranges[0] == ""  # the first response doubles as segment 0
    assert seen[-1] == (len(f.data), len(f.data))


def test_parallel_mode_copes_with_a_server_that_advertises_ranges_but_answers_200(server, tmp_path):
    f = serve(server, "/dl/7b", ServedFile(_data(2_000_000), filename="r.bin", ignore_range=True))
    dl = engine(connections=4, parallel_min_size=1_000_000, chunk_size=64 * 1024)
    res = dl.fetch(server.url + "/dl/7b", tmp_path)
    assert res.sha256 == f.sha256 and res.connections == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bin.part"]


def test_ctrl_c_in_parallel_mode_leaves_resumable_segments(server, tmp_path):
    f = serve(server, "/dl/8", ServedFile(_data(4_000_000), filename="p.bin", throttle_bps=4_000_000))
    dl = engine(connections=3, parallel_min_size=1_000_000, chunk_size=32 * 1024, state_every_bytes=64 * 1024)

    def interrupt(done: int, total: int | None) -> None:
        if done > 1_000_000:
            dl.cancel()

    dl.progress = CallbackProgress(interrupt)
    with pytest.raises(KeyboardInterrupt):
        dl.fetch(server.url + "/dl/8", tmp_path, filename="p.bin")
    assert (tmp_path / "p.bin.part").exists() and (tmp_path / "p.bin.part.json").exists()
    before = len(server.requests("/dl/8", "GET"))
    f.throttle_bps = None
    res = engine(connections=3, parallel_min_size=1_000_000).fetch(server.url + "/dl/8", tmp_path, filename="p.bin")
    assert res.sha256 == f.sha256
    assert res.resumed_from > 0
    later = server.requests("/dl/8", "GET")[before:]
    assert all(r.header("Range") for r in later)


def test_ctrl_c_single_stream_keeps_part(server, tmp_path):
    f = serve(server, "/dl/9", ServedFile(_data(2_000_000), filename="k.bin"))
    dl = engine(chunk_size=64 * 1024)

    def interrupt(done: int, total: int | None) -> None:
        if done > 500_000:
            raise KeyboardInterrupt

    dl.progress = CallbackProgress(interrupt)
    with pytest.raises(KeyboardInterrupt):
        dl.fetch(server.url + "/dl/9", tmp_path, filename="k.bin")
    size = (tmp_path / "k.bin.part").stat().st_size
    assert 0 < size < len(f.data)
    res = engine().fetch(server.url + "/dl/9", tmp_path, filename="k.bin")
    assert res.resumed_from == size and res.sha256 == f.sha256


def test_retry_after_is_honoured_and_capped(server, tmp_path):
    f = serve(server, "/dl/10", ServedFile(_data(10_000), filename="r.bin"))
    f.status_queue = [(429, {"Retry-After": "1"}, b'{"error":"slow down"}'), (503, {"Retry-After": "1"}, b"")]
    dl = Downloader(DownloadOptions(retry=RetryPolicy(attempts=4, base_wait=0.01, max_wait=0.2)))
    t0 = time.monotonic()
    res = dl.fetch(server.url + "/dl/10", tmp_path, filename="r.bin")
    elapsed = time.monotonic() - t0
    assert res.sha256 == f.sha256
    assert 0.4 <= elapsed < 1.5  # two waits of min(Retry-After=1, cap=0.2)
    assert len(server.requests("/dl/10", "GET")) == 3


def test_persistent_429_becomes_rate_limited_error(server, tmp_path):
    f = serve(server, "/dl/11", ServedFile(_data(1000), filename="q.bin"))
    f.status_queue = [(429, {"Retry-After": "0"}, b"{}")] * 5
    with pytest.raises(RateLimitedError, match="slow down"):
        engine().fetch(server.url + "/dl/11", tmp_path, filename="q.bin")
    assert list(tmp_path.iterdir()) == []  # no .part, no state, no lock left behind


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now=now) == pytest.approx(20, abs=1)
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    "header, expected",
    [
        ('attachment; filename="../../x"', "x"),
        ('attachment; filename="..\\..\\evil.safetensors"', "evil.safetensors"),
        ("attachment; filename*=UTF-8''%E4%B8%AD%E6%96%87%20lora.safetensors", "中文 lora.safetensors"),
        ('attachment; filename="fallback.bin"; filename*=UTF-8\'\'caf%C3%A9.ckpt', "café.ckpt"),
        ('attachment; filename="a\\"b.safetensors"', "a_b.safetensors"),
        ('attachment; filename="CON.safetensors"', "_CON.safetensors"),
        ('attachment; filename="bad\x07name\x1b.pt"', "badname.pt"),
        ('attachment; filename=".."', "download.bin"),
        ('attachment; filename="name; with semicolon.pt"', "name; with semicolon.pt"),
    ],
)
def test_content_disposition_names_are_sanitised(header, expected):
    assert sanitize_filename(filename_from_content_disposition(header) or "") == expected


def test_mis_encoded_utf8_name_is_repaired():
    mangled = "模型.safetensors".encode("utf-8").decode("latin-1")
    assert filename_from_content_disposition(f'attachment; filename="{mangled}"') == "模型.safetensors"


def test_long_names_keep_extension():
    name = sanitize_filename("a" * 400 + ".safetensors")
    assert name.endswith(".safetensors") and len(name.encode()) <= 240


def test_malicious_content_disposition_stays_inside_dest(server, tmp_path):
    dest = tmp_path / "store" / "incoming"
    serve(server, "/dl/12", ServedFile(_data(5000), content_disposition='attachment; filename="../../x"'))
    res = engine().fetch(server.url + "/dl/12", dest)
    assert res.part_path == dest / "x.part"
    assert res.part_path.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["x.part"]


def test_free_space_is_checked_before_any_request(server, tmp_path):
    serve(server, "/dl/13", ServedFile(_data(100), filename="huge.bin"))
    with pytest.raises(DownloadError, match="not enough free space"):
        engine().fetch(server.url + "/dl/13", tmp_path, filename="huge.bin", expected_size=1 << 60)
    assert server.requests("/dl/13") == []


def test_disk_full_midway_is_one_clear_error_and_the_part_resumes(server, tmp_path):
    """A write that fails (here: a file-size limit, EFBIG, as a full disk gives ENOSPC) names the file, not a traceback."""
    f = serve(server, "/dl/w", ServedFile(_data(3_000_000), filename="w.bin"))
    limit = 1_000_000
    code = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from pathlib import Path
from hub.sources.download import Downloader, DownloadOptions, RetryPolicy
from hub.errors import LocalWriteError
try:
    Downloader(DownloadOptions(retry=RetryPolicy(1, 0, 0))).fetch({server.url + "/dl/w"!r}, Path({str(tmp_path)!r}),
                                                                  filename="w.bin")
except LocalWriteError as exc:
    print("LocalWriteError:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "LocalWriteError:" in done.stdout and "w.bin.part" in done.stdout and "File too large" in done.stdout
    assert "run the same command again to resume" in done.stdout
    part = tmp_path / "w.bin.part"
    assert part.stat().st_size == limit
    res = engine().fetch(server.url + "/dl/w", tmp_path, filename="w.bin")
    assert res.resumed_from == limit and res.sha256 == f.sha256


def test_html_error_page_is_never_saved_as_a_model(server, tmp_path):
    serve(server, "/dl/14", ServedFile(b"<html>Just a moment...</html>", filename="m.safetensors",
                                       content_type="text/html"))
    with pytest.raises(DownloadError, match="text/html page instead of a model"):
        engine().fetch(server.url + "/dl/14", tmp_path)
    assert list(tmp_path.iterdir()) == []  # "nothing was saved" is true


def test_text_files_may_be_served_as_text(server, tmp_path):
    config = b'{"_class_name": "AutoencoderKL"}'
    serve(server, "/dl/14b", ServedFile(config, filename="config.json", content_type="application/json"))
    assert engine().fetch(server.url + "/dl/14b", tmp_path).part_path.read_bytes() == config
    serve(server, "/dl/14c", ServedFile(b'{"error": "Unauthorized"}', filename="m.safetensors",
                                        content_type="application/json"))
    with pytest.raises(DownloadError, match="application/json page instead of a model"):
        engine().fetch(server.url + "/dl/14c", tmp_path)
    serve(server, "/dl/14d", ServedFile(b"<html>login</html>", filename="config.json", content_type="text/html"))
    with pytest.raises(DownloadError, match="text/html page"):
        engine().fetch(server.url + "/dl/14d", tmp_path)


def test_size_disagreeing_with_source_is_refused(server, tmp_path):
    serve(server, "/dl/15", ServedFile(_data(1000), filename="s.bin"))
    with pytest.raises(DownloadError, match="announced 2000"):
        engine().fetch(server.url + "/dl/15", tmp_path, filename="s.bin", expected_size=2000)


def test_auth_header_never_follows_a_redirect_to_another_host(tmp_path):
    api, storage = FakeServer("api").start(), FakeServer("storage").start()
    try:
        f = ServedFile(_data(20_000), filename="signed.safetensors")
        storage.route("GET", "/blob")(f.reply)
        api.route("GET", "/api/download/1")(lambda r: Reply(307, {"Location": storage.url + "/blob?sig=abc"}))
        res = engine().fetch(api.url + "/api/download/1", tmp_path, auth_headers={"Authorization": "Bearer SECRET"})
        assert res.sha256 == f.sha256
        assert res.served_by == f"127.0.0.1:{storage.port}"
        assert "sig=" not in res.final_url
        assert all(r.header("Authorization") == "Bearer SECRET" for r in api.requests("/api"))
        assert storage.requests() and all(r.header("Authorization") is None for r in storage.requests())
        assert all("SECRET" not in str(r.headers) + str(r.query) for r in storage.requests())
    finally:
        api.stop()
        storage.stop()


def test_auth_not_restored_when_redirect_returns_to_first_host(tmp_path):
    api, other = FakeServer("api").start(), FakeServer("other").start()
    try:
        f = ServedFile(_data(1000), filename="b.bin")
        api.route("GET", "/start")(lambda r: Reply(302, {"Location": other.url + "/hop"}))
        other.route("GET", "/hop")(lambda r: Reply(302, {"Location": api.url + "/final"}))
        api.route("GET", "/final")(f.reply)
        engine().fetch(api.url + "/start", tmp_path, auth_headers={"Authorization": "Bearer T"})
        assert api.requests("/start")[0].header("Authorization") == "Bearer T"
        assert api.requests("/final")[0].header("Authorization") is None
    finally:
        api.stop()
        other.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_api_host_fails_fast_with_the_cause_and_no_query():
    client = HttpClient(retry=RetryPolicy(attempts=5, base_wait=1.0, max_wait=1.0), timeout=(0.5, 0.5))
    port = _closed_port()
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=f"cannot reach http://127.0.0.1:{port}/x: .*Connection refused") as info:
        client.json("GET", f"http://127.0.0.1:{port}/x?token=SECRET")
    assert time.monotonic() - t0 < 0.9  # no back-off on a host that is not there (API calls)
    assert "SECRET" not in str(info.value) and "Max retries" not in str(info.value)


def test_unreachable_storage_host_is_named_and_its_signed_query_never_shown(tmp_path):
    api = FakeServer("api").start()
    try:
        port = _closed_port()
        api.route("GET", "/dl")(lambda r: Reply(307, {"Location": f"http://127.0.0.1:{port}/blob?X-Amz-Signature=SIG"}))
        with pytest.raises(SourceError) as info:
            engine().fetch(api.url + "/dl", tmp_path, filename="m.bin")
        message = str(info.value)
        assert f"redirected to http://127.0.0.1:{port}/blob" in message and "Connection refused" in message
        assert "SIG" not in message
    finally:
        api.stop()


def test_file_lock_makes_the_second_holder_wait(tmp_path):
    lock = tmp_path / "a.lock"
    order: list[str] = []
    waited = threading.Event()

    def second() -> None:
        with file_lock(lock, on_wait=waited.set):
            order.append("second")

    with file_lock(lock):
        t = threading.Thread(target=second)
        t.start()
        assert waited.wait(2)
        order.append("first")
    t.join(2)
    assert order == ["first", "second"]


def test_lock_timeout(tmp_path):
    lock = tmp_path / "b.lock"
    with file_lock(lock):
        result: list[BaseException] = []

        def other() -> None:
            try:
                with file_lock(lock, timeout=0.1):
                    pass
            except DownloadError as exc:
                result.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(2)
    assert result and "another sdhub process" in str(result[0])


def test_progress_reports_total_and_bytes(server, tmp_path):
    f = serve(server, "/dl/16", ServedFile(_data(200_000), filename="g.bin"))
    events: list[tuple[int, int | None]] = []
    dl = engine()
    dl.progress = CallbackProgress(lambda d, t: events.append((d, t)))
    dl.fetch(server.url + "/dl/16", tmp_path)
    assert events[0] == (0, len(f.data)) and events[-1] == (len(f.data), len(f.data))


def test_no_content_length_streams_to_eof(server, tmp_path):
    data = _data(70_000)

    def reply(req):
        def stream(h):
            h.wfile.write(data)

        return Reply(200, {"Content-Type": "application/octet-stream",
                           "Content-Disposition": 'attachment; filename="n.bin"'}, stream=stream)

    server.route("GET", "/dl/17")(reply)
    res = engine().fetch(server.url + "/dl/17", tmp_path)
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    assert os.path.getsize(res.part_path) == len(data)


def test_shown_url_keeps_the_query_but_masks_secrets() -> None:
    from hub.sources.download import shown_url

    url = "https://u:p@civitai.com/api/download/models/2?type=VAE&fileId=3&token=abc&X-Amz-Signature=ff"
    assert shown_url(url) == "https://civitai.com/api/download/models/2?type=VAE&fileId=3&token=***&X-Amz-Signature=***"

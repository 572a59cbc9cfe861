"""Download engine throughput over loopback, against curl on the same file, in the same run.

1. Unthrottled: a 127.0.0.1 server (sendfile, Range support) serves one file; curl and our engine
   (one connection, with and without SHA-256 while streaming) download it; best of N each.
   Printed: MB/s and our/curl ratio.
2. Throttled per connection (like model CDNs): the same server capped at --throttle MB/s per
   connection; curl (1 connection) vs our engine with 1 and --connections ranged connections.
   Printed: the speed-up of parallel ranges over one connection.

    .venv/bin/python bench/bench_download.py [--size-mib 512] [--runs 3] [--throttle 16] [--connections 4]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.sources.download import DownloadOptions, Downloader, RetryPolicy  # noqa: E402


def make_server(path: Path, throttle_bps: float | None) -> ThreadingHTTPServer:
    size = path.stat().st_size

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            start, end, status = 0, size - 1, 200
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if m:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"bench"')
            self.send_header("Content-Disposition", 'attachment; filename="bench.bin"')
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            self.wfile.flush()
            with open(path, "rb") as fh:
                sent = 0
                t0 = time.monotonic()
                step = 1 << 20 if throttle_bps else length
                try:
                    while sent < length:
                        n = self.connection.sendfile(fh, offset=start + sent, count=min(step, length - sent))
                        if n == 0:
                            break
                        sent += n
                        if throttle_bps:
                            ahead = sent / throttle_bps - (time.monotonic() - t0)
                            if ahead > 0:
                                time.sleep(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def time_curl(url: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "--noproxy", "*", "-o", str(out), url], check=True)
    elapsed = time.perf_counter() - t0
    out.unlink()
    return elapsed


def time_engine(url: str, dest: Path, connections: int, hashing: bool, min_size: int) -> tuple[float, str | None]:
    opts = DownloadOptions(connections=connections, parallel_min_size=min_size, hash_while_downloading=hashing,
                           retry=RetryPolicy(attempts=2, base_wait=0.1, max_wait=0.1), chunk_size=1 << 20,
                           free_space_margin=0)
    t0 = time.perf_counter()
    res = Downloader(opts).fetch(url, dest, filename="bench.bin")
    elapsed = time.perf_counter() - t0
    res.part_path.unlink()
    return elapsed, res.sha256


def best(fn: Any, runs: int) -> float:
    return min(fn() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--throttle", type=float, default=16.0, help="MB/s per connection in part 2")
    ap.add_argument("--throttled-size-mib", type=int, default=64)
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed: nothing to compare against")
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

    tmp = Path(tempfile.mkdtemp(prefix="sdhub-bench-"))
    try:
        src = tmp / "src.bin"
        with open(src, "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(args.size_mib):
                fh.write(hashlib.sha256(block + i.to_bytes(4, "little")).digest() * 32768)
        size = src.stat().st_size
        mb = size / 1e6
        dest = tmp / "dest"
        server = make_server(src, None)
        url = f"http://127.0.0.1:{server.server_address[1]}/bench.bin"
        curl_s = best(lambda: time_curl(url, tmp / "curl.out"), args.runs)
        ours_s = best(lambda: time_engine(url, dest, 1, False, 1 << 62)[0], args.runs)
        ours_h = best(lambda: time_engine(url, dest, 1, True, 1 << 62)[0], args.runs)
        expected = hashlib.sha256(src.read_bytes()).hexdigest()
        for conns in (1, args.connections):  # the bytes must be right, not just fast
            got = time_engine(url, dest, conns, True, 1 << 20)[1]
            assert got == expected, f"{conns} connection(s): SHA-256 {got} != {expected}"
        ours_p = best(lambda: time_engine(url, dest, args.connections, False, 1 << 20)[0], args.runs)
        server.shutdown()
        print(f"## unthrottled loopback, {args.size_mib} MiB file, best of {args.runs}")
        print(f"curl                               {mb / curl_s:8.0f} MB/s   1.00")
        print(f"sdhub engine, 1 connection         {mb / ours_s:8.0f} MB/s   {curl_s / ours_s:.2f} x curl")
        print(f"sdhub engine, 1 conn + SHA-256     {mb / ours_h:8.0f} MB/s   {curl_s / ours_h:.2f} x curl")
        print(f"sdhub engine, {args.connections} connections        {mb / ours_p:8.0f} MB/s   {curl_s / ours_p:.2f} x curl")

        small = tmp / "small.bin"
        with open(src, "rb") as fin, open(small, "wb") as fout:
            fout.write(fin.read(args.throttled_size_mib << 20))
        smb = small.stat().st_size / 1e6
        throttled = make_server(small, args.throttle * 1e6)
        turl = f"http://127.0.0.1:{throttled.server_address[1]}/bench.bin"
        t_curl = time_curl(turl, tmp / "curl.out")
        t_one = time_engine(turl, dest, 1, False, 1 << 62)[0]
        t_par = time_engine(turl, dest, args.connections, False, 1 << 20)[0]
        throttled.shutdown()
        print(f"\n## server throttled to {args.throttle:g} MB/s per connection, {args.throttled_size_mib} MiB file")
        print(f"curl (1 connection)                {smb / t_curl:8.1f} MB/s")
        print(f"sdhub engine, 1 connection         {smb / t_one:8.1f} MB/s   {t_curl / t_one:.2f} x curl")
        print(f"sdhub engine, {args.connections} ranged connections {smb / t_par:8.1f} MB/s   "
              f"speed-up {t_one / t_par:.2f} x over 1 connection")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

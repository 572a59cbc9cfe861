"""``sdhub serve`` over loopback against a static file server, in one run; then pull-through's single flight.

1. One model file (``--size-mib``, 2 GiB by default; sparse, so writing it is instant) is catalogued in a fresh
   SDHUB_HOME and served by ``sdhub serve`` (its own process) and by a static server on the same folder: nginx from
   Debian when it is installed (``apt-get install nginx-light``), else ``python -m http.server``. For N = 1, 8, 32
   (``--clients``) concurrent ``curl`` clients download the whole file from each; printed: wall seconds, aggregate
   MiB/s and sdhub's share of the static server's throughput.
2. Pull-through: a second ``sdhub serve --upstream`` with an empty store uses the first as its Hugging Face endpoint
   (it speaks the Hub's protocol); 8 clients ask it for the same file at once. Printed: how many GETs of the file
   reached the upstream (must be 1; read from the upstream's access log), and that every client got the whole file.

    .venv/bin/python bench/bench_serve.py [--size-mib 2048] [--clients 1,8,32] [--pull-clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPO, FILE, COMMIT = "bench/model", "model.safetensors", "b" * 40
TOKEN = "bench-token"


def write_model(path: Path, size: int) -> None:
    """A valid safetensors file of ``size`` bytes (one U8 tensor) whose data is a hole: no disk, no time."""
    header = b""
    for _ in range(3):  # the header's own length decides the tensor's length
        data_len = size - 8 - len(header)
        raw = json.dumps({"blob": {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}}).encode()
        header = raw + b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        fh.truncate(size)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sdhub(home: Path, *extra: str, env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, Path]:
    home.mkdir(parents=True, exist_ok=True)
    log = home / "serve.log"
    env = {**os.environ, "SDHUB_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", "0", *extra],
                            stderr=log.open("w"), env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "sdhub serve: http://" in text:
            return proc, text.split("sdhub serve: ", 1)[1].split()[0], log
        if proc.poll() is not None:
            raise SystemExit(f"sdhub serve did not start:\n{text}")
        time.sleep(0.05)
    raise SystemExit("sdhub serve did not start in 60 s")


def start_static(folder: Path, work: Path) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        (work / "nginx").mkdir()
        conf = work / "nginx" / "nginx.conf"
        conf.write_text(f"""daemon off; worker_processes 2; pid {work}/nginx/nginx.pid; error_log {work}/nginx/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; client_body_temp_path {work}/nginx;
  proxy_temp_path {work}/nginx; fastcgi_temp_path {work}/nginx; uwsgi_temp_path {work}/nginx; scgi_temp_path {work}/nginx;
  server {{ listen 127.0.0.1:{port}; root {folder}; }} }}
""")
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work / "nginx")], stderr=subprocess.DEVNULL)
        label = "nginx (Debian, sendfile, 2 workers)"
    else:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        label = "python -m http.server"
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url, label
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{label} did not start")


def fetch_all(url: str, n: int, headers: dict[str, str] | None = None) -> tuple[float, list[int]]:
    """``n`` curl processes downloading ``url`` at once; (wall seconds, bytes each received)."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{http_code}"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    started = time.perf_counter()
    procs = [subprocess.Popen(args + [url], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate()[0].split() for p in procs]
    wall = time.perf_counter() - started
    return wall, [int(o[0]) if o and o[-1] in ("200", "206") else -1 for o in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--pull-clients", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores) and print it")
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    counts = [int(c) for c in args.clients.split(",")]
    if not shutil.which("curl"):
        raise SystemExit("curl is needed (apt-get install curl)")

    from hub import Hub
    from hub.catalogue import SourceInfo

    work = Path(tempfile.mkdtemp(prefix="sdhub-bench-serve-"))
    procs: list[subprocess.Popen] = []
    try:
        home = work / "studio"
        models = work / "models"
        models.mkdir()
        write_model(models / FILE, size)
        for p in (work, models):  # nginx's workers run as www-data: they must be able to read the folder
            p.chmod(0o755)
        (models / FILE).chmod(0o644)
        t = time.perf_counter()
        with Hub(home=home) as h:
            rec = h.register_file(models / FILE, source=SourceInfo(source="hf", model_id=REPO, version_id=COMMIT,
                                                                    file_id=FILE, original_filename=FILE,
                                                                    extra={"revision": "main"}))
        print(f"file: {args.size_mib} MiB sparse safetensors, catalogued in {time.perf_counter() - t:.1f} s "
              f"(sha256 {rec.sha256[:16]}…); {os.cpu_count()} CPUs")

        sdhub_proc, sdhub_url, upstream_log = start_sdhub(home)
        static_proc, static_url, static_label = start_static(models, work)
        procs += [sdhub_proc, static_proc]
        targets = {static_label: f"{static_url}/{FILE}",
                   "sdhub serve, /api/sdhub/v1/files/{sha256}/content": f"{sdhub_url}/api/sdhub/v1/files/{rec.sha256}/content",
                   "sdhub serve, /{repo}/resolve/main/{file}": f"{sdhub_url}/{REPO}/resolve/main/{FILE}"}
        print(f"\n{'server':<52} {'N':>3} {'wall s':>8} {'MiB/s':>8} {'of static':>10}")
        for url in targets.values():  # warm up: first-request imports and the page cache are not what is measured
            subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)
        for n in counts:
            static_rate = None
            for label, url in targets.items():
                wall, got = fetch_all(url, n)
                if any(g != size for g in got):
                    raise SystemExit(f"{label}: a client got {got} bytes, not {size}")
                rate = n * size / wall / 2**20
                static_rate = static_rate or rate
                print(f"{label:<52} {n:>3} {wall:>8.2f} {rate:>8.0f} {rate / static_rate * 100:>9.0f}%", flush=True)

        # Pull-through: an empty store, the first server as its Hugging Face endpoint.
        token_file = work / "token"
        token_file.write_text(TOKEN)
        def upstream_gets() -> tuple[int, int]:
            """(whole-file GETs, ranged resumes) of the file in the upstream's access log (status 200 / 206)."""
            lines = [ln for ln in upstream_log.read_text().splitlines() if f" GET /{REPO}/resolve/" in ln]
            return sum(ln.endswith(" 200") for ln in lines), sum(ln.endswith(" 206") for ln in lines)

        before = upstream_gets()
        pull_proc, pull_url, _ = start_sdhub(work / "edge", "--upstream", "--token-file", str(token_file),
                                             env_extra={"SDHUB_HF_ENDPOINTS": sdhub_url})
        procs.append(pull_proc)
        wall, got = fetch_all(f"{pull_url}/{REPO}/resolve/main/{FILE}", args.pull_clients,
                              {"Authorization": f"Bearer {TOKEN}"})
        time.sleep(0.5)
        after = upstream_gets()
        downloads, resumes = after[0] - before[0], after[1] - before[1]
        whole = sum(1 for g in got if g == size)
        print(f"\npull-through: {args.pull_clients} clients asked an empty `sdhub serve --upstream` for the file at once:"
              f" {downloads} upstream download(s) of the file ({resumes} ranged resume(s) of it);"
              f" {whole}/{args.pull_clients} clients got all {args.size_mib} MiB in {wall:.2f} s")
        with Hub(home=work / "edge") as edge:
            stored = edge.find_by_hash(rec.sha256 or "")
        print(f"  the edge store now holds it, verified: {bool(stored)}")
        if downloads != 1 or whole != args.pull_clients or not stored:
            raise SystemExit("pull-through did not hold: expected exactly one upstream download")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

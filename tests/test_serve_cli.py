"""``sdhub serve`` as a user runs it: a real process, its address on stderr, one clear error for bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests


def test_import_hub_does_not_load_the_web_stack() -> None:
    code = "import sys, hub, hub.cli; hub.serve; assert 'starlette' not in sys.modules and 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_runs_until_stopped(sdhub_home: Path, tmp_path: Path, stop: int) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    proc = subprocess.Popen([sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", "0", "--token-file", str(token)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("sdhub serve: http://127.0.0.1:"), first
        url = first.split()[-1]
        status = requests.get(f"{url}/api/sdhub/v1/status", timeout=10)
        assert status.json()["read_only"] is False
        requests.get(f"{url}/api/sdhub/v1/files?token=s3cret-token", headers={"Authorization": "Bearer s3cret-token"},
                     timeout=10)
    finally:
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert err.rstrip().endswith("sdhub serve: stopped")
    assert "/api/sdhub/v1/status" in err  # the access log names the path…
    assert "s3cret-token" not in first + err  # …and never the token, even one sent in a query string


def test_bad_token_file_is_one_error(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, words in ((tmp_path / "nope", "cannot read the token file"), (empty, "is empty"),
                        (tmp_path, "not a regular file")):
        result = run_cli("serve", "--port", "0", "--token-file", str(path))
        assert result.exit_code != 0
        assert result.stderr.startswith("Error: ") and words in result.stderr, result.stderr
        assert "Traceback" not in result.output


def test_taken_port_is_one_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port))
    assert result.exit_code != 0
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}"), result.stderr

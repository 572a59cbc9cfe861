"""``sdhub ui`` as a user runs it: a real process on 127.0.0.1 serving the page, ``--open`` opening a browser."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
import requests  # noqa: E402


def test_ui_serves_the_page_and_open_starts_the_browser(sdhub_home: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"  # what $BROWSER names is what webbrowser runs: it writes down the URL
    browser.write_text(f"#!/bin/sh\necho \"$1\" > {opened}\n")
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSER": f"{browser} %s", "DISPLAY": ""}
    proc = subprocess.Popen([sys.executable, "-c", "from hub.cli import main; main()", "ui", "--port", "0", "--open"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("sdhub ui: http://127.0.0.1:"), first
        url = first.split()[-1] + "/"
        page = requests.get(url, timeout=10)
        assert page.status_code == 200 and "<title>sdhub</title>" in page.text
        for asset in ("app.js", "app.css"):
            assert requests.get(f"{url}api/sdhub/v1/ui/static/{asset}", timeout=10).status_code == 200
        settings = requests.get(f"{url}api/sdhub/v1/ui/settings", timeout=10).json()
        assert settings["local_ui"] is True
        deadline = time.monotonic() + 10
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened.read_text().strip() == url
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert err.rstrip().endswith("sdhub ui: stopped")


def test_ui_on_a_taken_port_is_one_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("ui", "--port", str(port))
    assert result.exit_code != 0
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}"), result.stderr
    assert "Traceback" not in result.output

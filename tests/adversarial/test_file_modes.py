"""Item 6 of issue 18: files sdhub makes for the user follow the umask, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_png_follows_umask(tmp_path: Path, umask: int) -> None:
    from PIL import Image

    from hub.running.runtime import write_png

    out = write_png(Image.new("RGB", (8, 8)), tmp_path / "img.png", "parameters")
    assert _mode(out) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]  # no temporary left beside it


def test_umask_is_read_without_changing_it(umask: int) -> None:
    from hub.files.regular import current_umask, umask_file_mode

    assert current_umask() == umask and umask_file_mode() == 0o666 & ~umask
    assert umask_file_mode(directory=True) == 0o777 & ~umask
    assert os.umask(umask) == umask  # still what the test set


def test_installed_model_and_state_follow_umask(tmp_path: Path, umask: int) -> None:
    """A download, moved into place by finish(), keeps the umask's mode."""
    from fake_http import FakeServer, ServedFile

    from hub.sources.download import Downloader, DownloadOptions, RetryPolicy, finish

    data = os.urandom(100_000)
    with FakeServer("files") as server:
        server.route("GET", "/f")(ServedFile(data, filename="m.safetensors").reply)
        result = Downloader(DownloadOptions(retry=RetryPolicy(attempts=2, base_wait=0, max_wait=0))).fetch(
            server.url + "/f", tmp_path / "dl")
    target = finish(result, tmp_path / "store" / "m.safetensors")
    assert target.read_bytes() == data
    assert _mode(target) == 0o666 & ~umask

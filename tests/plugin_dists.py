"""Real installed plugin distributions for tests: a module plus a .dist-info with an [sdhub] entry point.

This is what pip leaves on disk, so the plugin manager finds them through importlib.metadata exactly
as it finds third-party plugins; the ``extra_site`` fixture (conftest.py) puts a folder of them on sys.path.
"""

from __future__ import annotations

from pathlib import Path


def make_distribution(root: Path, module: str, source: str, *, dist: str | None = None, version: str = "1.0") -> None:
    """``module.py`` with ``source`` and the metadata naming it as an ``sdhub`` entry point of ``dist``."""
    dist = dist or module
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[sdhub]\n{module} = {module}\n")

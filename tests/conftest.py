"""Shared test setup: every test gets its own SDHUB_HOME and never talks to the internet.

huggingface_hub reads HF_* variables at import time, so they are set here, before any test module
imports it (see ../shared/reference/offline-testing.md §5).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _var in ("HF_ENDPOINT", "HF_TOKEN", "CIVITAI_API_TOKEN", "LIBLIB_ACCESS_KEY", "LIBLIB_SECRET_KEY"):
    os.environ.pop(_var, None)

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SDHUB_VARS = (
    "SDHUB_HOME", "SDHUB_DB_URL", "SDHUB_CONFIG", "SDHUB_STORE", "SDHUB_STORE_LAYOUT", "SDHUB_CIVITAI_URL",
    "SDHUB_LIBLIB_URL", "SDHUB_LIBLIB_OPENAPI_URL", "SDHUB_HF_ENDPOINTS", "SDHUB_PLUGINS", "SDHUB_SOURCES",
    "SDHUB_DOWNLOAD_CONNECTIONS", "SDHUB_HF_TOKEN_TO_MIRRORS", "SDHUB_HF_CACHE", "SDHUB_PEERS",
    "SDHUB_SOURCE_TIMEOUT",
)


@pytest.fixture(autouse=True)
def sdhub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty sdhub home per test."""
    for var in SDHUB_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "sdhub-home"
    monkeypatch.setenv("SDHUB_HOME", str(home))
    yield home


@pytest.fixture
def hub_instance(sdhub_home: Path) -> Iterator[object]:
    from hub import Hub

    h = Hub()
    yield h
    h.close()


@pytest.fixture
def cli_runner() -> object:
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def run_cli(cli_runner: object):  # type: ignore[no-untyped-def]
    """Invoke ``sdhub ARGS…`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from hub.cli import cli

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return cli_runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)  # type: ignore[attr-defined]

    return run


@pytest.fixture
def plugin_registration():  # type: ignore[no-untyped-def]
    """Register plugin objects for one test, then remove them (llm's pattern)."""
    from hub import plugins

    names: list[str] = []

    def register(obj: object, name: str) -> None:
        plugins.register(obj, name)
        names.append(name)

    yield register
    for name in names:
        plugins.unregister(name)
    plugins.clear_problems()


@pytest.fixture
def extra_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for plugin distributions (``plugin_dists.make_distribution``); unloaded afterwards."""
    import sys

    from hub import plugins

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(site)):
            del sys.modules[name]
    monkeypatch.undo()
    plugins.reload_plugins()


def reset_postgres(url: str) -> None:
    """Empty the scratch PostgreSQL database: every table, sequence and ``alembic_version`` goes."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as con:
            con.execute(text("DROP SCHEMA public CASCADE"))
            con.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> str:
    """SDHUB_TEST_POSTGRES_URL, emptied first; the test is skipped where it is not set."""
    url = os.environ.get("SDHUB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set SDHUB_TEST_POSTGRES_URL to run against PostgreSQL")
    reset_postgres(url)
    return url

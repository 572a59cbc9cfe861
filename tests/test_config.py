from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.config import load_settings
from hub.errors import ConfigError


def test_defaults_live_in_home(sdhub_home: Path) -> None:
    s = load_settings()
    assert s.home == sdhub_home
    assert s.db_url == f"sqlite:///{sdhub_home / 'registry.db'}"
    assert s.store == sdhub_home / "models"
    assert s.hf_endpoints == ["https://huggingface.co", "https://hf-mirror.com"]
    assert s.origins["home"] == "env SDHUB_HOME"
    assert s.origins["db_url"] == "default"


def test_precedence_env_over_file_over_default(sdhub_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdhub_home.mkdir(parents=True)
    (sdhub_home / "config.toml").write_text(
        '[store]\npath = "/data/models"\n[civitai]\nurl = "http://127.0.0.1:1/"\ntoken = "file-token-123456"\n'
        '[huggingface]\nendpoints = ["http://127.0.0.1:2", "http://127.0.0.1:3"]\n'
    )
    monkeypatch.setenv("SDHUB_CIVITAI_URL", "http://127.0.0.1:9")
    s = load_settings()
    assert s.store == Path("/data/models") and "config.toml [store.path]" in s.origins["store"]
    assert s.civitai_url == "http://127.0.0.1:9" and s.origins["civitai_url"] == "env SDHUB_CIVITAI_URL"
    assert s.civitai_token == "file-token-123456"
    assert s.hf_endpoints == ["http://127.0.0.1:2", "http://127.0.0.1:3"]


def test_hf_endpoint_goes_first_and_sdhub_list_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com")
    assert load_settings().hf_endpoints == ["https://hf-mirror.com", "https://huggingface.co"]
    monkeypatch.setenv("SDHUB_HF_ENDPOINTS", "http://127.0.0.1:5, http://127.0.0.1:6/")
    assert load_settings().hf_endpoints == ["http://127.0.0.1:5", "http://127.0.0.1:6"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SDHUB_DOWNLOAD_CONNECTIONS": "lots"}, "whole number"),
        ({"SDHUB_DOWNLOAD_CONNECTIONS": "0"}, "between 1 and 32"),
        ({"SDHUB_CIVITAI_URL": "civitai.com"}, "must start with http"),
        ({"SDHUB_STORE_LAYOUT": "{kind}/{family}"}, "must contain {filename}"),
    ],
)
def test_bad_settings_are_explained(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_bad_toml_names_the_file(sdhub_home: Path) -> None:
    sdhub_home.mkdir(parents=True)
    (sdhub_home / "config.toml").write_text("[store\npath=")
    with pytest.raises(ConfigError, match="config.toml is not valid TOML"):
        load_settings()


def test_config_command_masks_tokens(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CIVITAI_API_TOKEN", "abcdef0123456789secret")
    monkeypatch.setenv("HF_TOKEN", "hf_short")
    result = run_cli("config", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert "abcdef0123456789secret" not in result.stdout and "hf_short" not in result.stdout
    assert data["civitai_token"]["origin"] == "env CIVITAI_API_TOKEN"
    assert data["civitai_token"]["value"].startswith("abc…")
    assert data["hf_token"]["value"] == "****"
    table = run_cli("config")
    assert "env CIVITAI_API_TOKEN" in table.stdout and "0123456789secret" not in table.stdout


def test_cli_reports_config_error_in_one_line(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SDHUB_DOWNLOAD_CONNECTIONS", "many")
    result = run_cli("list")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("Error: download_connections must be a whole number")
    assert "Traceback" not in result.output


def test_the_readme_config_example_is_valid(sdhub_home: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    sdhub_home.mkdir(parents=True)
    (sdhub_home / "config.toml").write_text(example)
    s = load_settings()
    assert s.store == Path("/data/sd-models")
    assert s.db_url.startswith("postgresql+psycopg://") and "config.toml [catalogue.url]" in s.origins["db_url"]
    assert s.hf_endpoints == ["https://hf-mirror.com", "https://huggingface.co"]
    assert s.civitai_token == "…" and s.preferred_sources == ["civitai", "hf", "liblib"]
    assert s.download_connections == 4 and s.hf_token_to_mirrors is False

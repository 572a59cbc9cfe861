"""`sdhub install` against a misbehaving Civitai (issue 18): one clear error, nothing half-registered, no token leaked."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fake_http import Reply
from source_helpers import env_for, sdxl_lora_bytes
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401

TOKEN = "good-token"  # the fake's valid token: it must appear nowhere in output, catalogue or sidecars


@pytest.fixture
def civ(fake_civitai, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    lora = sdxl_lora_bytes(tmp_path, seed=21)
    fake_civitai.add(CModel(501, "Gated LoRA", "LORA", versions=[
        CVersion(601, "v1", "SDXL 1.0", require_auth=True, files=[CFile(701, "gated.safetensors", lora)]),
    ]))
    fake_civitai.add(CModel(502, "Sneaky", "LORA", versions=[
        CVersion(602, "v1", "SDXL 1.0", files=[CFile(702, "../../../escape.safetensors", lora)]),
    ]))
    for k, v in env_for(civitai=fake_civitai).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SDHUB_RETRY_MAX_WAIT", "0.02")
    monkeypatch.setenv("SDHUB_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("CIVITAI_API_TOKEN", TOKEN)
    return fake_civitai


def _storage_fails(civ, reply: Reply) -> None:  # type: ignore[no-untyped-def]
    civ.storage.routes.insert(0, ("GET", re.compile(r"/files/.*"), lambda req: reply))


def _no_token_anywhere(home: Path, *texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
    for path in home.rglob("*") if home.exists() else []:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def _nothing_registered(run_cli) -> None:  # type: ignore[no-untyped-def]
    listed = run_cli("list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


@pytest.mark.parametrize("reply", [
    Reply(500, {}, b"storage on fire"),
    Reply(403, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>"),
    Reply(200, {"Content-Type": "text/html"}, b"<html>login</html>"),
])
def test_failing_storage_is_one_error_and_nothing_registered(civ, run_cli, sdhub_home: Path, reply: Reply) -> None:
    _storage_fails(civ, reply)
    res = run_cli("install", "civitai:501@601")
    assert res.exit_code != 0
    assert res.stderr.count("Error:") == 1 and "Traceback" not in res.output
    _nothing_registered(run_cli)
    store_files = [p for p in sdhub_home.rglob("*.safetensors")]
    assert store_files == []
    _no_token_anywhere(sdhub_home, res.output)
    assert all(r.header("Authorization") is None and TOKEN not in r.path for r in civ.storage.requests())


def test_gated_download_with_token_never_sends_it_to_storage(civ, run_cli, sdhub_home: Path) -> None:
    res = run_cli("install", "civitai:501@601", "--json")
    assert res.exit_code == 0, res.output
    assert civ.storage.requests(), "the download went through the storage host"
    for req in civ.storage.requests():
        assert req.header("Authorization") is None and TOKEN not in req.path
        assert all(TOKEN not in v for vals in req.query.values() for v in vals)
    _no_token_anywhere(sdhub_home, res.output)


def test_wrong_token_is_one_error_without_echoing_it(civ, run_cli, monkeypatch: pytest.MonkeyPatch,
                                                    sdhub_home: Path) -> None:
    monkeypatch.setenv("CIVITAI_API_TOKEN", "wrong-SECRET-token-123")
    res = run_cli("install", "civitai:501@601")
    assert res.exit_code != 0 and res.stderr.count("Error:") == 1
    assert "wrong-SECRET-token-123" not in res.output
    _nothing_registered(run_cli)


def test_hostile_file_name_lands_inside_the_store(civ, run_cli, sdhub_home: Path, tmp_path: Path) -> None:
    res = run_cli("install", "civitai:502@602", "--json")
    assert res.exit_code == 0, res.output
    path = Path(json.loads(res.stdout)[0]["record"]["path"]).resolve()
    assert sdhub_home.resolve() in path.parents or Path(os.environ.get("SDHUB_STORE", sdhub_home)).resolve() in path.parents
    assert ".." not in path.name and not list(tmp_path.glob("escape*"))

"""A plugin source that never answers (issue 18): `search` and `lookup` give it its time budget
(SDHUB_SOURCE_TIMEOUT seconds; lookups get that per 100 hashes), then report it as one error while
the other sources' answers are still shown, and the command ends instead of hanging.

The plugin is a real installed distribution loaded through its entry point, and sdhub runs in a child
process, so a hang that got through would fail the test rather than stall the suite.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from adversarial_proc import run_sdhub
from plugin_dists import make_distribution
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401
from source_helpers import env_for, sdxl_lora_bytes

SLEEPY = '''
import time
from hub import hookimpl
from hub.sources.protocol import Source


class Sleepy(Source):
    name = "sleepy"

    def plan(self, ctx, ref):
        raise NotImplementedError

    def search(self, ctx, query):
        time.sleep(3600)

    def lookup_hashes(self, ctx, shas):
        time.sleep(3600)


@hookimpl
def register_sources(register):
    register(Sleepy())
'''


@pytest.fixture
def sleepy_env(extra_site: Path, fake_civitai, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    make_distribution(extra_site, "sdhubadv_sleepy", SLEEPY)
    fake_civitai.add(CModel(1401, "Awake LoRA", "LORA", versions=[
        CVersion(1501, "v1", "SDXL 1.0", files=[CFile(1601, "awake.safetensors", sdxl_lora_bytes(tmp_path, seed=77))])]))
    return {"PYTHONPATH": str(extra_site), "SDHUB_SOURCE_TIMEOUT": "2", **env_for(civitai=fake_civitai)}


@pytest.mark.timeout(120)
def test_search_cuts_off_a_hanging_source_and_shows_the_others(sleepy_env: dict[str, str]) -> None:
    t0 = time.monotonic()
    res = run_sdhub("search", "awake", "--source", "sleepy", "--source", "civitai", "--json", env=sleepy_env, timeout=60)
    took = time.monotonic() - t0
    assert "Traceback" not in res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert "no answer" in report["errors"]["sleepy"] and "2 s" in report["errors"]["sleepy"]
    assert "SDHUB_SOURCE_TIMEOUT" in report["errors"]["sleepy"]
    assert any("Awake" in (r.get("name") or "") for r in report["results"]), report["results"]
    assert took < 30, took


@pytest.mark.timeout(120)
def test_lookup_cuts_off_a_hanging_source(sleepy_env: dict[str, str], tmp_path: Path) -> None:
    model = write_safetensors(tmp_path / "mine.safetensors", SDXL_LORA_KOHYA, fill=b"\x31")
    t0 = time.monotonic()
    res = run_sdhub("lookup", model, "--source", "sleepy", "--json", env=sleepy_env, timeout=60)
    assert time.monotonic() - t0 < 30
    assert "Traceback" not in res.stdout + res.stderr and res.returncode == 1
    [entry] = json.loads(res.stdout)
    assert entry["found"] == [] and "sleepy" in entry["error"] and "no answer" in entry["error"]


def test_source_timeout_setting_is_validated(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDHUB_SOURCE_TIMEOUT", "soon")
    res = run_cli("search", "x")
    assert res.exit_code == 1 and res.stderr.startswith("Error: source_timeout must be a whole number")

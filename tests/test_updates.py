"""``sdhub updates`` and ``sdhub install --upgrade`` against the fake Civitai, LiblibAI and Hugging Face.

Everything goes over real HTTP on 127.0.0.1; request counts are read from the fake servers' logs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hub.api import Hub
from hub.catalogue.records import SourceInfo
from hub.errors import BadReferenceError
from hub.sources.install import install
from hub.sources.updates import UpdateCache, age_text
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401
from tests.fake_hf import HFRepo, fake_hub  # noqa: F401
from tests.fake_liblib import LModel, LVersion, fake_liblib  # noqa: F401
from tests.source_helpers import env_for, sdxl_lora_bytes

LIB_M, LIB_V1, LIB_V2, LIB_V3 = "a" * 32, "b" * 32, "c" * 32, "d" * 32
OLD_COMMIT, NEW_COMMIT = "1" * 40, "2" * 40


@pytest.fixture
def world(fake_civitai, fake_liblib, fake_hub, tmp_path, monkeypatch):
    """A model with three versions at each source (the newest first, as the sources list them)."""
    v1, v2, v3 = (sdxl_lora_bytes(tmp_path, seed=s) for s in (21, 22, 23))
    fake_civitai.add(CModel(501, "Ink Style", "LORA", versions=[
        CVersion(603, "v3.0", "SDXL 1.0", files=[CFile(703, "ink-v3.safetensors", v3)],
                 published_at="2026-11-20T08:00:00.000Z", early_access_deadline="2099-01-01T00:00:00.000Z"),
        CVersion(602, "v2.0", "SDXL 1.0", files=[CFile(702, "ink-v2.safetensors", v2)],
                 published_at="2026-10-02T09:16:12.062Z"),
        CVersion(601, "v1.0", "SDXL 1.0", files=[CFile(701, "ink-v1.safetensors", v1)],
                 published_at="2026-01-05T10:00:00.000Z"),
    ]))
    fake_civitai.add(CModel(502, "Steady", "LORA", versions=[
        CVersion(611, "only", "SDXL 1.0", files=[CFile(711, "steady.safetensors", sdxl_lora_bytes(tmp_path, 24))]),
    ]))
    fake_liblib.add(LModel(LIB_M, "水墨", 5, versions=[
        LVersion(LIB_V3, "v3 VIP", None, vip=True, id=3),
        LVersion(LIB_V2, "v2", sdxl_lora_bytes(tmp_path, 25), filename="shuimo-v2.safetensors", id=2),
        LVersion(LIB_V1, "v1", sdxl_lora_bytes(tmp_path, 26), filename="shuimo-v1.safetensors", id=1),
    ]))
    fake_hub.app.add(HFRepo("acme/ink", {"ink.safetensors": v1, "other.safetensors": v2}, commit=OLD_COMMIT,
                            tags=["lora", "stable-diffusion-xl"]))
    env = env_for(civitai=fake_civitai, liblib=fake_liblib, hf=fake_hub.endpoints)
    env.update({"SDHUB_RETRY_MAX_WAIT": "0.02", "SDHUB_RETRY_ATTEMPTS": "2"})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {"civitai": fake_civitai, "liblib": fake_liblib, "hf": fake_hub, "v1": v1, "v2": v2, "v3": v3,
            "tmp": tmp_path}


@pytest.fixture
def hub(world):
    h = Hub()
    yield h
    h.close()


def model_requests(fake) -> int:  # type: ignore[no-untyped-def]
    return len(fake.api.requests("/api/v1/models/"))


def by_source(report, source: str):  # type: ignore[no-untyped-def]
    return [r for r in report.rows if r.source == source]


# -- Civitai ---------------------------------------------------------------------------------------


def test_civitai_newer_versions_are_listed_newest_first_with_dates_and_early_access(hub, world):
    old = install(hub, "civitai:501@601").record
    install(hub, "civitai:502@611")
    report = hub.updates()
    ink, steady = sorted(by_source(report, "civitai"), key=lambda r: r.model_id)
    assert (ink.record_id, ink.status, ink.installed_version, ink.newest_version) == (old.id, "update", "601", "603")
    assert ink.ref == "civitai:501@603" and ink.published_at == "2026-11-20T08:00:00.000Z"
    assert ink.early_access_until == "2099-01-01T00:00:00Z"
    assert [(v["version"], v["early_access_until"], v["published_at"]) for v in ink.newer] == [
        ("603", "2099-01-01T00:00:00Z", "2026-11-20T08:00:00.000Z"), ("602", None, "2026-10-02T09:16:12.062Z")]
    assert steady.status == "current" and steady.ref == "civitai:502@611" and not report.errors


def test_500_installed_files_from_a_few_models_cost_one_request_per_model(hub, world):
    fake = world["civitai"]
    for mid in range(900, 905):  # five models, two versions each
        fake.add(CModel(mid, f"Pack {mid}", "LORA", versions=[
            CVersion(mid * 10 + 2, "v2", files=[CFile(mid * 10 + 2, f"p{mid}-v2.safetensors", b"new" * 50)]),
            CVersion(mid * 10 + 1, "v1", files=[CFile(mid * 10 + 1, f"p{mid}-v1.safetensors", b"old" * 50)]),
        ]))
    with hub.catalogue.transaction() as s:  # 500 catalogued files, 100 per model, all from v1
        for i in range(500):
            mid = 900 + i % 5
            row = hub.catalogue.upsert_file(s, path=f"/models/pack/{i}.safetensors", values={
                "name": f"{i}.safetensors", "format": "safetensors", "size": 150, "mtime_ns": 0, "device": 0,
                "inode": i, "sha256": f"{i:064x}"})
            hub.catalogue.link_source(s, row, SourceInfo(source="civitai", model_id=str(mid),
                                                         version_id=str(mid * 10 + 1), file_id=str(mid * 10 + 1)))
    before = model_requests(fake)
    report = hub.updates()
    assert model_requests(fake) - before == 5
    assert len(report.rows) == 500 and {r.status for r in report.rows} == {"update"}
    assert {r.ref for r in report.rows} == {f"civitai:{m}@{m * 10 + 2}" for m in range(900, 905)}
    offline = hub.updates(offline=True)  # the second look asks nobody
    assert model_requests(fake) - before == 5
    assert all(r.from_cache and r.status == "update" for r in offline.rows)


def test_retry_after_is_honoured(hub, world, monkeypatch):
    install(hub, "civitai:502@611")
    monkeypatch.setenv("SDHUB_RETRY_MAX_WAIT", "5")
    fake = world["civitai"]
    fake.model_429, fake.retry_after = 1, "2"
    before = model_requests(fake)
    started = time.monotonic()
    with Hub() as h:
        report = h.updates()
    assert time.monotonic() - started >= 1.9  # it waited what Retry-After asked, then asked again
    assert model_requests(fake) - before == 2 and [r.status for r in report.rows] == ["current"]


def test_a_source_that_is_down_is_reported_while_the_others_answer(hub, world):
    install(hub, "civitai:501@601")
    install(hub, "civitai:502@611")
    install(hub, "hf:acme/ink/ink.safetensors")
    fake = world["civitai"]
    fake.model_fail_status = 503
    before = model_requests(fake)
    report = hub.updates()
    # Two tries for the first model (SDHUB_RETRY_ATTEMPTS=2), then the second is not asked at all.
    assert model_requests(fake) - before == 2
    civitai = by_source(report, "civitai")
    assert [r.status for r in civitai] == ["error", "error"] and "503" in report.errors["civitai"]
    [hf] = by_source(report, "hf")
    assert hf.status == "current" and "hf" not in report.errors and not report.all_failed


def test_down_source_falls_back_to_its_cached_answer_with_its_age(hub, world):
    install(hub, "civitai:501@601")
    hub.updates()
    world["civitai"].model_fail_status = 503
    [row] = hub.updates().rows
    assert row.status == "update" and row.from_cache and "503" in (row.error or "")
    assert row.checked_at is not None and time.time() - row.checked_at < 60


def test_upgrade_installs_the_newest_downloadable_version_beside_the_old_one(hub, world):
    world["civitai"].models[501].versions.pop(0)  # no early-access v3: v2 is the newest
    old = install(hub, "civitai:501@601").record
    result = hub.install("civitai:501", upgrade=True)
    assert result.status == "installed" and result.record.sources[0].version_id == "602"
    assert Path(result.path).read_bytes() == world["v2"]
    assert Path(old.path).read_bytes() == world["v1"]  # the old version stays
    assert result.upgraded_from == [old.path]
    again = hub.install(f"#{old.id}", upgrade=True)
    assert again.status == "up-to-date" and again.path == result.path


def test_upgrade_when_the_newest_is_early_access_tries_and_says_so(hub, world, run_cli):
    install(hub, "civitai:501@601")
    result = run_cli("install", "--upgrade", "civitai:501@601")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Early Access" in errors[0]


# -- LiblibAI and Hugging Face --------------------------------------------------------------------


def test_liblib_version_list_marks_vip_versions(hub, world):
    install(hub, f"liblib:{LIB_M}@{LIB_V1}")
    [row] = hub.updates().rows
    assert (row.status, row.installed_version, row.newest_version) == ("update", LIB_V1, LIB_V3)
    assert row.downloadable is False
    assert [(v["version"], v["downloadable"]) for v in row.newer] == [(LIB_V3, False), (LIB_V2, True)]
    result = hub.install(f"liblib:{LIB_M}", upgrade=True)  # the VIP version cannot be fetched: v2 is
    assert result.status == "installed" and result.record.sources[0].version_id == LIB_V2
    assert any("no downloadable file" in w for w in result.warnings)


def test_hf_compares_the_branch_commit_from_one_head_per_repository(hub, world):
    install(hub, "hf:acme/ink/ink.safetensors")
    install(hub, "hf:acme/ink/other.safetensors")
    hf = world["hf"]
    heads = lambda: len([r for r in hf.primary.api.requests() if r.method == "HEAD"])  # noqa: E731
    before = heads()
    assert {r.status for r in hub.updates().rows} == {"current"}
    assert heads() - before == 1  # the branch still points at the installed commit: one HEAD told both
    repo = hf.app.repos["acme/ink"]
    repo.commit, repo.files["ink.safetensors"] = NEW_COMMIT, world["v3"]  # other.safetensors unchanged
    before = heads()
    rows = {Path(r.path).name: r for r in hub.updates().rows}
    assert heads() - before == 2 and not [r for r in hf.primary.api.requests() if r.method == "GET"
                                         and "/resolve/" in r.path]
    ink, other = rows["ink.safetensors"], rows["other.safetensors"]
    assert (ink.status, ink.newest_version, ink.ref) == ("update", NEW_COMMIT, f"hf:acme/ink/ink.safetensors@{NEW_COMMIT}")
    assert other.status == "current" and "the same there" in (other.note or "")
    result = hub.install("hf:acme/ink/ink.safetensors", upgrade=True)
    assert result.status == "installed" and Path(result.path).read_bytes() == world["v3"]
    assert result.upgraded_from and Path(result.upgraded_from[0]).read_bytes() == world["v1"]


# -- the command line -------------------------------------------------------------------------------


def test_cli_table_json_and_offline(hub, world, run_cli):
    install(hub, "civitai:501@601")
    text = run_cli("updates")
    assert text.exit_code == 0
    assert "v1.0 (601)" in text.stdout and "v3.0 (603)" in text.stdout and "civitai:501@603" in text.stdout
    assert "early access until 2099-01-01 00:00 UTC" in text.stdout and "2026-11-20" in text.stdout
    assert "sdhub install --upgrade '#1'" in text.stderr
    data = json.loads(run_cli("updates", "--json").stdout)
    [row] = data["updates"]
    assert row["update_available"] and row["installed_version"] == "601" and row["newest_version"] == "603"
    assert row["ref"] == "civitai:501@603" and row["early_access_until"] == "2099-01-01T00:00:00Z"
    assert data["errors"] == {} and data["offline"] is False
    before = model_requests(world["civitai"])
    offline = run_cli("updates", "--offline")
    assert offline.exit_code == 0 and model_requests(world["civitai"]) == before
    assert "civitai:501@603" in offline.stdout and "offline: answers from the cache: civitai" in offline.stderr
    assert json.loads(run_cli("updates", "--offline", "--json").stdout)["cache_age_s"]["civitai"] >= 0


def test_cli_offline_without_a_cache_is_one_error(hub, world, run_cli):
    install(hub, "civitai:501@601")
    result = run_cli("updates", "--offline")
    assert result.exit_code == 1 and model_requests(world["civitai"]) == 1  # only the install asked
    assert result.stderr.strip().splitlines()[-1].startswith("Error: no cached answers yet")


def test_cli_refs_narrow_the_check_and_bad_ones_are_one_error(hub, world, run_cli):
    install(hub, "civitai:501@601")
    install(hub, "civitai:502@611")
    data = json.loads(run_cli("updates", "civitai:502", "--json").stdout)
    assert [r["model_id"] for r in data["updates"]] == ["502"]
    for bad, says in (("urn:air:sdxl:lora:civitai:abc@2", "the AIR id 'abc'"),
                      ("civitai:999", "nothing installed from civitai:999")):
        result = run_cli("updates", bad)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(errors) == 1 and errors[0].startswith("Error:") and says in errors[0]


def test_cache_file_keeps_answers_with_their_time(tmp_path):
    cache = UpdateCache(tmp_path / "updates.json", clock=lambda: 1000.0)
    answers = cache.answers({"1": "k:1"}, lambda ids: ({"1": {"v": 1}}, {}))
    assert answers["1"].data == {"v": 1} and answers["1"].fetched_at == 1000.0 and not answers["1"].from_cache
    cache.save()
    offline = UpdateCache(tmp_path / "updates.json", offline=True).answers({"1": "k:1", "2": "k:2"},
                                                                           lambda ids: pytest.fail("asked"))
    assert offline["1"].from_cache and offline["1"].fetched_at == 1000.0 and offline["2"].error
    assert (age_text(30), age_text(600), age_text(7500), age_text(3 * 86400)) == ("30 s", "10 min", "2 h 5 min",
                                                                                    "3 days")


def test_malformed_air_names_the_wrong_part():
    from hub.sources.refs import parse

    for text, says in (("urn:air:sdxl:lora:civitai", "the AIR id is missing"),
                       ("urn:air:sdxl:lora:civitai:1@", "the AIR version (after '@') is empty"),
                       ("urn:air:sdxl:lora:huggingface:", "the AIR id is missing")):
        with pytest.raises(BadReferenceError, match=None) as exc:
            parse(text)
        assert says in str(exc.value) and "\n" not in str(exc.value)


# -- plugin sources ---------------------------------------------------------------------------------


def _link(hub: Hub, source: str, model_id: str, n: int) -> None:
    with hub.catalogue.transaction() as s:
        row = hub.catalogue.upsert_file(s, path=f"/models/{source}-{n}.safetensors", values={
            "name": f"{source}-{n}.safetensors", "format": "safetensors", "size": 1, "mtime_ns": 0, "device": 0,
            "inode": 10_000 + n, "sha256": f"{10_000 + n:064x}"})
        hub.catalogue.link_source(s, row, SourceInfo(source=source, model_id=model_id, version_id="1"))


def test_plugin_sources_without_updates_or_failing_do_not_hide_the_others(hub, world, plugin_registration):
    from hub import hookimpl
    from hub.sources import Source
    from hub.sources.updates import UpdateInfo, error_row, fetch_each, group_by_model

    class Quiet(Source):  # implements no updates_for
        name = "quiet"

        def search(self, ctx, query):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def plan(self, ctx, ref):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Broken(Quiet):
        name = "broken"

        def updates_for(self, ctx, installed, cache):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    class Shelf(Quiet):  # the docs/plugins.md example, against the fake Civitai's model endpoint
        name = "shelf"

        def updates_for(self, ctx, installed, cache):  # type: ignore[no-untyped-def]
            groups = group_by_model(installed)
            url = world["civitai"].api.url
            fetch = lambda ids: fetch_each(ids, lambda mid: ctx.http.json("GET", f"{url}/api/v1/models/{mid}"))  # noqa: E731
            answers = cache.answers({mid: f"shelf:{mid}" for mid in groups}, fetch)
            rows = []
            for mid, items in groups.items():
                answer = answers[mid]
                for item in items:
                    if not answer.ok:
                        rows.append(error_row(item, "shelf", answer.error))
                        continue
                    newest = str(answer.data["modelVersions"][0]["id"])
                    rows.append(UpdateInfo(source="shelf", record_id=item.record_id, path=item.path, model_id=mid,
                                           installed_version=item.info.version_id, newest_version=newest,
                                           ref=f"shelf:{mid}@{newest}", status="update",
                                           newer=[{"version": newest, "ref": f"shelf:{mid}@{newest}"}],
                                           checked_at=answer.fetched_at, from_cache=answer.from_cache))
            return rows

    class Plugin:
        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            for source in (Quiet(), Broken(), Shelf()):
                register(source)

    plugin_registration(Plugin(), "update-test-sources")
    install(hub, "civitai:502@611")
    for n, name in enumerate(("quiet", "broken", "shelf")):
        _link(hub, name, "501", n)
    report = hub.updates()
    status = {r.source: r.status for r in report.rows}
    assert status == {"civitai": "current", "quiet": "unsupported", "broken": "error", "shelf": "update"}
    assert "boom" in report.errors["broken"] and set(report.errors) == {"broken"}
    assert [r.ref for r in report.rows if r.source == "shelf"] == ["shelf:501@603"]


def test_civitai_upgrade_picks_the_file_playing_the_installed_files_part(hub, world):
    fake = world["civitai"]
    vae1, vae2 = b"vae-one" * 40, b"vae-two" * 40
    fake.add(CModel(520, "Twin", "Checkpoint", versions=[
        CVersion(622, "v2", files=[CFile(7221, "twin-v2.safetensors", world["v2"]),
                                   CFile(7222, "twin-v2-vae.safetensors", vae2, type="VAE", primary=False)]),
        CVersion(621, "v1", files=[CFile(7211, "twin-v1.safetensors", world["v1"]),
                                   CFile(7212, "twin-v1-vae.safetensors", vae1, type="VAE", primary=False)]),
    ]))
    vae = install(hub, "civitai:520@621/7212").record
    [row] = hub.updates([f"#{vae.id}"]).rows
    assert row.status == "update" and row.ref == "civitai:520@622/7222"
    before = model_requests(fake)
    result = hub.install(f"#{vae.id}", upgrade=True)
    assert result.status == "installed" and Path(result.path).read_bytes() == vae2
    assert model_requests(fake) - before == 1  # the plan reused the model the updates check fetched


def test_an_unknown_air_ecosystem_in_updates_is_a_warning(hub, world, run_cli):
    install(hub, "civitai:502@611")
    result = run_cli("updates", "urn:air:zimage:lora:civitai:502@611")
    assert result.exit_code == 0 and "up to date" in result.stdout
    assert "Warning: AIR ecosystem 'zimage' is not one sdhub knows" in result.stderr

"""Install/resolve/lookup orchestration and the CLI, end to end against the fake sources and a real Hub."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path

import pytest

from hub.api import Hub
from hub.sources.download import CallbackProgress
from hub.errors import AuthRequiredError, HashMismatchError, RemoteNotFoundError
from hub.sources.install import install, lookup, resolve, search
from tests.fake_civitai import CFile, CModel, CVersion, civitai_hashes, fake_civitai  # noqa: F401
from tests.fake_http import json_reply
from tests.fake_hf import HFRepo, fake_hub  # noqa: F401
from tests.fake_liblib import LModel, LVersion, fake_liblib  # noqa: F401
from tests.source_helpers import env_for, make_ctx, sdxl_lora_bytes

LIB_M, LIB_V = "a" * 32, "b" * 32


@pytest.fixture
def world(fake_civitai, fake_liblib, fake_hub, tmp_path, monkeypatch):
    """Three fake sources with overlapping content, and the environment pointing sdhub at them."""
    lora = sdxl_lora_bytes(tmp_path, seed=11)
    other = sdxl_lora_bytes(tmp_path, seed=12)
    fake_civitai.add(CModel(1001, "Pixel Art XL", "LORA", versions=[
        CVersion(2002, "v1.1", "SDXL 1.0", trained_words=["pixel art"],
                 files=[CFile(3003, "pixel-art-xl.safetensors", lora)]),
    ]))
    fake_civitai.add(CModel(1007, "Mislabelled", "LORA", versions=[
        CVersion(2070, "v1", "SD 1.5", files=[CFile(3070, "mislabelled.safetensors", other)]),
    ]))
    fake_civitai.add(CModel(1008, "Corrupt", "LORA", versions=[
        CVersion(2080, "v1", "SDXL 1.0", files=[CFile(3080, "corrupt.safetensors", b"corrupt" * 500,
                                                       published_sha256="ab" * 32)]),
    ]))
    fake_civitai.add(CModel(1009, "Sneaky", "LORA", versions=[
        CVersion(2090, "v1", "SDXL 1.0", files=[CFile(3090, "../../sneaky.safetensors", b"sneaky" * 300)]),
    ]))
    fake_civitai.add(CModel(1010, "Gated", "Checkpoint", versions=[
        CVersion(2100, "v1", "SD 1.5", require_auth=True, files=[CFile(3100, "gated.safetensors", b"g" * 100)]),
    ]))
    fake_civitai.add(CModel(1011, "Big", "LORA", versions=[
        CVersion(2110, "v1", "SDXL 1.0", files=[CFile(3110, "big.safetensors", bytes(range(256)) * 8000)]),
    ]))
    fake_liblib.add(LModel(LIB_M, "Ink", 5, versions=[LVersion(LIB_V, "v1", sdxl_lora_bytes(tmp_path, 13),
                                                                 filename="ink.safetensors")]))
    fake_hub.app.add(HFRepo("acme/pixel", {"pixel-art-xl.safetensors": lora, "solo.safetensors": other},
                            commit="d" * 40, tags=["lora", "stable-diffusion-xl"]))
    env = env_for(civitai=fake_civitai, liblib=fake_liblib, hf=fake_hub.endpoints)
    env.update({"SDHUB_RETRY_MAX_WAIT": "0.02", "SDHUB_RETRY_ATTEMPTS": "3"})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {"civitai": fake_civitai, "liblib": fake_liblib, "hf": fake_hub, "lora": lora, "other": other}


@pytest.fixture
def hub(world):
    h = Hub()
    yield h
    h.close()


def store(h: Hub) -> Path:
    return Path(h.settings.store)


def test_install_civitai_verifies_places_and_registers(hub, world):
    result = install(hub, "civitai:1001")
    assert result.status == "installed"
    rec = result.record
    assert Path(rec.path) == store(hub) / "lora" / "sdxl" / "pixel-art-xl.safetensors"
    assert Path(rec.path).read_bytes() == world["lora"]
    assert rec.sha256 == hashlib.sha256(world["lora"]).hexdigest()
    [src] = rec.sources
    assert (src.source, src.model_id, src.version_id, src.trained_words) == ("civitai", "1001", "2002", ["pixel art"])
    assert src.published_hashes["sha256"] == rec.sha256
    assert result.served_by == f"127.0.0.1:{world['civitai'].storage.port}"
    assert not list((store(hub) / ".incoming").glob("*.part"))


def test_installed_reference_resolves_with_no_network(hub, world):
    install(hub, "civitai:1001@2002")
    world["civitai"].stop()  # nothing answers any more
    for ref in ("civitai:1001@2002", "civitai:1001", "urn:air:sdxl:lora:civitai:1001@2002",
                "https://civitai.com/models/1001?modelVersionId=2002", f"sha256:{hashlib.sha256(world['lora']).hexdigest()}",
                hashlib.sha256(world["lora"]).hexdigest()[:10]):
        model = resolve(hub, ref)
        assert model.path == store(hub) / "lora" / "sdxl" / "pixel-art-xl.safetensors", ref
        assert model.installed_now is False
    assert install(hub, "civitai:1001@2002").status == "already-installed"


def test_each_file_of_a_version_answers_only_its_own_reference(hub, world, tmp_path):
    model, vae = sdxl_lora_bytes(tmp_path, seed=31), b"vae bytes" * 300
    world["civitai"].add(CModel(1050, "Two files", "Checkpoint", versions=[CVersion(2500, "v1", "SDXL 1.0", files=[
        CFile(3500, "two.safetensors", model),
        CFile(3501, "two-vae.safetensors", vae, type="VAE", primary=False),
    ])]))
    vae_url = "https://civitai.com/api/download/models/2500?type=VAE&format=SafeTensor"
    assert Path(install(hub, "civitai:1050@2500/3501").path).name == "two-vae.safetensors"
    primary = install(hub, "civitai:1050@2500")
    assert primary.status == "installed" and Path(primary.path).name == "two.safetensors"
    world["civitai"].stop()  # from here on, the catalogue alone must answer, each reference with its file
    for ref, name in (("civitai:1050@2500", "two.safetensors"), ("civitai:@2500", "two.safetensors"),
                      ("civitai:1050@2500/3501", "two-vae.safetensors"), (vae_url, "two-vae.safetensors"),
                      ("https://civitai.com/api/download/models/2500?fileId=3501", "two-vae.safetensors")):
        assert resolve(hub, ref).path.name == name, ref


def test_air_with_a_file_id_installs_exactly_that_file(hub, world, tmp_path, run_cli):
    """The AIR guide's own example: model 827184, version 2514310, file 2402203 (one of several)."""
    fp16, fp32, vae = (sdxl_lora_bytes(tmp_path, seed=s) for s in (51, 52, 53))
    world["civitai"].add(CModel(827184, "WAI-illustrious-SDXL", "Checkpoint", versions=[
        CVersion(2514310, "v16.0", "Illustrious", files=[
            CFile(2402200, "waiIllustriousSDXL_v160.safetensors", fp16),
            CFile(2402203, "waiIllustriousSDXL_v160_fp32.safetensors", fp32, primary=False,
                  metadata={"format": "SafeTensor", "size": "full", "fp": "fp32"}),
            CFile(2402204, "waiIllustriousSDXL_v160_vae.safetensors", vae, type="VAE", primary=False),
        ])]))
    air = "urn:air:sdxl:checkpoint:civitai:827184@2514310+2402203"
    dry = run_cli("install", "--dry-run", "--json", air)
    assert dry.exit_code == 0, dry.output
    assert "fileId=2402203" in dry.stdout
    result = install(hub, air)
    assert Path(result.path).name == "waiIllustriousSDXL_v160_fp32.safetensors"
    assert Path(result.path).read_bytes() == fp32
    assert result.record.sources[0].file_id == "2402203"
    for other in ("air:sdxl:checkpoint:civitai:827184@2514310+2402204", "sdxl:checkpoint:civitai:827184@2514310"):
        assert Path(install(hub, other).path).read_bytes() in (vae, fp16)
    assert Path(resolve(hub, "sdxl:checkpoint:civitai:827184@2514310").path).read_bytes() == fp16


def test_unknown_air_type_installs_with_a_warning(world, run_cli):
    result = run_cli("install", "--dry-run", "urn:air:sdxl:styleblock:civitai:1001@2002")
    assert result.exit_code == 0, result.output
    assert "Warning: AIR type 'styleblock' is not one sdhub knows" in result.stderr


def test_hf_repo_reference_answers_only_with_its_weights_file(hub, world, tmp_path):
    world["hf"].app.add(HFRepo("acme/one", {"one.safetensors": sdxl_lora_bytes(tmp_path, seed=41), "README.md": b"# one\n",
                                            "sub/one.safetensors": sdxl_lora_bytes(tmp_path, seed=42)}, commit="e" * 40,
                                tags=["lora", "stable-diffusion-xl"]))
    readme = install(hub, "hf:acme/one/README.md")
    assert readme.status == "installed"
    # not a model: filed as unknown, not among the SDXL LoRAs the repository's tags claim
    assert Path(readme.path).relative_to(hub.settings.store).parts == ("unknown", "unknown", "README.md")
    assert install(hub, "hf:acme/one/sub/one.safetensors").status == "installed"
    top = install(hub, "hf:acme/one")  # the repository's top-level weights file: not the README, not sub/
    assert top.status == "installed" and top.record.sources[0].file_id == "one.safetensors"
    world["hf"].primary.go_down()
    world["hf"].mirror.go_down()
    for ref, path_in_repo in (("hf:acme/one", "one.safetensors"), ("hf:acme/one/one.safetensors", "one.safetensors"),
                              ("hf:acme/one/sub/one.safetensors", "sub/one.safetensors"), ("hf:acme/one/README.md", "README.md")):
        assert resolve(hub, ref).record.sources[0].file_id == path_in_repo, ref


def test_resolve_installs_on_a_miss_and_hub_methods_delegate(hub, world):
    model = hub.resolve("civitai:@2002")
    assert model.installed_now and Path(model).exists()
    assert hub.resolve("civitai:@2002").installed_now is False


def test_same_sha256_from_another_source_is_never_downloaded_twice(hub, world):
    first = install(hub, "civitai:1001")
    cdn_before = len(world["hf"].primary.cdn.requests())
    second = install(hub, "hf:acme/pixel/pixel-art-xl.safetensors")
    assert second.status == "already-installed" and second.path == first.path
    assert len(world["hf"].primary.cdn.requests()) == cdn_before  # no file GET at all
    assert sorted(s.source for s in second.record.sources) == ["civitai", "hf"]
    assert len(hub.list()) == 1


def test_hash_mismatch_is_quarantined_and_catalogue_untouched(hub, world):
    with pytest.raises(HashMismatchError, match="quarantined at .*corrupt.safetensors"):
        install(hub, "civitai:1008")
    assert hub.list() == []
    quarantined = list((store(hub) / ".quarantine").glob("*corrupt.safetensors"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == b"corrupt" * 500
    note = json.loads(quarantined[0].with_name(quarantined[0].name + ".json").read_text())
    assert note["ref"].startswith("civitai:1008") and "sha256" in note["problems"][0]
    assert not list(store(hub).rglob("lora/*/corrupt.safetensors"))


def test_crc32_in_either_byte_order_verifies_and_a_wrong_one_quarantines(hub, world, tmp_path):
    import zlib

    good = sdxl_lora_bytes(tmp_path, seed=21)
    bad = sdxl_lora_bytes(tmp_path, seed=22)
    world["civitai"].add(CModel(1040, "zlib order", "LORA", versions=[CVersion(2400, "v1", "SDXL 1.0", files=[
        CFile(3400, "zlib-order.safetensors", good, hash_overrides={"CRC32": f"{zlib.crc32(good):08X}"})])]))
    world["civitai"].add(CModel(1041, "wrong crc", "LORA", versions=[CVersion(2410, "v1", "SDXL 1.0", files=[
        CFile(3410, "wrong-crc.safetensors", bad, hash_overrides={"CRC32": "DEADBEEF"})])]))
    assert install(hub, "civitai:1040").status == "installed"
    with pytest.raises(HashMismatchError, match="crc32 is .* but civitai publishes deadbeef"):
        install(hub, "civitai:1041")
    assert [Path(r.path).name for r in hub.list()] == ["zlib-order.safetensors"]


def test_malicious_file_name_stays_in_the_store(hub, world):
    result = install(hub, "civitai:1009")
    assert Path(result.path).name == "sneaky.safetensors"
    assert store(hub) in Path(result.path).parents
    assert not (store(hub).parent / "sneaky.safetensors").exists()


def test_family_claimed_by_source_is_recorded(hub, world):
    result = install(hub, "civitai:1007")
    src = result.record.sources[0]
    assert src.claimed_family == "sd1" and src.base_model == "SD 1.5"


def test_family_mismatch_is_flagged(hub, world):
    result = install(hub, "civitai:1007")  # an SDXL LoRA that Civitai lists as SD 1.5
    assert result.record.family == "sdxl"
    assert result.family_mismatch and "SD 1.5" in result.family_mismatch
    assert any(w.startswith("family mismatch") for w in result.warnings)


def test_dry_run_downloads_nothing_and_shows_no_token(hub, world, monkeypatch):
    monkeypatch.setenv("CIVITAI_API_TOKEN", "good-token")
    h = Hub()
    result = install(h, "civitai:1010", dry_run=True)
    h.close()
    assert result.status == "planned"
    d = result.to_dict()
    assert d["plan"]["size"] == 100 and d["plan"]["filename"] == "gated.safetensors" and d["plan"]["sends_token"]
    assert "good-token" not in json.dumps(d)
    assert world["civitai"].storage.requests() == []
    assert not world["civitai"].api.requests("/api/download")


def test_auth_errors_reach_the_user(hub, world):
    with pytest.raises(AuthRequiredError, match="CIVITAI_API_TOKEN"):
        install(hub, "civitai:1010")
    assert hub.list() == []


def test_two_installs_of_the_same_file_download_once(world, tmp_path):
    served = world["civitai"].served[3110]
    served.throttle_bps = 4_000_000  # ~0.5 s, so the second really has to wait
    with Hub() as h:
        h.catalogue.count()  # create the database first: this test is about the download lock
    results, errors = [], []

    def run() -> None:
        h = Hub()
        try:
            results.append(install(h, "civitai:1011"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            h.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert sorted(r.status for r in results) == ["already-installed", "installed"]
    assert len({r.path for r in results}) == 1
    assert len(world["civitai"].storage.requests("/files/3110")) == 1


def test_ctrl_c_leaves_resumable_part_and_nothing_registered(hub, world):
    data = world["civitai"].served[3110].data

    def interrupt(done: int, total: int | None) -> None:
        if done > 600_000:
            raise KeyboardInterrupt

    ctx = make_ctx()
    ctx.download_options.chunk_size = 100_000
    ctx.progress = CallbackProgress(interrupt)
    with pytest.raises(KeyboardInterrupt):
        install(hub, "civitai:1011", ctx=ctx)
    assert hub.list() == []
    part = store(hub) / ".incoming" / "big.safetensors.part"
    kept = part.stat().st_size
    assert 0 < kept < len(data)
    result = install(hub, "civitai:1011")
    assert result.status == "installed" and result.resumed_from == kept
    assert world["civitai"].storage.requests("/files/3110")[-1].header("Range") == f"bytes={kept}-"
    assert Path(result.path).read_bytes() == data


def test_store_that_cannot_take_the_file_keeps_the_download_for_the_next_run(world, run_cli):
    with Hub() as h:
        root = store(h)
    root.mkdir(parents=True, exist_ok=True)
    (root / "lora").write_text("a file where the lora/ folder should be")
    res = run_cli("install", "civitai:1001")
    assert res.exit_code == 1 and "could not put pixel-art-xl.safetensors into the store" in res.stderr
    with Hub() as h:
        assert h.list() == []
    incoming = sorted(p.name for p in (root / ".incoming").iterdir())
    assert incoming == ["pixel-art-xl.safetensors.part", "pixel-art-xl.safetensors.part.json"]  # no orphan
    (root / "lora").unlink()
    res = run_cli("install", "civitai:1001", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["status"] == "installed"
    gets = world["civitai"].storage.requests("/files/3003")
    assert len(gets) == 2 and gets[1].header("Range") == f"bytes={len(world['lora'])}-"  # nothing downloaded twice
    assert list((root / ".incoming").iterdir()) == []


def test_install_by_hash_asks_sources_when_not_local(hub, world):
    sha = hashlib.sha256(world["lora"]).hexdigest()
    result = install(hub, f"sha256:{sha}")
    assert result.status == "installed" and result.record.sources[0].source == "civitai"
    autov2 = civitai_hashes(world["other"])["AutoV2"]
    assert install(hub, autov2).record.sources[0].model_id == "1007"
    with pytest.raises(RemoteNotFoundError, match="no source knows this hash"):
        install(hub, "sha256:" + "0" * 64)


def test_install_by_hash_survives_a_crashing_plugin_source(world, monkeypatch, plugin_registration):
    from hub import hookimpl
    from hub.sources.protocol import Source

    class Broken(Source):
        name = "broken"

        def search(self, ctx, query):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def plan(self, ctx, ref):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def plan_for_hash(self, ctx, sha256):  # type: ignore[no-untyped-def]
            raise KeyError("files")

    class Plugin:
        __name__ = "broken-plugin"

        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register(Broken())

    plugin_registration(Plugin(), "broken-plugin")
    monkeypatch.setenv("SDHUB_SOURCES", "broken,civitai,hf,liblib")  # asked first
    with Hub() as h:
        sha = hashlib.sha256(world["lora"]).hexdigest()
        assert install(h, f"sha256:{sha}").record.sources[0].source == "civitai"
        with pytest.raises(RemoteNotFoundError, match="source 'broken' failed in hash lookup: KeyError"):
            install(h, "sha256:" + "0" * 64)


def test_liblib_install_end_to_end(hub, world):
    result = install(hub, f"https://www.liblib.art/modelinfo/{LIB_M}?versionUuid={LIB_V}")
    assert result.status == "installed"
    assert result.record.sources[0].source == "liblib"
    assert Path(result.path).parent == store(hub) / "lora" / "sdxl"


def test_hf_install_primary_down_says_mirror_served(hub, world):
    world["hf"].primary.go_down()
    result = install(hub, "hf:acme/pixel/solo.safetensors")
    assert result.status == "installed"
    assert result.served_by.startswith(world["hf"].mirror.url)
    assert result.record.sources[0].version_id == "d" * 40


def test_lookup_attaches_sources_by_hash(hub, world, tmp_path):
    local = tmp_path / "models"
    local.mkdir()
    (local / "mystery.safetensors").write_bytes(world["lora"])
    (local / "ink-copy.safetensors").write_bytes(world["liblib"].models[LIB_M].versions[0].data)
    (local / "unknown.safetensors").write_bytes(b"nobody knows" * 10)
    results = {Path(r.path).name: r for r in lookup(hub, [local, tmp_path / "missing.safetensors"])}
    assert results["missing.safetensors"].error == "no such file or folder"
    assert [s.source for s in results["mystery.safetensors"].found] == ["civitai"]
    assert [s.source for s in results["ink-copy.safetensors"].found] == ["liblib"]
    assert results["unknown.safetensors"].found == []
    rec = hub.catalogue.by_path(str((local / "mystery.safetensors").resolve()))
    assert rec.sources[0].model_id == "1001"
    assert len(world["civitai"].api.requests("/api/v1/model-versions/by-hash", "POST")) == 1  # one batch


def test_lookup_fills_tags_creator_licence_with_one_models_request_per_model(hub, world, tmp_path, run_cli):
    civ = world["civitai"]
    files = {f"punk-{i}.safetensors": sdxl_lora_bytes(tmp_path, seed=40 + i) for i in range(4)}
    civ.add(CModel(1300, "Punk Styles", "LORA", nsfw=True, tags=["punk", "style"], creator="mohawk",
                   allow_no_credit=False, allow_commercial_use="{Image,RentCivit}", versions=[
                       CVersion(2301, "v2", "SDXL 1.0", files=[CFile(3301, "punk-0.safetensors", files["punk-0.safetensors"]),
                                                               CFile(3302, "punk-1.safetensors", files["punk-1.safetensors"],
                                                                     primary=False)]),
                       CVersion(2300, "v1", "SDXL 1.0", files=[CFile(3300, "punk-2.safetensors", files["punk-2.safetensors"]),
                                                               CFile(3303, "punk-3.safetensors", files["punk-3.safetensors"],
                                                                     primary=False)]),
                   ]))
    local = tmp_path / "local"
    local.mkdir()
    for name, data in files.items():
        (local / name).write_bytes(data)
    (local / "pixel.safetensors").write_bytes(world["lora"])  # another model: its own single request
    results = lookup(hub, [local])
    assert all(r.found for r in results), [(r.path, r.error) for r in results]
    model_gets = [r.path for r in civ.api.requests("/api/v1/models/")]
    assert sorted(model_gets) == ["/api/v1/models/1001", "/api/v1/models/1300"]  # 4 files of 1300: one request
    assert len(civ.api.requests("/api/v1/model-versions/by-hash", "POST")) == 1

    listed = {r["name"]: r for r in json.loads(run_cli("list", "--json").stdout)}
    [src] = listed["punk-3.safetensors"]["sources"]
    assert (src["tags"], src["creator"], src["nsfw"]) == (["punk", "style"], "mohawk", True)
    assert src["license"] == {"allowNoCredit": False, "allowCommercialUse": "{Image,RentCivit}",
                              "allowDerivatives": True, "allowDifferentLicense": False}
    assert listed["pixel.safetensors"]["sources"][0]["creator"] == "tester"
    assert run_cli("list", "--text", "mohawk", "--json").stdout.count('"punk-') == 4  # the creator is searchable


def test_lookup_keeps_the_version_when_the_model_request_fails(hub, world, tmp_path):
    f = tmp_path / "pixel.safetensors"
    f.write_bytes(world["lora"])
    world["civitai"].api.routes.insert(0, ("GET", re.compile(r"/api/v1/models/1001"),
                                           lambda req: json_reply({"error": "boom"}, 500)))
    [res] = lookup(hub, [f])
    assert [(s.model_id, s.version_id, s.tags, s.creator) for s in res.found] == [("1001", "2002", [], None)]


def test_checkpoint_that_is_a_lora_is_flagged_kind_mismatch(world, run_cli, tmp_path):
    lora = sdxl_lora_bytes(tmp_path, seed=60)
    world["civitai"].add(CModel(1400, "Not a checkpoint", "Checkpoint", versions=[
        CVersion(2400, "v1", "SDXL 1.0", files=[CFile(3400, "notckpt.safetensors", lora)])]))
    res = run_cli("install", "civitai:1400", "--json")
    assert res.exit_code == 0, res.output
    [item] = json.loads(res.stdout)
    expected = "civitai says 'Checkpoint' (checkpoint) but the file's header says lora"
    assert item["kind_mismatch"] == expected and item["record"]["kind_mismatch"] == expected
    assert any(w == f"kind mismatch: {expected}" for w in item["warnings"])
    [listed] = [r for r in json.loads(run_cli("list", "--json").stdout) if r["name"] == "notckpt.safetensors"]
    assert listed["kind_mismatch"] == expected and listed["family_mismatch"] is None
    assert json.loads(run_cli("info", "notckpt.safetensors", "--json").stdout)["kind_mismatch"] == expected
    text = run_cli("install", "civitai:1400")
    assert text.exit_code == 0
    # The same contradiction found by lookup of a copy.
    copy = tmp_path / "copy" / "x.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(lora)
    looked = run_cli("lookup", str(copy))
    assert f"kind mismatch: {expected}" in looked.stderr


def test_air_contradicting_the_payload_warns_and_is_flagged(world, run_cli):
    # 1001 is an SDXL LoRA; this AIR calls it an sd1 checkpoint.
    dry = run_cli("install", "--dry-run", "--json", "urn:air:sd1:checkpoint:civitai:1001@2002")
    [planned] = json.loads(dry.stdout)
    warnings = " | ".join(planned["warnings"])
    assert "kind mismatch: the AIR says sd1:checkpoint but Civitai's model 1001 is a LORA" in warnings
    assert "family mismatch: the AIR says sd1:checkpoint but Civitai's version 2002 has base model 'SDXL 1.0'" \
        in warnings
    res = run_cli("install", "--json", "urn:air:sd1:checkpoint:civitai:1001@2002")
    [item] = json.loads(res.stdout)
    assert item["status"] == "installed" and "the AIR says sd1:checkpoint" in item["kind_mismatch"]
    # An AIR that agrees (illustrious and pony are SDXL ecosystems) warns of nothing.
    [ok] = json.loads(run_cli("install", "--dry-run", "--json", "urn:air:pony:lora:civitai:1001@2002").stdout)
    assert not [w for w in ok["warnings"] if "mismatch" in w]


def test_kind_mismatch_rules():
    from hub.api import kind_mismatch
    from hub.catalogue import SourceInfo
    from hub_plugins.civitai import claimed_kind

    assert claimed_kind("Checkpoint", "VAE") == "vae" and claimed_kind("Checkpoint", "Model") == "checkpoint"
    assert claimed_kind("Checkpoint", "Diffusion Model") == "diffusion_model" and claimed_kind("LoCon", None) == "lora"
    src = lambda kind: SourceInfo(source="civitai", model_id="1", model_type="Checkpoint", claimed_kind=kind)  # noqa: E731
    assert kind_mismatch({"kind": "vae"}, src("vae")) is None  # a checkpoint version's VAE file
    assert kind_mismatch({"kind": "diffusion_model"}, src("checkpoint")) is None  # a UNet-only checkpoint
    assert kind_mismatch({"kind": "unknown"}, src("checkpoint")) is None
    assert kind_mismatch({"kind": "lora"}, src("controlnet")) is None  # a kind identification cannot tell
    assert kind_mismatch({"kind": "lora"}, src("checkpoint")) == \
        "civitai says 'Checkpoint' (checkpoint) but the file's header says lora"


def test_search_across_sources_reports_failures_separately(hub, world):
    world["liblib"].site.stop()
    report = search(hub, "pixel")
    assert {r.source for r in report.results} == {"civitai", "hf"}
    assert "liblib" in report.errors


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_install_json_and_repeat(world, run_cli):
    res = run_cli("install", "civitai:1001", "--json")
    assert res.exit_code == 0, res.output
    [item] = json.loads(res.stdout)
    assert item["status"] == "installed" and item["record"]["sources"][0]["model_id"] == "1001"
    again = run_cli("install", "civitai:1001", "-q")
    assert again.exit_code == 0 and again.stdout == ""


def test_cli_bad_reference_is_one_clear_error(world, run_cli):
    res = run_cli("install", "civitai:abc")
    assert res.exit_code == 1
    assert "Civitai model ids are numbers" in res.stderr and "sdhub install --help" in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("Error: ")  # one line; the forms are in --help
    assert "Traceback" not in res.output
    helped = run_cli("install", "--help")
    assert "accepted reference forms" in helped.stdout and "civitai:<modelId>" in helped.stdout


def test_cli_install_many_continues_after_a_failure(world, run_cli):
    res = run_cli("install", "civitai:1010", "civitai:1001", "--json")
    assert res.exit_code == 1
    items = json.loads(res.stdout)
    assert [i["status"] for i in items] == ["failed", "installed"]
    assert items[0]["error_type"] == "AuthRequiredError"


def test_cli_early_access_message(world, run_cli, sdhub_home):
    world["civitai"].add(CModel(1020, "EA", "LORA", versions=[
        CVersion(2200, "v1", "SDXL 1.0", early_access_deadline="2099-03-04T05:06:07.000Z",
                 files=[CFile(3200, "ea.safetensors", b"e" * 10)])]))
    res = run_cli("install", "civitai:1020")
    assert res.exit_code == 1 and "Early Access until 2099-03-04 05:06 UTC" in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: ")  # one line, with the date
    assert not [p for p in sdhub_home.rglob("ea.safetensors*") if p.is_file()]  # nothing saved as a "model"

    dry = run_cli("install", "--dry-run", "civitai:1020")
    assert dry.exit_code == 0 and "early access until 2099-03-04 05:06 UTC" in dry.stdout
    [planned] = json.loads(run_cli("install", "--dry-run", "--json", "civitai:1020").stdout)
    assert planned["plan"]["early_access_until"] == "2099-03-04T05:06:07Z"
    assert any("Early Access until 2099-03-04 05:06 UTC" in w for w in planned["warnings"])

    found = run_cli("search", "EA", "--source", "civitai")
    assert "early access until 2099-03-04 05:06 UTC" in found.stdout
    [row] = [r for r in json.loads(run_cli("search", "EA", "--source", "civitai", "--json").stdout)["results"]
             if r["ref"] == "civitai:1020@2200"]
    assert (row["early_access_until"], row["paid"]) == ("2099-03-04T05:06:07Z", True)


def test_cli_early_access_installs_for_an_account_that_bought_it(world, run_cli, monkeypatch):
    world["civitai"].add(CModel(1021, "EA bought", "LORA", versions=[
        CVersion(2210, "v1", "SDXL 1.0", early_access_deadline="2099-03-04T05:06:07.000Z",
                 files=[CFile(3210, "ea-bought.safetensors", b"b" * 10)])]))
    world["civitai"].early_access_buyers.add("buyer")
    monkeypatch.setenv("CIVITAI_API_TOKEN", "buyer")
    res = run_cli("install", "civitai:1021", "--json")
    assert res.exit_code == 0, res.output
    [item] = json.loads(res.stdout)
    assert item["status"] == "installed" and item["plan"]["early_access_until"] == "2099-03-04T05:06:07Z"


def test_cli_dry_run_table(world, run_cli):
    res = run_cli("install", "--dry-run", "hf:acme/pixel/solo.safetensors")
    assert res.exit_code == 0, res.output
    assert "would install hf:acme/pixel/solo.safetensors" in res.stdout
    assert world["hf"].primary.url in res.stdout


def test_cli_search_and_lookup(world, run_cli, tmp_path):
    res = run_cli("search", "pixel", "--source", "civitai", "--type", "lora", "--json")
    data = json.loads(res.stdout)
    assert [r["ref"] for r in data["results"]] == ["civitai:1001@2002"]
    table = run_cli("search", "pixel", "--source", "civitai")
    assert "civitai:1001@2002" in table.stdout and "REF" in table.stdout
    f = tmp_path / "x.safetensors"
    f.write_bytes(world["lora"])
    res = run_cli("lookup", str(f), "--json")
    assert json.loads(res.stdout)[0]["found"][0]["model_id"] == "1001"


def test_cli_search_prints_a_pasteable_next_page_command(world, run_cli):
    res = run_cli("search", "", "--source", "civitai", "--limit", "1")
    assert res.exit_code == 0
    assert "sdhub search '' --source civitai --cursor '1|932023|257749'" in res.stderr  # '|' would be a shell pipe


def test_cli_search_fails_when_every_source_failed(world, run_cli):
    world["liblib"].site.stop()
    res = run_cli("search", "pixel", "--source", "liblib", "--source", "civitai")
    assert res.exit_code == 0 and "civitai:1001@2002" in res.stdout and "liblib search failed" in res.stderr
    world["civitai"].stop()
    res = run_cli("search", "pixel", "--source", "liblib", "--source", "civitai")
    assert res.exit_code == 1 and "search failed at every source" in res.stderr and "(no results)" not in res.stdout
    res = run_cli("search", "pixel", "--source", "liblib", "--source", "civitai", "--json")
    assert res.exit_code == 1 and set(json.loads(res.stdout)["errors"]) == {"liblib", "civitai"}


def test_cli_bad_retry_setting_is_one_clear_error(world, run_cli, monkeypatch):
    monkeypatch.setenv("SDHUB_RETRY_ATTEMPTS", "abc")
    res = run_cli("search", "x")
    assert res.exit_code == 1 and "SDHUB_RETRY_ATTEMPTS must be a whole number, not 'abc'" in res.stderr
    monkeypatch.setenv("SDHUB_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("SDHUB_RETRY_MAX_WAIT", "soon")
    res = run_cli("install", "civitai:1001")
    assert res.exit_code == 1 and "SDHUB_RETRY_MAX_WAIT must be a number of seconds" in res.stderr


def test_cli_unknown_source_is_rejected(world, run_cli):
    res = run_cli("search", "x", "--source", "nowhere")
    assert res.exit_code == 2 and "not a registered source" in res.stderr


def test_store_layout_is_configurable(world, monkeypatch):
    monkeypatch.setenv("SDHUB_STORE_LAYOUT", "{source}/{base_model}/{model_name}/{filename}")
    with Hub() as h:
        result = install(h, "civitai:1001")
        assert Path(result.path) == store(h) / "civitai" / "SDXL 1.0" / "Pixel Art XL" / "pixel-art-xl.safetensors"


def test_name_collision_gets_a_hash_suffix(hub, world):
    first = install(hub, "civitai:1001")
    world["civitai"].add(CModel(1030, "Other pixel", "LORA", versions=[
        CVersion(2300, "v1", "SDXL 1.0", files=[CFile(3300, "pixel-art-xl.safetensors", world["other"])])]))
    second = install(hub, "civitai:1030")
    assert Path(second.path).parent == Path(first.path).parent
    assert Path(second.path).name == f"pixel-art-xl.{second.record.sha256[:8]}.safetensors"


def test_scan_lookup_attaches_what_the_sources_know(world, run_cli, tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "renamed-by-me.safetensors").write_bytes(world["lora"])
    res = run_cli("scan", "--lookup", "--json", str(folder))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["added"] == 1
    [rec] = json.loads(run_cli("list", "--json", "--source", "civitai").stdout)
    assert rec["name"] == "renamed-by-me.safetensors"
    assert rec["sources"][0]["model_name"] == "Pixel Art XL"
    assert rec["sources"][0]["trained_words"] == ["pixel art"]
    assert [r["name"] for r in json.loads(run_cli("list", "--json", "--text", "pixel art").stdout)] == [
        "renamed-by-me.safetensors"]
    # A re-scan of the unchanged file asks nobody.
    before = len(world["civitai"].api.requests("/api/v1/model-versions/by-hash", "POST"))
    run_cli("scan", "--lookup", str(folder))
    assert len(world["civitai"].api.requests("/api/v1/model-versions/by-hash", "POST")) == before


def test_resolve_accepts_catalogue_ids_and_names_without_network(hub, world, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.safetensors").write_bytes(world["other"])
    hub.scan([folder])
    rec = hub.get("mine.safetensors")
    world["civitai"].stop()  # nothing below may touch a source
    for ref in (f"#{rec.id}", str(rec.id), "mine.safetensors", rec.sha256[:12]):
        assert resolve(hub, ref).path == Path(rec.path)
    (folder / "mine.safetensors").unlink()
    with pytest.raises(Exception, match="no longer on disk"):
        resolve(hub, f"#{rec.id}")


def test_tag_objects_are_catalogued_as_strings(hub, world, tmp_path):
    """An older Civitai answer's ``[{"name": "punk"}]`` is stored as "punk", not as "{'name': 'punk'}"."""
    world["civitai"].add(CModel(1095, "Punk", "LORA", tags=[{"name": "punk"}, {"name": "style"}], versions=[
        CVersion(2095, "v1", "SDXL 1.0", files=[CFile(3095, "punk.safetensors", sdxl_lora_bytes(tmp_path, seed=95))]),
    ]))
    record = install(hub, "civitai:1095").record
    assert record.sources[0].tags == ["punk", "style"]
    assert hub.catalogue.by_path(record.path).sources[0].tags == ["punk", "style"]  # read back from the database


def test_legacy_hf_root_repo_installs_by_short_ref_and_by_url(hub, world, tmp_path, run_cli):
    """Root repos such as gpt2 have no organisation; their URLs are /gpt2/resolve/<rev>/<path>."""
    weights = sdxl_lora_bytes(tmp_path, seed=61)
    world["hf"].app.add(HFRepo("gpt2", {"model.safetensors": weights, "README.md": b"# gpt2\n"}, commit="f" * 40,
                               tags=["lora", "stable-diffusion-xl"]))
    dry = run_cli("install", "--dry-run", "--json", "https://huggingface.co/gpt2/resolve/main/model.safetensors")
    assert dry.exit_code == 0, dry.output
    [planned] = json.loads(dry.stdout)
    url = planned["plan"]["url"] if "plan" in planned else dry.stdout
    # the URL really requested, query and all, with the storage signature masked
    assert "response-content-disposition=" in url and "X-Amz-Signature=***" in url and "=sig" not in url
    result = install(hub, "hf:gpt2/model.safetensors")
    assert Path(result.path).read_bytes() == weights
    assert result.record.sources[0].model_id == "gpt2"
    assert install(hub, "hf:gpt2/README.md").status == "installed"


def test_liblib_uuids_are_case_insensitive(hub, world):
    first = install(hub, f"liblib:{LIB_M}@{LIB_V}")
    again = install(hub, f"liblib:{LIB_M.upper()}@{LIB_V.upper()}")
    assert again.status == "already-installed" and again.path == first.path
    assert resolve(hub, f"https://www.liblib.art/modelinfo/{LIB_M.upper()}?versionUuid={LIB_V.upper()}").path == Path(first.path)

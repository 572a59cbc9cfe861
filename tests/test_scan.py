"""`sdhub scan`, `list`, `info`, `rm`, `verify` end to end on real files and a real SQLite catalogue."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import pytest

from headers import load_spec
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


PG_URL = os.environ.get("SDHUB_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True, params=["sqlite", "postgresql"])
def catalogue_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on SQLite and, where SDHUB_TEST_POSTGRES_URL is set, on PostgreSQL."""
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("set SDHUB_TEST_POSTGRES_URL to run against PostgreSQL")
        from sqlalchemy import create_engine

        from hub.catalogue.models import Base

        engine = create_engine(PG_URL)
        Base.metadata.drop_all(engine)
        engine.dispose()
        monkeypatch.setenv("SDHUB_DB_URL", PG_URL)
    return str(request.param)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    # An SD1.5 LoRA with its real key names and shapes (2 MB), filled with real bytes.
    spec = load_spec("lora_sd15_diffusers")
    write_safetensors(root / "checkpoints" / "dreamy_v1.safetensors", spec["tensors"],
                      {"modelspec.title": "Dreamy"}, fill=b"\x01\x02\x03")
    write_safetensors(root / "loras" / "pixel_style.safetensors", SDXL_LORA_KOHYA,
                      {"ss_base_model_version": "sdxl_base_v1-0", "ss_output_name": "pixel_style"}, fill=b"\x07")
    (root / "notes.txt").write_text("not a model")
    return root


def _scan(run_cli, *paths: Path | str):  # type: ignore[no-untyped-def]
    result = run_cli("scan", "--json", *map(str, paths))
    return result, json.loads(result.stdout)


def test_scan_registers_files_and_lists_them(run_cli, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    result, report = _scan(run_cli, model_dir)
    assert result.exit_code == 0, result.output
    assert report["summary"]["added"] == 2 and report["summary"]["error"] == 0
    listed = json.loads(run_cli("list", "--json").stdout)
    by_name = {r["name"]: r for r in listed}
    assert set(by_name) == {"dreamy_v1.safetensors", "pixel_style.safetensors"}
    ckpt = by_name["dreamy_v1.safetensors"]
    expected = hashlib.sha256((model_dir / "checkpoints" / "dreamy_v1.safetensors").read_bytes()).hexdigest()
    assert ckpt["hashes"]["sha256"] == expected
    assert ckpt["hashes"]["autov2"] == expected[:10]
    assert ckpt["format"] == "safetensors"
    assert ckpt["size"] == (model_dir / "checkpoints" / "dreamy_v1.safetensors").stat().st_size
    # The documented, stable shape of `sdhub list --json`.
    assert set(ckpt) >= {"id", "path", "name", "format", "size", "family", "kind", "variant", "precision",
                         "hashes", "sources", "family_mismatch", "added_at", "verified_at", "verify_status"}
    assert set(ckpt["hashes"]) == {"sha256", "autov1", "autov2", "autov3", "crc32", "blake3"}


def test_rescan_of_unchanged_files_reads_nothing(run_cli, model_dir: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    before = {r.path: r for r in hub_instance.list()}
    result, report = _scan(run_cli, model_dir)
    assert report["summary"] == {"added": 0, "updated": 0, "moved": 0, "unchanged": 2, "missing": 0, "error": 0,
                                 "distrusted": 0}
    # An unchanged file is trusted from the stat cache: its record is not rewritten.
    with hub_instance.catalogue.session() as s:
        from hub.catalogue.models import File

        hashed = {f.path: f.hashed_at for f in s.query(File)}
    first = {p: hub_instance.catalogue.by_path(p) for p in before}
    assert all(first[p].sha256 == before[p].sha256 for p in before)
    assert len(hashed) == 2


def test_changed_file_is_rehashed(run_cli, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    lora = model_dir / "loras" / "pixel_style.safetensors"
    write_safetensors(lora, SDXL_LORA_KOHYA, {"ss_output_name": "pixel_style_v2"}, fill=b"\x09")
    _, report = _scan(run_cli, model_dir)
    assert report["summary"]["updated"] == 1 and report["summary"]["unchanged"] == 1
    rec = [r for r in json.loads(run_cli("list", "--json").stdout) if r["name"] == "pixel_style.safetensors"][0]
    assert rec["hashes"]["sha256"] == hashlib.sha256(lora.read_bytes()).hexdigest()


def test_moved_file_keeps_its_record(run_cli, model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    old_id = {r["name"]: r["id"] for r in json.loads(run_cli("list", "--json").stdout)}["dreamy_v1.safetensors"]
    new_place = model_dir / "archive" / "dreamy_v1.safetensors"
    new_place.parent.mkdir()
    os.rename(model_dir / "checkpoints" / "dreamy_v1.safetensors", new_place)
    _, report = _scan(run_cli, model_dir)
    assert report["summary"]["moved"] == 1 and report["summary"]["added"] == 0
    assert report["summary"]["missing"] == 0  # the old path is not "missing": the file moved
    listed = json.loads(run_cli("list", "--json").stdout)
    assert len(listed) == 2
    moved = [r for r in listed if r["name"] == "dreamy_v1.safetensors"][0]
    assert moved["id"] == old_id and moved["path"] == str(new_place.resolve())


def test_deleted_file_is_reported_missing_not_dropped(run_cli, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    (model_dir / "loras" / "pixel_style.safetensors").unlink()
    _, report = _scan(run_cli, model_dir)
    assert report["summary"]["missing"] == 1
    assert len(json.loads(run_cli("list", "--json").stdout)) == 2


def test_bad_paths_are_reported_and_the_scan_goes_on(run_cli, model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (model_dir / "broken_link.safetensors").symlink_to(tmp_path / "gone.safetensors")
    result = run_cli("scan", str(model_dir), str(tmp_path / "nowhere"), str(model_dir / "notes.txt"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "nowhere: no such file or folder" in result.stderr
    assert "broken_link.safetensors: vanished or unreadable" in result.stderr
    assert "notes.txt: not a model file type" in result.stderr
    assert len(json.loads(run_cli("list", "--json").stdout)) == 2  # the good files still got in


def test_list_filters_and_text_search(run_cli, model_dir: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    from hub.catalogue import SourceInfo

    _scan(run_cli, model_dir)
    lora = hub_instance.get("pixel_style.safetensors")
    hub_instance.attach_source(lora, SourceInfo(source="civitai", model_id="4201", version_id="130072",
                                                model_name="Pixel Art XL", base_model="SDXL 1.0",
                                                trained_words=["pixelart"], tags=["retro", "style"]))
    names = lambda *a: sorted(r["name"] for r in json.loads(run_cli("list", "--json", *a).stdout))  # noqa: E731
    assert names("--text", "pixelart") == ["pixel_style.safetensors"]
    assert names("--text", "retr") == ["pixel_style.safetensors"]      # prefix of a tag
    assert names("--text", "dreamy") == ["dreamy_v1.safetensors"]
    assert names("--text", "pixel retro") == ["pixel_style.safetensors"]
    assert names("--text", "pixel dreamy") == []
    assert names("--source", "civitai") == ["pixel_style.safetensors"]
    table = run_cli("list")
    assert "pixel_style.safetensors" in table.stdout and "civitai" in table.stdout


def test_get_by_hash_prefix_id_and_name(run_cli, model_dir: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    rec = hub_instance.get("dreamy_v1.safetensors")
    assert hub_instance.get(rec.sha256[:8].upper()).id == rec.id
    assert hub_instance.get(f"sha256:{rec.sha256}").id == rec.id
    assert hub_instance.get(rec.blake3[:12]).id == rec.id
    assert hub_instance.get(f"crc32:{rec.crc32.upper()}").id == rec.id  # Civitai's byte order
    zlib_order = f"{zlib.crc32((Path(rec.path)).read_bytes()):08x}"
    assert zlib_order != rec.crc32 and hub_instance.get(zlib_order).id == rec.id  # and zlib's
    assert hub_instance.get(f"#{rec.id}").id == rec.id
    assert hub_instance.get(rec.path).id == rec.id
    result = run_cli("info", "deadbeefdeadbeef")
    assert result.exit_code == 1 and "matches nothing in the catalogue" in result.stderr


def test_rm_keeps_file_unless_asked(run_cli, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    ckpt = model_dir / "checkpoints" / "dreamy_v1.safetensors"
    assert run_cli("rm", "dreamy_v1.safetensors").exit_code == 0
    assert ckpt.exists()
    assert [r["name"] for r in json.loads(run_cli("list", "--json").stdout)] == ["pixel_style.safetensors"]
    assert run_cli("rm", "--delete-file", "pixel_style.safetensors").exit_code == 0
    assert not (model_dir / "loras" / "pixel_style.safetensors").exists()
    assert json.loads(run_cli("list", "--json").stdout) == []


def test_verify_rehashes_even_when_stat_is_unchanged(run_cli, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    ok = run_cli("verify", "--json")
    assert ok.exit_code == 0 and {r["status"] for r in json.loads(ok.stdout)} == {"ok"}
    ckpt = model_dir / "checkpoints" / "dreamy_v1.safetensors"
    st = ckpt.stat()
    with ckpt.open("r+b") as fh:  # silent corruption: same size, same mtime
        fh.seek(st.st_size - 10)
        fh.write(b"CORRUPTED!")
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))
    bad = run_cli("verify", "dreamy_v1.safetensors")
    assert bad.exit_code == 1
    assert "mismatch" in bad.stdout and "sha256" in bad.stdout
    rec = [r for r in json.loads(run_cli("list", "--json").stdout) if r["name"] == "dreamy_v1.safetensors"][0]
    assert rec["verify_status"] == "mismatch" and rec["verified_at"]


def test_verify_checks_published_hashes(run_cli, model_dir: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    from hub.catalogue import SourceInfo

    _scan(run_cli, model_dir)
    rec = hub_instance.get("pixel_style.safetensors")
    hub_instance.attach_source(rec, SourceInfo(source="civitai", model_id="1", version_id="2",
                                               published_hashes={"SHA256": "AB" * 32, "AutoV2": rec.sha256[:10].upper()}))
    result = run_cli("verify", "--json", "pixel_style.safetensors")
    data = json.loads(result.stdout)[0]
    assert data["status"] == "mismatch"
    assert any("civitai's published" in p and "sha256" in p for p in data["problems"])
    assert not any("autov2" in p for p in data["problems"])


def test_scan_registers_diffusers_folder_as_one_entry(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "models" / "tiny-sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    write_safetensors(folder / "unet" / "diffusion_pytorch_model.safetensors", {"conv_in.weight": ("F32", [4, 4])})
    _, report = _scan(run_cli, tmp_path / "models")
    assert report["summary"]["added"] == 1
    rec = json.loads(run_cli("list", "--json").stdout)[0]
    assert rec["format"] == "diffusers" and rec["name"] == "tiny-sd" and len(rec["hashes"]["sha256"]) == 64


def test_a_newer_classifier_reidentifies_on_the_next_scan(run_cli, model_dir: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    from hub.catalogue.models import File

    _scan(run_cli, model_dir)
    with hub_instance.catalogue.transaction() as s:  # as if an older sdhub had identified these files
        for f in s.query(File):
            f.identify_version, f.family, f.identification = 0, "sd2", None
    _, report = _scan(run_cli, model_dir)
    assert report["summary"]["updated"] == 2 and report["summary"]["unchanged"] == 0
    assert {r["name"]: r["family"] for r in json.loads(run_cli("list", "--json").stdout)} == {
        "dreamy_v1.safetensors": "sd1", "pixel_style.safetensors": "sdxl"}
    _, again = _scan(run_cli, model_dir)
    assert again["summary"]["unchanged"] == 2


def test_unidentifiable_file_is_catalogued_with_its_reason(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "m" / "page.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(b"<!DOCTYPE html><html><body>Please log in</body></html>" * 50)
    _, report = _scan(run_cli, tmp_path / "m", "--include-broken")
    assert report["summary"]["added"] == 1
    info = run_cli("info", str(bad))
    assert info.exit_code == 0
    assert "not identified:" in info.stdout and "safetensors" in info.stdout
    data = json.loads(run_cli("info", "--json", str(bad)).stdout)
    assert data["family"] == "unknown" and data["in_catalogue"] and data["identify_error"]


def test_family_mismatch_is_flagged_and_shown(run_cli, model_dir: Path, hub_instance) -> None:  # type: ignore[no-untyped-def]
    from hub.catalogue import SourceInfo

    _scan(run_cli, model_dir)
    rec = hub_instance.get("dreamy_v1.safetensors")  # an SD1 LoRA by its header
    hub_instance.attach_source(rec, SourceInfo(source="civitai", model_id="9", version_id="10",
                                               base_model="SDXL 1.0", claimed_family="sdxl"))
    listed = {r["name"]: r for r in json.loads(run_cli("list", "--json").stdout)}
    assert listed["dreamy_v1.safetensors"]["family_mismatch"] == (
        "civitai says base model 'SDXL 1.0' (sdxl) but the file's header says sd1")
    assert "WARNING:   civitai says base model" in run_cli("info", "dreamy_v1.safetensors").stdout


def test_vae_fitting_several_families_is_checked_against_its_candidates() -> None:
    from hub.api import family_mismatch
    from hub.catalogue import SourceInfo

    vae = {"family": "unknown", "kind": "vae", "candidates": ["sd1", "sd2"]}
    src = lambda fam: SourceInfo(source="civitai", model_id="1", base_model=fam, claimed_family=fam)  # noqa: E731
    assert family_mismatch(vae, src("sd1")) is None
    assert family_mismatch(vae, src("sdxl")) == "civitai says base model 'sdxl' (sdxl) but the file's header fits only sd1, sd2"


def test_a_vanished_file_can_be_removed_by_its_path(run_cli, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _scan(run_cli, model_dir)
    lora = model_dir / "loras" / "pixel_style.safetensors"
    lora.unlink()
    result = run_cli("rm", str(lora))
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(run_cli("list", "--json").stdout)] == ["dreamy_v1.safetensors"]


def test_install_through_a_symlinked_store_is_not_registered_twice(hub_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    real = tmp_path / "real-store"
    (real / "lora").mkdir(parents=True)
    link = tmp_path / "store-link"
    link.symlink_to(real, target_is_directory=True)
    part = write_safetensors(tmp_path / "x.part", SDXL_LORA_KOHYA, fill=b"\x05")
    record = hub_instance.register_file(link / "lora" / "x.safetensors", move_from=part)
    assert record.path == str(real / "lora" / "x.safetensors")
    report = hub_instance.scan([link])
    assert report.summary()["unchanged"] == 1 and report.summary()["added"] == 0
    assert len(hub_instance.list()) == 1


def test_each_file_of_a_version_keeps_its_own_source_details(hub_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hub.catalogue import SourceInfo

    records = []
    for name, fmt in (("model-fp16.safetensors", "fp16"), ("model-fp32.safetensors", "fp32")):
        part = write_safetensors(tmp_path / f"{name}.part", SDXL_LORA_KOHYA, fill=fmt.encode())
        info = SourceInfo(source="civitai", model_id="7", version_id="8", original_filename=name, extra={"fp": fmt})
        records.append(hub_instance.register_file(tmp_path / "store" / name, source=info, move_from=part))
    got = {r.name: r.sources[0].extra for r in (hub_instance.get(f"#{rec.id}") for rec in records)}
    assert got == {"model-fp16.safetensors": {"fp": "fp16"}, "model-fp32.safetensors": {"fp": "fp32"}}


def test_register_file_that_cannot_be_moved_registers_nothing(hub_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hub.errors import FileAccessError

    part = write_safetensors(tmp_path / "x.part", SDXL_LORA_KOHYA, fill=b"\x05")
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store folder should be")
    with pytest.raises(FileAccessError, match="cannot move"):
        hub_instance.register_file(blocker / "lora" / "x.safetensors", move_from=part)
    assert part.exists() and hub_instance.list() == []

"""check_compatible: does a LoRA / VAE / embedding / text encoder fit a base model, and why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hub
from hub.identify import (
    Identification,
    check_compatible,
    identify_path,
)
from hub_plugins.families import builtin_families
from tests.headers import write_fixture, write_tensors

FAMILIES = builtin_families()


@pytest.fixture(scope="module")
def idents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Identification]:
    d = tmp_path_factory.mktemp("compat")
    names = ["sd15", "sd15_inpaint", "sd21_768_v", "sdxl_base", "sdxl_refiner", "sd3_medium", "sd35_large",
             "sd35_medium", "flux_dev", "flux_schnell", "vae_sdxl", "vae_flux", "te_clip_l", "te_t5xxl",
             "lora_sd15_kohya", "lora_sdxl_kohya", "lora_sdxl_loha", "lora_sd3_kohya", "lora_sd35_large_kohya",
             "lora_flux_kohya", "lora_flux_lokr", "unet_sdxl_diffusers"]
    out = {n: identify_path(write_fixture(d, n), families=FAMILIES) for n in names}
    out["emb_sd1"] = identify_path(write_tensors(d / "emb.safetensors", {"emb_params": ("F32", [2, 768])}),
                                   families=FAMILIES)
    out["emb_sdxl"] = identify_path(write_tensors(d / "embxl.safetensors", {"clip_l": ("F16", [2, 768]),
                                                                           "clip_g": ("F16", [2, 1280])}),
                                    families=FAMILIES)
    return out


FITS = [
    ("sd15", "lora_sd15_kohya"), ("sd15_inpaint", "lora_sd15_kohya"), ("sdxl_base", "lora_sdxl_kohya"),
    ("sdxl_base", "lora_sdxl_loha"), ("unet_sdxl_diffusers", "lora_sdxl_kohya"), ("sd3_medium", "lora_sd3_kohya"),
    ("sd35_medium", "lora_sd3_kohya"), ("sd35_large", "lora_sd35_large_kohya"), ("flux_dev", "lora_flux_kohya"),
    ("flux_schnell", "lora_flux_kohya"), ("flux_schnell", "lora_flux_lokr"), ("sd15", "vae_sdxl"),
    ("sdxl_base", "vae_sdxl"), ("sd3_medium", "vae_flux"), ("flux_dev", "vae_flux"), ("sd15", "emb_sd1"),
    ("sdxl_base", "emb_sdxl"), ("flux_dev", "te_t5xxl"), ("sdxl_base", "te_clip_l"),
]
DOES_NOT_FIT = [
    ("sdxl_base", "lora_sd15_kohya", "targets sd1"), ("sd15", "lora_sdxl_kohya", "targets sdxl"),
    ("sdxl_refiner", "lora_sdxl_kohya", "targets sdxl"), ("sd21_768_v", "lora_sd15_kohya", "targets sd1"),
    ("sd3_medium", "lora_sd35_large_kohya", "sd3 large"), ("sd35_large", "lora_sd3_kohya", "sd3 medium"),
    ("flux_dev", "lora_sdxl_kohya", "targets sdxl"), ("sd15", "vae_flux", "16-channel VAE"),
    ("flux_dev", "vae_sdxl", "4-channel VAE"), ("sdxl_base", "emb_sd1", "fits sd1"), ("sd15", "te_t5xxl", "fits sd3, flux"),
    ("sd21_768_v", "te_clip_l", "not sd2"),
]


@pytest.mark.parametrize("base, addon", FITS)
def test_fits(idents: dict[str, Identification], base: str, addon: str) -> None:
    result = check_compatible(idents[base], idents[addon])
    assert result.ok and result.certain, result.reason
    assert bool(result) is True


@pytest.mark.parametrize("base, addon, words", DOES_NOT_FIT)
def test_does_not_fit(idents: dict[str, Identification], base: str, addon: str, words: str) -> None:
    result = check_compatible(idents[base], idents[addon])
    assert not result.ok and result.certain
    assert words in result.reason, result.reason


def test_unknown_is_not_a_yes(idents: dict[str, Identification], tmp_path: Path) -> None:
    unknown_lora = Identification.from_dict({**idents["lora_sdxl_kohya"].to_dict(), "family": "unknown",
                                             "lora": {**idents["lora_sdxl_kohya"].lora.to_dict(),  # type: ignore[union-attr]
                                                      "target": "unknown"}})
    result = check_compatible(idents["sdxl_base"], unknown_lora)
    assert (result.ok, result.certain) == (False, False)
    unknown_base = Identification(kind="checkpoint")
    result = check_compatible(unknown_base, idents["lora_sd15_kohya"])
    assert (result.ok, result.certain) == (False, False)


def test_wrong_roles(idents: dict[str, Identification]) -> None:
    assert "not a LoRA" in check_compatible(idents["sd15"], idents["sdxl_base"]).reason
    assert "not a checkpoint" in check_compatible(idents["lora_sd15_kohya"], idents["lora_sd15_kohya"]).reason


def test_works_on_stored_dicts_and_paths(idents: dict[str, Identification], tmp_path: Path) -> None:
    base = Identification.from_dict(json.loads(json.dumps(idents["sdxl_base"].to_dict())))
    lora = Identification.from_dict(json.loads(json.dumps(idents["lora_sd15_kohya"].to_dict())))
    assert not check_compatible(base, lora).ok
    # hub.check_compatible accepts paths too
    b = write_fixture(tmp_path, "sd15")
    a = write_fixture(tmp_path, "lora_sd15_kohya")
    assert hub.check_compatible(str(b), str(a)).ok


def test_cli_check_exit_codes(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = write_fixture(tmp_path, "sdxl_base")
    good = write_fixture(tmp_path, "lora_sdxl_diffusers")
    bad = write_fixture(tmp_path, "lora_flux_kohya")
    ok = run_cli("check", str(base), str(good))
    assert ok.exit_code == 0 and ok.stdout.startswith("fits:")
    no = run_cli("check", "--json", str(base), str(bad))
    assert no.exit_code == 1
    data = json.loads(no.stdout)
    assert data["ok"] is False and data["addon"]["family"] == "flux" and "targets flux" in data["reason"]
    vae = write_fixture(tmp_path, "vae_sdxl")
    unsure = run_cli("check", str(vae), str(good))
    assert unsure.exit_code == 1 and "not a checkpoint" in unsure.stdout

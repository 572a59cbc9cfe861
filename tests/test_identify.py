"""Identification of every family, kind and LoRA format from header-only full-size files.

The fixtures are sparse safetensors files whose headers carry the true names and shapes of the
real releases (``tests/make_headers.py`` derives them from the diffusers/transformers classes on
the meta device). Each expectation below is what the release is, not what the code happens to say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import hub
from hub import hookimpl
from hub.errors import (
    EmptyFileError,
    FileAccessError,
    HeaderError,
    NotSafetensorsError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from hub.identify import (
    Evidence,
    Family,
    FamilyMatch,
    HeaderView,
    Identification,
    identify_header,
    identify_path,
)
from hub_plugins.families import builtin_families
from tests.headers import load_spec, write_fixture, write_sparse, write_tensors

FAMILIES = builtin_families()

# name: (family, kind, variant, components, precision)
MODELS: dict[str, tuple[str, str, str | None, list[str], str]] = {
    "sd15": ("sd1", "checkpoint", None, ["unet", "vae", "clip_l"], "fp16"),
    "sd15_inpaint": ("sd1", "checkpoint", "inpaint", ["unet", "vae", "clip_l"], "fp32"),
    "sd15_ip2p": ("sd1", "checkpoint", "instruct-pix2pix", ["unet", "vae", "clip_l"], "fp16"),
    "sd21_768_v": ("sd2", "checkpoint", None, ["unet", "vae", "clip_h"], "fp16"),
    "sdxl_base": ("sdxl", "checkpoint", None, ["unet", "vae", "clip_l", "clip_g"], "fp16"),
    "sdxl_refiner": ("sdxl_refiner", "checkpoint", None, ["unet", "vae", "clip_g"], "fp16"),
    "sd3_medium": ("sd3", "checkpoint", "medium", ["dit", "vae", "clip_l", "clip_g", "t5"], "fp16"),
    "sd35_large": ("sd3", "checkpoint", "large", ["dit", "vae"], "bf16"),
    "sd35_medium": ("sd3", "checkpoint", "medium", ["dit", "vae"], "bf16"),
    "flux_dev": ("flux", "diffusion_model", "dev", ["dit"], "bf16"),
    "flux_schnell": ("flux", "diffusion_model", "schnell", ["dit"], "bf16"),
    "flux_dev_fp8_aio": ("flux", "checkpoint", "dev", ["dit", "vae", "clip_l", "t5"], "fp8_e4m3fn"),
    "unet_sd15_ldm": ("sd1", "diffusion_model", None, ["unet"], "fp16"),
    "unet_sdxl_diffusers": ("sdxl", "diffusion_model", None, ["unet"], "fp16"),
    "dit_sd3_diffusers": ("sd3", "diffusion_model", "medium", ["dit"], "fp16"),
    "dit_flux_diffusers": ("flux", "diffusion_model", "schnell", ["dit"], "bf16"),
    "vae_sdxl": ("unknown", "vae", None, ["vae"], "fp32"),
    "vae_sd_diffusers": ("unknown", "vae", None, ["vae"], "fp16"),
    "vae_flux": ("unknown", "vae", None, ["vae"], "bf16"),
    "te_clip_l": ("unknown", "text_encoder", None, ["clip_l"], "fp16"),
    "te_clip_g": ("unknown", "text_encoder", None, ["clip_g"], "fp16"),
    "te_t5xxl": ("unknown", "text_encoder", None, ["t5"], "fp16"),
}
CANDIDATES = {
    # identified-only families that ship the same VAEs: AuraFlow, PixArt, Hunyuan-DiT, Kolors (SD/SDXL VAE);
    # Chroma, Z-Image, HiDream, Lumina 2 (the FLUX.1 VAE)
    "vae_sdxl": ["sd1", "sd2", "sdxl", "sdxl_refiner", "auraflow", "pixart", "hunyuan_dit", "kolors"],
    "vae_sd_diffusers": ["sd1", "sd2", "sdxl", "sdxl_refiner", "auraflow", "pixart", "hunyuan_dit", "kolors"],
    "vae_flux": ["sd3", "flux", "chroma", "zimage", "hidream", "lumina2"],
    "te_clip_l": ["sd1", "sdxl", "sd3", "flux"],
    "te_clip_g": ["sdxl", "sdxl_refiner", "sd3"],
    "te_t5xxl": ["sd3", "flux", "chroma", "pixart"],
}
# name: (target family, variant, format, rank, parts)
LORAS: dict[str, tuple[str, str | None, str, int | None, list[str]]] = {
    "lora_sd15_kohya": ("sd1", None, "kohya", 32, ["unet", "te1"]),
    "lora_sd15_diffusers": ("sd1", None, "diffusers", 4, ["unet", "te1"]),
    "lora_sd15_locon": ("sd1", None, "lycoris_locon", 16, ["unet", "te1"]),
    "lora_sd15_loha": ("sd1", None, "lycoris_loha", 8, ["unet", "te1"]),
    "lora_sd15_lokr": ("sd1", None, "lycoris_lokr", None, ["unet"]),  # full w2: no rank
    "lora_sd21_kohya": ("sd2", None, "kohya", 16, ["unet", "te1"]),
    "lora_sdxl_kohya": ("sdxl", None, "kohya", 32, ["unet", "te1", "te2"]),
    "lora_sdxl_diffusers": ("sdxl", None, "diffusers", 16, ["unet", "te1", "te2"]),
    "lora_sdxl_locon": ("sdxl", None, "lycoris_locon", 16, ["unet"]),
    "lora_sdxl_loha": ("sdxl", None, "lycoris_loha", 8, ["unet"]),
    "lora_sdxl_lokr": ("sdxl", None, "lycoris_lokr", 16, ["unet", "te1", "te2"]),
    "lora_sdxl_slider": ("sdxl", None, "kohya", 4, ["unet"]),
    "lora_sd3_kohya": ("sd3", "medium", "kohya", 16, ["unet"]),
    "lora_sd3_diffusers": ("sd3", "medium", "diffusers", 16, ["unet"]),
    "lora_sd3_locon": ("sd3", "medium", "lycoris_locon", 8, ["unet"]),
    "lora_sd3_loha": ("sd3", "medium", "lycoris_loha", 8, ["unet"]),
    "lora_sd3_lokr": ("sd3", "medium", "lycoris_lokr", None, ["unet"]),
    "lora_sd35_large_kohya": ("sd3", "large", "kohya", 16, ["unet"]),
    "lora_flux_kohya": ("flux", None, "kohya", 16, ["unet"]),
    "lora_flux_diffusers": ("flux", None, "diffusers", 16, ["unet"]),
    "lora_flux_locon": ("flux", None, "lycoris_locon", 16, ["unet"]),
    "lora_flux_loha": ("flux", None, "lycoris_loha", 8, ["unet"]),
    "lora_flux_lokr": ("flux", None, "lycoris_lokr", None, ["unet"]),
}


def cites_a_real_key(evidence: list[Evidence], names: set[str], what: str = "family") -> bool:
    """True when some evidence for ``what`` names a tensor that is really in the file."""
    for ev in evidence:
        if ev.what != what:
            continue
        for token in ev.because.replace(",", " ").replace(":", " ").split():
            if token in names:
                return True
    return False


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("headers")


def _file(fixture_dir: Path, name: str) -> Path:
    path = fixture_dir / f"{name}.safetensors"
    return path if path.exists() else write_fixture(fixture_dir, name)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models(fixture_dir: Path, name: str) -> None:
    family, kind, variant, components, precision = MODELS[name]
    ident = identify_path(_file(fixture_dir, name), families=FAMILIES)
    assert (ident.family, ident.kind, ident.variant) == (family, kind, variant)
    assert ident.components == components
    assert ident.precision == precision
    assert ident.format == "safetensors"
    assert ident.candidates == CANDIDATES.get(name, [family])
    names = set(load_spec(name)["tensors"])
    assert ident.tensors == len(names)
    if family != "unknown":
        assert cites_a_real_key(ident.evidence, names), ident.evidence
    assert cites_a_real_key(ident.evidence, names, "kind") or cites_a_real_key(ident.evidence, names, "family") \
        or kind in ("checkpoint", "diffusion_model")
    assert ident.because("kind"), "the kind decision carries evidence"


@pytest.mark.parametrize("name", sorted(LORAS))
def test_loras(fixture_dir: Path, name: str) -> None:
    family, variant, fmt, rank, parts = LORAS[name]
    ident = identify_path(_file(fixture_dir, name), families=FAMILIES)
    assert (ident.family, ident.kind, ident.variant) == (family, "lora", variant)
    assert ident.lora is not None
    assert (ident.lora.format, ident.lora.rank, ident.lora.parts, ident.lora.target) == (fmt, rank, parts, family)
    names = set(load_spec(name)["tensors"])
    per_module = (".lora_down.weight", ".lora_A.weight", ".hada_w1_a", ".lokr_w1")
    assert ident.lora.modules == sum(1 for n in names if n.endswith(per_module))
    assert cites_a_real_key(ident.evidence, names), [str(e) for e in ident.because("family")]
    assert not ident.warnings


def test_lora_family_from_shapes_alone(fixture_dir: Path, tmp_path: Path) -> None:
    """Strip all metadata: the adapted layers' widths still tell the family."""
    for name in ("lora_sd15_kohya", "lora_sdxl_kohya", "lora_sd3_kohya", "lora_flux_kohya", "lora_sdxl_lokr"):
        ident = identify_path(write_fixture(tmp_path, name, drop_metadata=True), families=FAMILIES)
        assert ident.family == LORAS[name][0], name
        assert not ident.because("family.metadata")


def test_metadata_conflict_reports_both_and_trusts_shapes(tmp_path: Path) -> None:
    path = write_fixture(tmp_path, "lora_sdxl_kohya", metadata={"ss_base_model_version": "sd_v1",
                                                                "modelspec.architecture": "stable-diffusion-v1/lora"})
    ident = identify_path(path, families=FAMILIES)
    assert ident.family == "sdxl"
    assert any("metadata says sd1" in w and "trusting the shapes" in w for w in ident.warnings)
    assert ident.because("conflict")


def test_lora_whose_layers_do_not_tell_uses_metadata(tmp_path: Path) -> None:
    # An SDXL LoRA that only trained the two text encoders: te1 768 + te2 1280 is SDXL *or* SD3.
    spec = load_spec("lora_sdxl_kohya")
    te_only = {k: tuple(v) for k, v in spec["tensors"].items() if k.startswith("lora_te")}
    plain = identify_header({k: {"dtype": d, "shape": s} for k, (d, s) in te_only.items()}, {}, families=FAMILIES)
    assert (plain.kind, plain.family) == ("lora", "unknown")
    assert plain.lora is not None and plain.lora.parts == ["te1", "te2"]
    path = write_sparse(tmp_path / "te_only.safetensors", te_only, {"ss_base_model_version": "sdxl_base_v1-0"})
    ident = identify_path(path, families=FAMILIES)
    assert ident.family == "sdxl"
    assert any("metadata only" in e.because for e in ident.because("family"))


def test_metadata_cannot_name_a_family_the_layers_rule_out(tmp_path: Path) -> None:
    """Metadata decides only when the layers do not tell; layers that fit no family are not 'silent'."""
    def reshaped(name: str, fix: Any) -> dict[str, tuple[str, list[int]]]:
        return {k: (d, fix(k, list(s))) for k, (d, s) in load_spec(name)["tensors"].items()}

    def kolors(key: str, shape: list[int]) -> list[int]:
        # an SDXL-layout UNet conditioned on a 4096-wide text encoder (Kolors), trained with an SDXL script
        if "attn2_to_k" in key or "attn2_to_v" in key:
            return [shape[0], 4096] if key.endswith("lora_down.weight") else shape
        return shape

    def wider_flux(key: str, shape: list[int]) -> list[int]:
        # Flux block names at twice the Flux.1 width (a Flux.2-class model)
        return [6144 if x == 3072 else x for x in shape]

    cases = {"kolors": (reshaped("lora_sdxl_kohya", kolors), {"ss_base_model_version": "sdxl_base_v1-0"}, "sdxl"),
             "wide_flux": (reshaped("lora_flux_kohya", wider_flux), {"ss_base_model_version": "flux1"}, "flux")}
    for label, (tensors, metadata, claimed) in cases.items():
        ident = identify_path(write_sparse(tmp_path / f"{label}.safetensors", tensors, metadata), families=FAMILIES)
        assert (ident.kind, ident.family) == ("lora", "unknown"), label
        assert ident.lora is not None and ident.lora.target == "unknown"
        assert any(f"metadata says {claimed}" in w and "not trusting the metadata" in w for w in ident.warnings), label
        assert ident.because("conflict")


def test_flux_look_alike_loras_are_not_flux1(tmp_path: Path) -> None:
    """FLUX.2 klein keeps Flux.1's block names and 3072 hidden size but other MLP/text widths; Chroma keeps
    Flux.1's layers outright and is told by its metadata (architectures.md §7)."""
    spec = load_spec("lora_flux_kohya")

    def widened(key: str, dtype: str, shape: list[int]) -> tuple[str, list[int]]:
        if key.endswith("lora_up.weight") and "_img_mlp_0" in key:
            return dtype, [18432, *shape[1:]]  # SwiGLU mlp ratio 3: 2 x 9216
        if key.endswith("lora_up.weight") and "_linear1" in key:
            return dtype, [27648, *shape[1:]]
        return dtype, shape

    flux2 = {k: widened(k, d, list(s)) for k, (d, s) in spec["tensors"].items()}
    assert any("_img_mlp_0" in k or "_linear1" in k for k in flux2), "the fixture must adapt the MLP inputs"
    plain = {k: (d, list(s)) for k, (d, s) in spec["tensors"].items()}
    for label, tensors, metadata, family in (("flux2_klein", flux2, {"ss_base_model_version": "flux1"}, "unknown"),
                                             ("chroma", plain, {"ss_base_model_version": "chroma"}, "chroma")):
        ident = identify_path(write_sparse(tmp_path / f"{label}.safetensors", tensors, metadata), families=FAMILIES)
        assert (ident.kind, ident.family) == ("lora", family), (label, ident.summary())
        assert ident.runnable is (False if family == "chroma" else None)
    # the untouched Flux.1 LoRA is still Flux
    assert identify_path(write_sparse(tmp_path / "flux1.safetensors", plain), families=FAMILIES).family == "flux"


def test_sd2_prediction_needs_metadata(tmp_path: Path) -> None:
    plain = identify_path(write_fixture(tmp_path, "sd21_768_v"), families=FAMILIES)
    assert plain.variant is None and plain.details["prediction"] is None
    assert any("cannot be told from the header" in e.because for e in plain.because("prediction"))
    for meta in ({"modelspec.prediction_type": "v"}, {"modelspec.architecture": "stable-diffusion-v2-768-v"},
                 {"ss_base_model_version": "sd_v2_768_v"}):
        ident = identify_path(write_fixture(tmp_path, "sd21_768_v", filename="v.safetensors", metadata=meta),
                              families=FAMILIES)
        assert (ident.family, ident.variant, ident.details["prediction"]) == ("sd2", "v-prediction", "v"), meta
    eps = identify_path(write_fixture(tmp_path, "sd21_768_v", filename="e.safetensors",
                                      metadata={"modelspec.prediction_type": "epsilon"}), families=FAMILIES)
    assert (eps.variant, eps.details["prediction"]) == (None, "eps")


def test_sdxl_v_pred_key_and_edm(tmp_path: Path) -> None:
    spec = load_spec("sdxl_base")
    tensors = {k: tuple(v) for k, v in spec["tensors"].items()}
    vpred = identify_path(write_sparse(tmp_path / "vpred.safetensors", {**tensors, "v_pred": ("F32", []),
                                                                        "ztsnr": ("F32", [])}), families=FAMILIES)
    assert (vpred.family, vpred.variant, vpred.details["prediction"]) == ("sdxl", "v-prediction", "v")
    assert vpred.details["zero_terminal_snr"] is True
    edm = identify_path(write_sparse(tmp_path / "pg.safetensors", {**tensors, "edm_mean": ("F32", [1, 4, 1, 1]),
                                                                   "edm_std": ("F32", [1, 4, 1, 1])}), families=FAMILIES)
    assert (edm.family, edm.variant, edm.details["prediction"]) == ("sdxl", None, "edm")


def test_standalone_vae_family_from_metadata(tmp_path: Path) -> None:
    path = write_fixture(tmp_path, "vae_sdxl", metadata={"modelspec.architecture": "stable-diffusion-xl-v1-base/vae"})
    ident = identify_path(path, families=FAMILIES)
    assert (ident.kind, ident.family) == ("vae", "sdxl")
    assert ident.candidates == CANDIDATES["vae_sdxl"]
    assert ident.details["latent_channels"] == 4


def test_embeddings(tmp_path: Path) -> None:
    sd1 = write_tensors(tmp_path / "style.safetensors", {"emb_params": ("F32", [4, 768])})
    ident = identify_path(sd1, families=FAMILIES)
    assert (ident.kind, ident.family, ident.details["vectors"]) == ("embedding", "sd1", 4)
    xl = write_tensors(tmp_path / "xl.safetensors", {"clip_l": ("F16", [2, 768]), "clip_g": ("F16", [2, 1280])})
    ident = identify_path(xl, families=FAMILIES)
    assert (ident.kind, ident.family) == ("embedding", "sdxl")
    sd2 = write_tensors(tmp_path / "sd2.safetensors", {"emb_params": ("F32", [1, 1024])})
    assert identify_path(sd2, families=FAMILIES).family == "sd2"


# -- unknown is a fine answer; a wrong one is not ---------------------------------------------------
def _shrunk(name: str, width: int) -> dict[str, tuple[str, list[int]]]:
    """The fixture's real names with every dimension capped (a tiny test model)."""
    return {k: (d, [min(x, width) for x in s]) for k, (d, s) in load_spec(name)["tensors"].items()}


def test_tiny_models_with_real_names_are_not_guessed(tmp_path: Path) -> None:
    for name, kind, denoiser in (("sd15", "checkpoint", "unet"), ("sdxl_base", "checkpoint", "unet"),
                                 ("flux_dev", "unknown", None), ("sd3_medium", "checkpoint", "dit")):
        path = write_tensors(tmp_path / f"tiny_{name}.safetensors", _shrunk(name, 32))
        ident = identify_path(path, families=FAMILIES)
        assert ident.family == "unknown", (name, ident.family, [str(e) for e in ident.evidence])
        assert ident.kind == kind, name
        if denoiser:  # an unplaced MMDiT is still no UNet
            assert ident.components[0] == denoiser, (name, ident.components)


def _with(name: str, extra: dict[str, tuple[str, list[int]]], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    tensors = {k: (d, s) for k, (d, s) in load_spec(name)["tensors"].items() if not k.startswith(drop)}
    tensors.update(extra)
    return tensors


def test_look_alikes_are_not_claimed(tmp_path: Path) -> None:
    cases = {
        # Chroma reuses Flux names but adds a distilled guidance layer
        "chroma": _with("flux_schnell", {"distilled_guidance_layer.in_proj.weight": ("BF16", [5120, 64])}),
        # a Flux.2-like DiT: wider hidden and img_in from 128 channels
        "flux2": {**_with("flux_dev", {}, drop=("img_in.",)), "img_in.weight": ("BF16", [6144, 128])},
        # Zero123: SD1 UNet with 8 input channels plus a camera projection
        "zero123": _with("sd15_ip2p", {"cc_projection.weight": ("F16", [768, 772])}),
        # an SD1 UNet with an ADM input is some other model (not SD1)
        "sd1_adm": _with("unet_sd15_ldm", {"model.diffusion_model.label_emb.0.0.weight": ("F16", [1280, 512])}),
    }
    for label, tensors in cases.items():
        ident = identify_path(write_sparse(tmp_path / f"{label}.safetensors", tensors), families=FAMILIES)
        assert ident.family == "unknown", (label, ident.family)


def test_controlnets_are_not_unets(tmp_path: Path) -> None:
    """A ControlNet is a UNet's encoder half with the same widths: not an sd1/sdxl diffusion model, but a
    controlnet of that family."""
    ldm_prefix = "model.diffusion_model."
    ldm = {k[len(ldm_prefix):]: (d, s) for k, (d, s) in load_spec("unet_sd15_ldm")["tensors"].items()
           if not k.startswith((ldm_prefix + "output_blocks.", ldm_prefix + "out."))}  # lllyasviel's .pth keys are bare
    ldm.update({"input_hint_block.0.weight": ("F16", [16, 3, 3, 3]), "zero_convs.0.0.weight": ("F16", [320, 320, 1, 1]),
                "middle_block_out.0.weight": ("F16", [1280, 1280, 1, 1])})
    diffusers = {k: (d, s) for k, (d, s) in load_spec("unet_sdxl_diffusers")["tensors"].items()
                 if not k.startswith(("up_blocks.", "conv_out.", "conv_norm_out."))}
    diffusers.update({"controlnet_cond_embedding.conv_in.weight": ("F16", [16, 3, 3, 3]),
                      "controlnet_mid_block.weight": ("F16", [1280, 1280, 1, 1]),
                      "controlnet_down_blocks.0.weight": ("F16", [320, 320, 1, 1])})
    # Flux ControlNets (XLabs in BFL names, InstantX in diffusers names): a few Flux blocks, no output layer
    xlabs = {k: (d, s) for k, (d, s) in load_spec("flux_dev")["tensors"].items()
             if k.startswith(("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "double_blocks.0.",
                              "double_blocks.1."))}
    xlabs["controlnet_blocks.0.weight"] = ("BF16", [3072, 3072])
    xlabs["input_hint_block.0.weight"] = ("BF16", [16, 3, 3, 3])
    instantx = {k: (d, s) for k, (d, s) in load_spec("dit_flux_diffusers")["tensors"].items()
                if not k.startswith(("proj_out.", "norm_out."))}
    instantx["controlnet_x_embedder.weight"] = ("BF16", [3072, 64])
    instantx["controlnet_blocks.0.weight"] = ("BF16", [3072, 3072])
    sd3 = {k: (d, s) for k, (d, s) in load_spec("dit_sd3_diffusers")["tensors"].items()
           if not k.startswith(("proj_out.", "norm_out."))}
    sd3["controlnet_blocks.0.weight"] = ("F16", [1536, 1536])
    sd3["pos_embed_input.proj.weight"] = ("F16", [1536, 16, 2, 2])
    cases = (("control_sd15_ldm", ldm, "sd1"), ("controlnet_sdxl_diffusers", diffusers, "sdxl"),
             ("controlnet_flux_xlabs", xlabs, "flux"), ("controlnet_flux_instantx", instantx, "flux"),
             ("controlnet_sd3_diffusers", sd3, "sd3"))
    for label, tensors, family in cases:
        ident = identify_path(write_sparse(tmp_path / f"{label}.safetensors", tensors), families=FAMILIES)
        assert (ident.family, ident.kind) == (family, "controlnet"), (label, ident.summary())
        assert ident.details["ui_folders"]["comfyui"] == "models/controlnet"


def test_identification_round_trips_through_json(fixture_dir: Path) -> None:
    for name in ("sdxl_base", "lora_flux_kohya", "vae_flux", "sd3_medium"):
        ident = identify_path(_file(fixture_dir, name), families=FAMILIES)
        data = json.loads(json.dumps(ident.to_dict()))
        assert list(data)[:3] == ["family", "kind", "variant"]
        assert Identification.from_dict(data) == ident
        assert Identification.from_dict(data).to_dict() == data


def test_bad_files_give_specific_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFileError):
        identify_path(empty, families=FAMILIES)
    html = tmp_path / "model.safetensors"
    html.write_bytes(b"<html><body>403 Forbidden</body></html>")
    with pytest.raises(NotSafetensorsError, match="HTML"):
        identify_path(html, families=FAMILIES)
    full = write_fixture(tmp_path, "lora_sd15_kohya")
    with open(full, "r+b") as f:
        f.truncate(full.stat().st_size - 1000)
    with pytest.raises(TruncatedFileError, match="truncated"):
        identify_path(full, families=FAMILIES)
    gguf = tmp_path / "flux.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(TruncatedFileError, match="GGUF"):
        identify_path(gguf, families=FAMILIES)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UnsupportedFormatError):
        identify_path(text, families=FAMILIES)
    with pytest.raises(FileAccessError):
        identify_path(tmp_path / "missing.safetensors", families=FAMILIES)
    for exc_type in (EmptyFileError, NotSafetensorsError, TruncatedFileError, UnsupportedFormatError):
        assert issubclass(exc_type, HeaderError)


def test_extensionless_file_is_sniffed(tmp_path: Path) -> None:
    path = write_fixture(tmp_path, "lora_sd15_kohya", filename="downloaded_file")
    assert identify_path(path, families=FAMILIES).family == "sd1"


def test_safetensors_under_a_pytorch_name_is_read_as_safetensors(tmp_path: Path) -> None:
    path = write_fixture(tmp_path, "lora_sd15_kohya", filename="pytorch_lora_weights.bin")
    ident = identify_path(path, families=FAMILIES)
    assert (ident.family, ident.kind) == ("sd1", "lora")
    assert ident.details["container"].startswith("safetensors")


# -- diffusers folders -------------------------------------------------------------------------------
def _diffusers_folder(root: Path, pipeline: str, components: dict[str, dict[str, Any] | None],
                      weights: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    index: dict[str, Any] = {"_class_name": pipeline, "_diffusers_version": "0.30.0"}
    for comp, cfg in components.items():
        if cfg is None:
            index[comp] = [None, None]
            continue
        index[comp] = [cfg.pop("_library", "diffusers"), cfg.get("_class_name", "X")]
        (root / comp).mkdir()
        name = "scheduler_config.json" if comp == "scheduler" else "config.json"
        (root / comp / name).write_text(json.dumps(cfg))
    for comp, fixture in (weights or {}).items():
        write_fixture(root / comp, fixture, filename="diffusion_pytorch_model.safetensors")
    (root / "model_index.json").write_text(json.dumps(index))
    return root


SDXL_UNET_CONFIG = {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 2048, "in_channels": 4,
                    "block_out_channels": [320, 640, 1280], "addition_embed_type": "text_time",
                    "projection_class_embeddings_input_dim": 2816}


def test_diffusers_folders(tmp_path: Path) -> None:
    sdxl = _diffusers_folder(tmp_path / "sdxl", "StableDiffusionXLPipeline", {
        "unet": dict(SDXL_UNET_CONFIG), "vae": {"_class_name": "AutoencoderKL", "latent_channels": 4},
        "text_encoder": {"_library": "transformers", "_class_name": "CLIPTextModel", "hidden_size": 768},
        "text_encoder_2": {"_library": "transformers", "_class_name": "CLIPTextModelWithProjection",
                           "hidden_size": 1280},
        "scheduler": {"_class_name": "EulerDiscreteScheduler", "prediction_type": "epsilon"}},
        weights={"unet": "unet_sdxl_diffusers"})
    ident = identify_path(sdxl, families=FAMILIES)
    assert (ident.family, ident.kind, ident.variant, ident.format) == ("sdxl", "checkpoint", None, "diffusers")
    assert ident.components == ["unet", "vae", "clip_l", "clip_g"]
    assert ident.precision == "fp16" and ident.details["prediction"] == "eps"

    sd2v = _diffusers_folder(tmp_path / "sd2", "StableDiffusionPipeline", {
        "unet": {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 1024, "in_channels": 4,
                 "block_out_channels": [320, 640, 1280, 1280]},
        "text_encoder": {"_library": "transformers", "_class_name": "CLIPTextModel", "hidden_size": 1024},
        "safety_checker": None,
        "scheduler": {"_class_name": "DDIMScheduler", "prediction_type": "v_prediction"}})
    ident = identify_path(sd2v, families=FAMILIES)
    assert (ident.family, ident.variant, ident.components) == ("sd2", "v-prediction", ["unet", "clip_h"])

    # SD2's widths with an image embedding: unCLIP, not a text-to-image SD2 (as label_emb says in a single file)
    unclip = _diffusers_folder(tmp_path / "unclip", "StableUnCLIPPipeline", {
        "unet": {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 1024, "in_channels": 4,
                 "block_out_channels": [320, 640, 1280, 1280], "class_embed_type": "projection",
                 "projection_class_embeddings_input_dim": 2048}})
    assert (identify_path(unclip, families=FAMILIES).family, identify_path(unclip, families=FAMILIES).variant) \
        == ("sd2", "unclip")
    # Stable Video Diffusion: SD2's widths and 8 input channels, but a spatio-temporal UNet (not SD2 pix2pix)
    svd = _diffusers_folder(tmp_path / "svd", "StableVideoDiffusionPipeline", {
        "unet": {"_class_name": "UNetSpatioTemporalConditionModel", "cross_attention_dim": 1024, "in_channels": 8,
                 "block_out_channels": [320, 640, 1280, 1280], "addition_time_embed_dim": 256,
                 "projection_class_embeddings_input_dim": 768}})
    assert identify_path(svd, families=FAMILIES).family == "unknown"

    inpaint = _diffusers_folder(tmp_path / "inpaint", "StableDiffusionInpaintPipeline", {
        "unet": {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768, "in_channels": 9,
                 "block_out_channels": [320, 640, 1280, 1280]}})
    assert (identify_path(inpaint, families=FAMILIES).family, identify_path(inpaint, families=FAMILIES).variant) \
        == ("sd1", "inpaint")

    sd35 = _diffusers_folder(tmp_path / "sd35", "StableDiffusion3Pipeline", {
        "transformer": {"_class_name": "SD3Transformer2DModel", "num_layers": 38, "qk_norm": "rms_norm"},
        "text_encoder_3": {"_library": "transformers", "_class_name": "T5EncoderModel", "d_model": 4096}})
    ident = identify_path(sd35, families=FAMILIES)
    assert (ident.family, ident.variant, ident.details["generation"]) == ("sd3", "large", "3.5")
    assert ident.components == ["dit", "t5"]

    schnell = _diffusers_folder(tmp_path / "schnell", "FluxPipeline", {
        "transformer": {"_class_name": "FluxTransformer2DModel", "guidance_embeds": False, "in_channels": 64}},
        weights={"transformer": "dit_flux_diffusers"})
    ident = identify_path(schnell, families=FAMILIES)
    assert (ident.family, ident.variant, ident.precision) == ("flux", "schnell", "bf16")


def test_component_folder_and_broken_folders(tmp_path: Path) -> None:
    unet = tmp_path / "unet"
    write_fixture(unet, "unet_sdxl_diffusers", filename="diffusion_pytorch_model.safetensors")
    (unet / "config.json").write_text(json.dumps(SDXL_UNET_CONFIG))
    ident = identify_path(unet, families=FAMILIES)
    assert (ident.family, ident.kind, ident.format) == ("sdxl", "diffusion_model", "diffusers")

    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(UnsupportedFormatError, match="not a diffusers model"):
        identify_path(empty, families=FAMILIES)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    with pytest.raises(UnsupportedFormatError, match="not valid JSON"):
        identify_path(broken, families=FAMILIES)


# -- the family table is open to plugins --------------------------------------------------------------
def _playground_family() -> Family:
    def match(view: HeaderView) -> FamilyMatch | None:
        if view.has("edm_mean") and view.model.dim("label_emb.0.0.weight", 1) == 2816:
            return FamilyMatch(components=["unet"], details={"prediction": "edm"},
                               evidence=[Evidence("family", "playground_v25", "edm_mean/edm_std on an SDXL UNet")])
        return None

    return Family("playground_v25", match, priority=10, latent_channels=4, aliases=("pg25",))


def test_plugin_family_takes_priority_through_the_registry(tmp_path: Path, plugin_registration) -> None:  # type: ignore[no-untyped-def]
    tensors = {k: tuple(v) for k, v in load_spec("sdxl_base")["tensors"].items()}
    tensors.update({"edm_mean": ("F32", [1, 4, 1, 1]), "edm_std": ("F32", [1, 4, 1, 1])})
    path = write_sparse(tmp_path / "playground.safetensors", tensors)
    assert hub.identify_path(path).family == "sdxl"  # built-ins only, through the plugin manager

    class PlaygroundPlugin:
        @hookimpl
        def register_families(self, register: Any) -> None:
            register(_playground_family())

    plugin_registration(PlaygroundPlugin(), "playground")
    ident = hub.identify_path(path)
    assert (ident.family, ident.kind) == ("playground_v25", "checkpoint")
    assert ident.components == ["unet", "vae", "clip_l", "clip_g"]
    assert hub.identify_path(write_fixture(tmp_path, "sd15")).family == "sd1"  # the others still work


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_identify_json_and_errors(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = write_fixture(tmp_path, "flux_schnell")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 4)
    result = run_cli("identify", "--json", str(good), str(bad))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data[0]["family"], data[0]["kind"], data[0]["variant"]) == ("flux", "diffusion_model", "schnell")
    assert data[1]["error_type"] == "TruncatedFileError" and str(bad) in data[1]["error"]
    text = run_cli("identify", str(good))
    assert text.exit_code == 0
    assert "flux diffusion model (schnell), bf16" in text.stdout
    assert "img_in.weight shape [3072, 64]" in text.stdout


def test_cli_info_reports_the_contract_words(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_fixture(tmp_path, "lora_sdxl_kohya")
    result = run_cli("info", "--json", str(path))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["family"], data["kind"], data["variant"]) == ("sdxl", "lora", None)
    assert data["lora"]["format"] == "kohya" and data["lora"]["parts"] == ["unet", "te1", "te2"]


def test_other_lora_namings(tmp_path: Path) -> None:
    # old diffusers attention-processor LoRA (SD1.5)
    old = {}
    for block, width in ((0, 320), (1, 640)):
        base = f"unet.down_blocks.{block}.attentions.0.transformer_blocks.0"
        old[f"{base}.attn1.processor.to_q_lora.down.weight"] = ("F32", [4, width])
        old[f"{base}.attn1.processor.to_q_lora.up.weight"] = ("F32", [width, 4])
        old[f"{base}.attn2.processor.to_k_lora.down.weight"] = ("F32", [4, 768])
        old[f"{base}.attn2.processor.to_k_lora.up.weight"] = ("F32", [width, 4])
    ident = identify_path(write_sparse(tmp_path / "attnproc.safetensors", old), families=FAMILIES)
    assert (ident.family, ident.kind, ident.lora.format, ident.lora.rank) == ("sd1", "lora", "diffusers", 4)  # type: ignore[union-attr]

    # XLabs Flux LoRA: bare double_blocks names with processor.*_lora1/2
    xlabs = {}
    for i in range(19):
        for proc, out in (("qkv_lora1", 9216), ("proj_lora1", 3072), ("qkv_lora2", 9216), ("proj_lora2", 3072)):
            xlabs[f"double_blocks.{i}.processor.{proc}.down.weight"] = ("BF16", [16, 3072])
            xlabs[f"double_blocks.{i}.processor.{proc}.up.weight"] = ("BF16", [out, 16])
    ident = identify_path(write_sparse(tmp_path / "xlabs.safetensors", xlabs), families=FAMILIES)
    assert (ident.family, ident.lora.format, ident.lora.rank, ident.lora.modules) == ("flux", "xlabs", 16, 76)  # type: ignore[union-attr]

    # BFL Flux control LoRA: img_in widened from 128 channels (Depth/Canny)
    control = {"img_in.lora_A.weight": ("BF16", [128, 128]), "img_in.lora_B.weight": ("BF16", [3072, 128]),
               "double_blocks.0.img_attn.qkv.lora_A.weight": ("BF16", [128, 3072]),
               "double_blocks.0.img_attn.qkv.lora_B.weight": ("BF16", [9216, 128])}
    ident = identify_path(write_sparse(tmp_path / "control.safetensors", control), families=FAMILIES)
    assert (ident.family, ident.variant, ident.lora.format) == ("flux", "control", "diffusers")  # type: ignore[union-attr]


def test_distilled_sdxl_is_flagged(tmp_path: Path) -> None:
    # SSD-1B keeps SDXL's widths with 4 instead of 10 transformer blocks in the deepest level
    tensors = {k: (d, s) for k, (d, s) in load_spec("sdxl_base")["tensors"].items()
               if not any(f".{i}.1.transformer_blocks.{t}." in k for i in (7, 8) for t in range(4, 10))}
    ident = identify_path(write_sparse(tmp_path / "ssd1b.safetensors", tensors), families=FAMILIES)
    assert (ident.family, ident.details["transformer_depth"], ident.details["distilled"]) == ("sdxl", 4, True)
    full = identify_path(write_fixture(tmp_path, "sdxl_base"), families=FAMILIES)
    assert full.details["transformer_depth"] == 10 and "distilled" not in full.details


def test_prediction_markers_and_unknown(tmp_path: Path) -> None:
    """ComfyUI's SDXL.model_type markers (comfy/supported_models.py): edm_vpred.sigma_max (CosXL) is
    v-prediction on an EDM schedule; with no marker and no metadata the answer is unknown, not eps."""
    spec = load_spec("sdxl_base")
    tensors = {k: tuple(v) for k, v in spec["tensors"].items()}
    cosxl = identify_path(write_sparse(tmp_path / "cosxl.safetensors", {
        **tensors, "edm_vpred.sigma_max": ("F32", []), "edm_vpred.sigma_min": ("F32", [])}), families=FAMILIES)
    assert (cosxl.family, cosxl.variant, cosxl.details["prediction"]) == ("sdxl", "v-prediction", "v")
    assert cosxl.details["schedule"] == "edm"
    assert any("edm_vpred.sigma_max" in e.because for e in cosxl.because("prediction"))
    plain = identify_path(write_fixture(tmp_path, "sdxl_base"), families=FAMILIES)
    assert plain.details["prediction"] is None and plain.variant is None
    why = " ".join(e.because for e in plain.because("prediction"))
    assert "unknown" in why and "v_pred" in why and "eps by convention" not in why
    meta = identify_path(write_fixture(tmp_path, "sdxl_base", filename="m.safetensors",
                                       metadata={"modelspec.prediction_type": "epsilon"}), families=FAMILIES)
    assert meta.details["prediction"] == "eps"
    sd1 = identify_path(write_sparse(tmp_path / "sd1v.safetensors", {
        **{k: tuple(v) for k, v in load_spec("sd15")["tensors"].items()}, "v_pred": ("F32", [])}), families=FAMILIES)
    assert (sd1.family, sd1.variant, sd1.details["prediction"]) == ("sd1", "v-prediction", "v")
    ref = identify_path(write_fixture(tmp_path, "sdxl_refiner"), families=FAMILIES)
    assert ref.details["prediction"] is None


# Identified-only families: the marker keys are the ones ComfyUI's detect_unet_config reads
# (comfy/model_detection.py); the shapes are the published configs' widths. A few companion blocks
# make each file look like the real layout (and give the prefix more than 5 keys).
def _blocks(prefix: str, n: int, suffix: str, shape: list[int]) -> dict[str, tuple[str, list[int]]]:
    return {f"{prefix}{i}.{suffix}": ("BF16", shape) for i in range(n)}


FOREIGN: dict[str, tuple[dict[str, tuple[str, list[int]]], str, str | None]] = {
    # FLUX.2 dev: hidden 6144 (48 x 128), 128 latent-patch channels, Mistral Small 3.1 context 3 x 5120
    "flux2_dev": ({"double_blocks.0.img_attn.norm.key_norm.scale": ("BF16", [128]),
                   "double_stream_modulation_img.lin.weight": ("BF16", [36864, 6144]),
                   "single_stream_modulation.lin.weight": ("BF16", [18432, 6144]),
                   "img_in.weight": ("BF16", [6144, 128]), "txt_in.weight": ("BF16", [6144, 15360]),
                   **_blocks("double_blocks.", 8, "img_attn.qkv.weight", [18432, 6144]),
                   **_blocks("single_blocks.", 48, "linear2.weight", [6144, 24576])}, "flux2", "dev"),
    # FLUX.2 klein 4B: hidden 3072, Qwen3-4B context 3 x 2560
    "flux2_klein": ({"double_blocks.0.img_attn.norm.key_norm.scale": ("BF16", [128]),
                     "double_stream_modulation_img.lin.weight": ("BF16", [18432, 3072]),
                     "img_in.weight": ("BF16", [3072, 128]), "txt_in.weight": ("BF16", [3072, 7680]),
                     **_blocks("double_blocks.", 5, "img_attn.qkv.weight", [9216, 3072]),
                     **_blocks("single_blocks.", 20, "linear2.weight", [3072, 12288])}, "flux2", "klein"),
    "chroma": ({"double_blocks.0.img_attn.norm.key_norm.scale": ("BF16", [128]),
                "distilled_guidance_layer.norms.0.scale": ("BF16", [5120]),
                "img_in.weight": ("BF16", [3072, 64]), "txt_in.weight": ("BF16", [3072, 4096]),
                "final_layer.linear.weight": ("BF16", [64, 3072]),
                **_blocks("double_blocks.", 19, "img_attn.qkv.weight", [9216, 3072]),
                **_blocks("single_blocks.", 38, "linear1.weight", [21504, 3072])}, "chroma", None),
    "qwen_image": ({"txt_norm.weight": ("BF16", [3584]), "img_in.weight": ("BF16", [3072, 64]),
                    "txt_in.weight": ("BF16", [3072, 3584]), "proj_out.weight": ("BF16", [64, 3072]),
                    **_blocks("transformer_blocks.", 60, "attn.to_q.weight", [3072, 3072])}, "qwen_image", None),
    "zimage": ({"cap_embedder.1.weight": ("BF16", [3840, 2560]),
                "noise_refiner.0.attention.k_norm.weight": ("BF16", [128]),
                "x_embedder.weight": ("BF16", [3840, 64]),
                **_blocks("layers.", 30, "attention.qkv.weight", [11520, 3840])}, "zimage", None),
    "lumina2": ({"cap_embedder.1.weight": ("BF16", [2304, 2304]),
                 "noise_refiner.0.attention.k_norm.weight": ("BF16", [96]),
                 "x_embedder.weight": ("BF16", [2304, 64]),
                 **_blocks("layers.", 26, "attention.qkv.weight", [4608, 2304])}, "lumina2", None),
    "hidream": ({"caption_projection.0.linear.weight": ("BF16", [2560, 4096]),
                 **_blocks("double_stream_blocks.", 16, "block.attn1.to_q.weight", [2560, 2560]),
                 **_blocks("single_stream_blocks.", 32, "block.attn1.to_q.weight", [2560, 2560])}, "hidream", None),
    "auraflow": ({"double_layers.0.attn.w1q.weight": ("BF16", [3072, 3072]),
                  "cond_seq_linear.weight": ("BF16", [3072, 2048]), "positional_encoding": ("BF16", [1, 9216, 3072]),
                  **_blocks("double_layers.", 4, "attn.w2q.weight", [3072, 3072]),
                  **_blocks("single_layers.", 32, "attn.w1q.weight", [3072, 3072])}, "auraflow", None),
    "pixart_sigma": ({"t_block.1.weight": ("F16", [6912, 1152]), "x_embedder.proj.weight": ("F16", [1152, 4, 2, 2]),
                      "y_embedder.y_embedding": ("F16", [300, 4096]),
                      **_blocks("blocks.", 28, "attn.qkv.weight", [3456, 1152])}, "pixart", "sigma"),
    "sana_1600m": ({"t_block.1.weight": ("BF16", [13440, 2240]), "x_embedder.proj.weight": ("BF16", [2240, 32, 1, 1]),
                    **_blocks("blocks.", 20, "mlp.inverted_conv.conv.weight", [11200, 2240, 1, 1])}, "sana", None),
    "hunyuan_dit": ({"mlp_t5.0.weight": ("F16", [8192, 2048]), "x_embedder.proj.weight": ("F16", [1408, 4, 2, 2]),
                     "extra_embedder.0.weight": ("F16", [5632, 3968]),
                     **_blocks("blocks.", 40, "attn1.Wqkv.weight", [4224, 1408])}, "hunyuan_dit", "1.0-1.1"),
    "hunyuan_video": ({"txt_in.individual_token_refiner.blocks.0.norm1.weight": ("BF16", [3072]),
                       "img_in.proj.weight": ("BF16", [3072, 16, 1, 2, 2]),
                       "txt_in.input_embedder.weight": ("BF16", [3072, 4096]),
                       **_blocks("double_blocks.", 20, "img_attn_qkv.weight", [9216, 3072]),
                       **_blocks("single_blocks.", 40, "linear1.weight", [21504, 3072])}, "hunyuan_video", None),
    "wan21_i2v_14b": ({"head.modulation": ("F32", [1, 2, 5120]), "patch_embedding.weight": ("BF16", [5120, 36, 1, 2, 2]),
                       "img_emb.proj.0.bias": ("BF16", [1280]),
                       **_blocks("blocks.", 40, "ffn.0.weight", [13824, 5120])}, "wan", "i2v"),
    "wan22_ti2v_5b": ({"head.modulation": ("F32", [1, 2, 3072]), "patch_embedding.weight": ("BF16", [3072, 48, 1, 2, 2]),
                       **_blocks("blocks.", 30, "ffn.0.weight", [14336, 3072])}, "wan", None),
    "ltxv": ({"adaln_single.emb.timestep_embedder.linear_1.bias": ("BF16", [2048]),
              "patchify_proj.weight": ("BF16", [2048, 128]),
              **_blocks("transformer_blocks.", 28, "attn2.to_k.weight", [2048, 4096])}, "ltxv", None),
    "cosmos_predict2": ({"x_embedder.proj.1.weight": ("BF16", [2048, 68]),
                         **_blocks("blocks.", 28, "mlp.layer1.weight", [8192, 2048])}, "cosmos", "predict2"),
    "anima": ({"x_embedder.proj.1.weight": ("BF16", [2048, 68]),
               "llm_adapter.blocks.0.cross_attn.q_proj.weight": ("BF16", [1024, 1024]),
               **_blocks("blocks.", 28, "mlp.layer1.weight", [8192, 2048])}, "anima", None),
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_identified_only_families(tmp_path: Path, name: str, prefix: str) -> None:
    tensors, family, variant = FOREIGN[name]
    if name.startswith("cosmos") or name == "anima":
        prefix = prefix and "net."  # Cosmos checkpoints keep the DiT under net.
    path = write_sparse(tmp_path / f"{name}.safetensors", {prefix + k: v for k, v in tensors.items()})
    ident = identify_path(path, families=FAMILIES)
    assert (ident.family, ident.kind, ident.variant) == (family, "diffusion_model", variant), ident.evidence
    assert ident.runnable is False and ident.to_dict()["runnable"] is False
    assert ident.components == ["dit"]
    assert cites_a_real_key(ident.evidence, set(prefix + k for k in tensors))
    assert ident.family != "flux"


def test_kolors_unet_is_not_sdxl(tmp_path: Path) -> None:
    """Kolors keeps SDXL's UNet but its ADM input is 5632 (ChatGLM3 pooled 4096 + sizes; ComfyUI Kolors)."""
    tensors = {k: tuple(v) for k, v in load_spec("sdxl_base")["tensors"].items()}
    adm = "model.diffusion_model.label_emb.0.0.weight"
    tensors[adm] = (tensors[adm][0], [1280, 5632])
    ident = identify_path(write_sparse(tmp_path / "kolors.safetensors", tensors), families=FAMILIES)
    assert (ident.family, ident.runnable) == ("kolors", False)
    assert identify_path(write_fixture(tmp_path, "sdxl_base"), families=FAMILIES).runnable is True


def test_chroma_and_flux2_keep_flux1_unchanged(tmp_path: Path) -> None:
    dev = identify_path(write_fixture(tmp_path, "flux_dev"), families=FAMILIES)
    assert (dev.family, dev.variant, dev.runnable) == ("flux", "dev", True)


def _bnb4(tensors: dict[str, tuple[str, list[int]]], quant: str = "nf4") -> dict[str, tuple[str, list[int]]]:
    """Quantise every 2-D linear weight the way bitsandbytes' Params4bit serialises it (QuantState.as_dict
    packed=True): U8 [numel/2, 1] plus .absmax (blocksize 64), .quant_map, nested_* and the packed state."""
    out: dict[str, tuple[str, list[int]]] = {}
    for name, (dtype, shape) in tensors.items():
        if name.endswith(".weight") and len(shape) == 2 and "norm" not in name:
            numel = shape[0] * shape[1]
            out[name] = ("U8", [numel // 2, 1])
            out[name + ".absmax"] = ("U8", [numel // 64])
            out[name + ".quant_map"] = ("F32", [16])
            out[name + ".nested_absmax"] = ("F32", [max(1, numel // 64 // 256)])
            out[name + ".nested_quant_map"] = ("F32", [256])
            out[name + f".quant_state.bitsandbytes__{quant}"] = ("U8", [100])
        else:
            out[name] = (dtype, list(shape))
    return out


@pytest.mark.parametrize("quant", ["nf4", "fp4"])
def test_bitsandbytes_4bit_flux(tmp_path: Path, quant: str) -> None:
    """flux1-dev-bnb-nf4 layout: packed U8 weights whose true widths come back from their biases."""
    spec = load_spec("flux_dev")
    ident = identify_path(write_sparse(tmp_path / "nf4.safetensors", _bnb4(
        {k: (d, list(s)) for k, (d, s) in spec["tensors"].items()}, quant)), families=FAMILIES)
    assert (ident.family, ident.variant, ident.precision) == ("flux", "dev", quant)
    assert ident.details["quantization"] == f"bitsandbytes_{quant}"
    assert any("bitsandbytes" in e.because for e in ident.because("precision"))


def test_fp8_precision_names_and_scaled_fp8(tmp_path: Path) -> None:
    spec = load_spec("flux_dev")
    e5 = {k: ("F8_E5M2" if len(s) == 2 else d, list(s)) for k, (d, s) in spec["tensors"].items()}
    ident = identify_path(write_sparse(tmp_path / "e5m2.safetensors", e5), families=FAMILIES)
    assert (ident.family, ident.precision) == ("flux", "fp8_e5m2")
    e4 = {k: ("F8_E4M3" if len(s) == 2 else d, list(s)) for k, (d, s) in spec["tensors"].items()}
    scaled = {**e4, "scaled_fp8": ("F8_E4M3", [0]),
              **{k[: -len("weight")] + "scale_weight": ("F32", [1]) for k, (d, s) in e4.items() if d == "F8_E4M3"}}
    ident = identify_path(write_sparse(tmp_path / "scaled.safetensors", scaled), families=FAMILIES)
    assert (ident.family, ident.variant, ident.precision) == ("flux", "dev", "fp8_e4m3fn")
    assert ident.details["quantization"] == "comfyui_scaled_fp8"


# Other kinds: key names from the reference implementations (lllyasviel ControlNet cldm, diffusers
# ControlNetModel / FluxControlNetModel, XLabs x-flux, TencentARC T2I-Adapter, h94 IP-Adapter, HF
# CLIPVisionModelWithProjection, ESRGAN / BasicSR RRDBNet / SwinIR); shapes from the published configs.
def _f16(**tensors: list[int]) -> dict[str, tuple[str, list[int]]]:
    return {k.replace("__", "."): ("F16", v) for k, v in tensors.items()}


OTHER_KINDS: dict[str, tuple[dict[str, tuple[str, list[int]]], str, str, dict[str, Any]]] = {
    "controlnet_sd15": ({**_f16(**{"control_model__input_hint_block__0__weight": [16, 3, 3, 3],
                                   "control_model__input_blocks__0__0__weight": [320, 4, 3, 3],
                                   "control_model__middle_block_out__0__weight": [1280, 1280, 1, 1]}),
                         "control_model.zero_convs.0.0.weight": ("F16", [320, 320, 1, 1]),
                         "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768])},
                        "controlnet", "sd1", {}),
    "controlnet_sdxl_diffusers": ({"controlnet_cond_embedding.conv_in.weight": ("F16", [16, 3, 3, 3]),
                                   "controlnet_down_blocks.0.weight": ("F16", [320, 320, 1, 1]),
                                   "conv_in.weight": ("F16", [320, 4, 3, 3]),
                                   "add_embedding.linear_1.weight": ("F16", [1280, 2816]),
                                   "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": ("F16", [640, 2048])},
                                  "controlnet", "sdxl", {}),
    "controlnet_flux_instantx": ({"controlnet_blocks.0.weight": ("BF16", [3072, 3072]),
                                  "controlnet_x_embedder.weight": ("BF16", [3072, 64]),
                                  "x_embedder.weight": ("BF16", [3072, 64]),
                                  "transformer_blocks.0.attn.norm_added_k.weight": ("BF16", [128]),
                                  "single_transformer_blocks.0.proj_mlp.weight": ("BF16", [12288, 3072]),
                                  "controlnet_single_blocks.0.weight": ("BF16", [3072, 3072])}, "controlnet", "flux", {}),
    "controlnet_flux_xlabs": ({"controlnet_blocks.0.weight": ("BF16", [3072, 3072]),
                               "double_blocks.0.img_attn.norm.key_norm.scale": ("BF16", [128]),
                               "input_hint_block.0.weight": ("BF16", [16, 3, 3, 3]),
                               "img_in.weight": ("BF16", [3072, 64]), "txt_in.weight": ("BF16", [3072, 4096])},
                              "controlnet", "flux", {}),
    "t2i_adapter_sd15": (_f16(conv_in__weight=[320, 192, 3, 3], body__0__block1__weight=[320, 320, 3, 3]),
                         "t2i_adapter", "unknown", {}),
    # diffusers T2IAdapter full_adapter_xl (TencentARC/t2i-adapter-*-sdxl-1.0): 3 x 16 x 16 unshuffled pixels
    "t2i_adapter_sdxl": (_f16(adapter__conv_in__weight=[320, 768, 3, 3],
                              adapter__body__0__resnets__0__block1__weight=[320, 320, 3, 3]), "t2i_adapter", "sdxl", {}),
    # realesr-general-x4v3 (SRVGGNetCompact num_feat 64, num_conv 32): body.0 conv, PReLUs, last conv 3 x 4 x 4
    "realesrgan_compact_x4": ({**{f"body.{i}.weight": ("F32", [64, 64, 3, 3] if i % 2 == 0 else [64]) for i in range(1, 66)},
                               "body.0.weight": ("F32", [64, 3, 3, 3]), "body.66.weight": ("F32", [48, 64, 3, 3])},
                              "upscaler", "unknown", {"architecture": "SRVGGNetCompact", "scale": 4}),
    "ip_adapter_sd15": (_f16(image_proj__proj__weight=[3072, 1024], image_proj__norm__weight=[768],
                             ip_adapter__1__to_k_ip__weight=[320, 768], ip_adapter__1__to_v_ip__weight=[320, 768]),
                        "ip_adapter", "sd1", {}),
    "ip_adapter_sdxl": (_f16(image_proj__proj__weight=[8192, 1280], image_proj__norm__weight=[2048],
                             ip_adapter__1__to_k_ip__weight=[640, 2048], ip_adapter__1__to_v_ip__weight=[640, 2048]),
                        "ip_adapter", "sdxl", {}),
    "clip_vision_h": (_f16(vision_model__embeddings__class_embedding=[1280],
                           vision_model__embeddings__patch_embedding__weight=[1280, 3, 14, 14],
                           vision_model__encoder__layers__0__self_attn__q_proj__weight=[1280, 1280],
                           visual_projection__weight=[1024, 1280]),
                      "clip_vision", "unknown", {"vision_model": "ViT-H/14"}),
    "esrgan_old": ({"model.0.weight": ("F32", [64, 3, 3, 3]), "model.1.sub.0.RDB1.conv1.0.weight": ("F32", [32, 64, 3, 3]),
                    "model.3.weight": ("F32", [64, 64, 3, 3]), "model.10.weight": ("F32", [3, 64, 3, 3])},
                   "upscaler", "unknown", {"architecture": "ESRGAN"}),
    "realesrgan_x2plus": ({"conv_first.weight": ("F32", [64, 12, 3, 3]), "body.0.rdb1.conv1.weight": ("F32", [32, 64, 3, 3]),
                           "conv_up1.weight": ("F32", [64, 64, 3, 3]), "conv_last.weight": ("F32", [3, 64, 3, 3])},
                          "upscaler", "unknown", {"architecture": "RRDBNet", "scale": 2}),
    # Stability control-lora-canny-rank128: SDXL ControlNet as LoRA pairs (.up/.down) beside a lora_controlnet marker
    "control_lora_sdxl": ({"lora_controlnet": ("F16", [0]), "input_hint_block.0.weight": ("F16", [16, 3, 3, 3]),
                           "zero_convs.0.0.weight": ("F16", [320, 320, 1, 1]),
                           "label_emb.0.0.down": ("F16", [128, 2816]), "label_emb.0.0.up": ("F16", [1280, 128]),
                           "input_blocks.4.1.transformer_blocks.0.attn2.to_k.down": ("F16", [128, 2048]),
                           "input_blocks.4.1.transformer_blocks.0.attn2.to_k.up": ("F16", [640, 128]),
                           "middle_block_out.0.weight": ("F16", [1280, 1280, 1, 1])},
                          "controlnet", "sdxl", {"format": "control-lora", "rank": 128}),
    # flux1-redux-dev: SigLIP so400m (1152) -> 3 x 4096 -> Flux's 4096-wide text tokens (ComfyUI ReduxImageEncoder)
    "flux_redux": ({"redux_up.weight": ("BF16", [12288, 1152]), "redux_up.bias": ("BF16", [12288]),
                    "redux_down.weight": ("BF16", [4096, 12288]), "redux_down.bias": ("BF16", [4096])},
                   "style_model", "flux", {"image_features": 1152}),
    # DAT x4 (spandrel's DATArch markers; embed 180, pixel-shuffle x2 twice)
    "dat_x4": ({"conv_first.weight": ("F32", [180, 3, 3, 3]), "before_RG.1.weight": ("F32", [180]),
                "layers.0.blocks.0.attn.attns.0.rpe_biases": ("F32", [945, 2]),
                "layers.0.blocks.0.ffn.sg.conv.weight": ("F32", [360, 1, 3, 3]),
                "conv_after_body.weight": ("F32", [180, 180, 3, 3]),
                "conv_before_upsample.0.weight": ("F32", [64, 180, 3, 3]),
                "upsample.0.weight": ("F32", [256, 64, 3, 3]), "upsample.2.weight": ("F32", [256, 64, 3, 3]),
                "conv_last.weight": ("F32", [3, 64, 3, 3])},
               "upscaler", "unknown", {"architecture": "DAT", "scale": 4}),
    "swinir": ({"conv_first.weight": ("F32", [180, 3, 3, 3]),
                "layers.0.residual_group.blocks.0.attn.relative_position_bias_table": ("F32", [225, 6])},
               "upscaler", "unknown", {"architecture": "SwinIR"}),
}


@pytest.mark.parametrize("name", sorted(OTHER_KINDS))
def test_other_kinds(tmp_path: Path, name: str) -> None:
    tensors, kind, family, details = OTHER_KINDS[name]
    ident = identify_path(write_sparse(tmp_path / f"{name}.safetensors", tensors), families=FAMILIES)
    assert (ident.kind, ident.family) == (kind, family), ident.evidence
    assert ident.details["ui_folders"]["comfyui"].startswith("models/")
    for key, value in details.items():
        assert ident.details[key] == value
    assert ident.because("kind") and ident.because("family")


def test_unknown_dit_names_what_it_saw(tmp_path: Path) -> None:
    """A DiT no family covers (Genmo Mochi: ComfyUI's model_detection keys it by t5_yproj) is a diffusion model
    of unknown family, and the answer lists its top-level modules and a telling shape."""
    tensors = {"model.diffusion_model.t5_yproj.weight": ("BF16", [1536, 4096]),
               "model.diffusion_model.x_embedder.proj.weight": ("BF16", [3072, 12, 2, 2])}
    for i in range(48):
        tensors[f"model.diffusion_model.blocks.{i}.attn.qkv_x.weight"] = ("BF16", [9216, 3072])
    ident = identify_path(write_sparse(tmp_path / "mochi.safetensors", tensors), families=FAMILIES)
    assert (ident.family, ident.kind, ident.components) == ("unknown", "diffusion_model", ["dit"])
    seen = ident.because("family")[-1].because
    assert "blocks.* (48)" in seen and "t5_yproj.* (1)" in seen
    assert "model.diffusion_model.blocks.0.attn.qkv_x.weight shape [9216, 3072]" in seen

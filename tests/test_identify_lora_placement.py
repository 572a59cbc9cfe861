"""LoRAs placed by every adapted layer (issue 19 items 1-2): partial LoRAs that adapt no cross-attention
K/V, text-encoder-only LoRAs, OneTrainer/ComfyUI/LyCORIS namings, and honest unknowns.

Every layout is a real trainer's: either a fixture LoRA (kohya sd-scripts / LyCORIS names and shapes
from the real model classes, ``tests/make_headers.py``) filtered to the layers a partial LoRA adapts, or a
LoRA over a full-size checkpoint's real Linear/Conv weights in another trainer's naming
(``tests/lora_layouts.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.identify import Identification, identify_path
from hub_plugins.families import builtin_families
from tests.headers import Tensors, write_sparse
from tests.lora_layouts import from_model, lycoris_from, subset

FAMILIES = builtin_families()


def _identify(tmp_path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> Identification:
    return identify_path(write_sparse(tmp_path / "lora.safetensors", tensors, metadata), families=FAMILIES)


def _cites(ident: Identification, tensors: Tensors, what: str = "family") -> bool:
    """Some evidence for ``what`` names a tensor really in the file."""
    return any(tok in tensors for e in ident.because(what) for tok in e.because.replace(",", " ").replace(";", " ")
               .replace(":", " ").split())


def _attn1_ff(name: str) -> bool:
    return name.startswith("lora_unet_") and ("_attn1_" in name or "_ff_net_" in name)


PLACED = {
    # SDXL LoRAs that adapt no cross-attention K/V: decided by where their layers sit and how wide they are
    "sdxl_attn1_ff": (lambda: subset("lora_sdxl_kohya", _attn1_ff), "sdxl", "sd1 has no attention there"),
    "sdxl_proj_only": (lambda: subset("lora_sdxl_kohya", lambda n: "_proj_in." in n or "_proj_out." in n), "sdxl",
                       "output block 0"),
    "sdxl_first_block_attn1": (lambda: subset("lora_sdxl_kohya", lambda n: "transformer_blocks_0_attn1" in n), "sdxl",
                               "output block 0"),
    "sdxl_locon_resnets": (lambda: subset("lora_sdxl_locon", lambda n: "_0_in_layers_" in n or "_0_out_layers_" in n),
                           "sdxl", "640 channels"),
    # OneTrainer's own format: dotted unet.<SGM names> with lora_down/lora_up/alpha and DoRA scales
    "sdxl_onetrainer_dora": (lambda: from_model("sdxl_base", "model.diffusion_model.", "unet.",
                                                lambda p: p.endswith(("attn1.to_q", "attn1.to_k", "ff.net.2")),
                                                dora=True), "sdxl", "sd1 has no attention there"),
    # LyCORIS LoHa with Tucker cores on the resnet convs: w1_a is [r, out], the core carries the kernel
    "sdxl_loha_tucker_resnets": (lambda: from_model("sdxl_base", "model.diffusion_model.", "lora_unet_",
                                                    lambda p: p.endswith(("in_layers.2", "out_layers.3")),
                                                    algo="loha_tucker", kohya=True), "sdxl", "640 channels"),
    # SD1: proj_in/proj_out are 1x1 convolutions; SD2's are linear (use_linear_projection)
    "sd15_proj_only": (lambda: subset("lora_sd15_kohya", lambda n: "_proj_in." in n or "_proj_out." in n), "sd1",
                       "sd2's proj_in is a linear layer"),
    "sd21_proj_ff": (lambda: subset("lora_sd21_kohya", lambda n: "_proj_in." in n or "_ff_net_" in n), "sd2",
                     "sd1's proj_in is a 1x1 convolution"),
    "sd15_attn1_ff_with_te": (lambda: subset("lora_sd15_kohya", lambda n: _attn1_ff(n) or n.startswith("lora_te_")),
                              "sd1", "1024 wide"),
    # ComfyUI names on the refiner's real widths (384/768/1536)
    "refiner_comfyui_attn1": (lambda: from_model("sdxl_refiner", "model.diffusion_model.", "diffusion_model.",
                                                 lambda p: ".attn1." in p), "sdxl_refiner", "1536 channels"),
}


@pytest.mark.parametrize("name", sorted(PLACED))
def test_partial_unet_loras_are_placed_by_their_layers(tmp_path: Path, name: str) -> None:
    build, family, because = PLACED[name]
    tensors = build()
    assert not any("attn2_to_k" in k or "attn2.to_k" in k for k in tensors)  # the old rule had nothing to go on
    ident = _identify(tmp_path, tensors)
    assert (ident.kind, ident.family, ident.candidates) == ("lora", family, [family]), ident.evidence
    assert _cites(ident, tensors), [str(e) for e in ident.because("family")]
    assert any(because in e.because for e in ident.because("family")), [str(e) for e in ident.because("family")]
    others = {"sd1", "sd2", "sdxl", "sdxl_refiner"} - {family}
    ruled = {e.because.split(":", 1)[0].removeprefix("not ") for e in ident.because("family")
             if e.because.startswith("not ")}
    assert ruled == others  # each other UNet family is ruled out by a named layer
    assert not ident.warnings


def test_onetrainer_format_and_dora(tmp_path: Path) -> None:
    ident = _identify(tmp_path, PLACED["sdxl_onetrainer_dora"][0]())
    assert ident.lora is not None and (ident.lora.format, ident.lora.dora, ident.lora.rank) == ("onetrainer", True, 8)


AMBIGUOUS = {
    # CLIP-G alone: SDXL's second text encoder, the refiner's only one, and SD3's clip_g have the same names
    "te2_only": (lambda: subset("lora_sdxl_kohya", lambda n: n.startswith("lora_te2_")),
                 ["sdxl", "sdxl_refiner", "sd3"], "sdxl_base_v1-0", "sdxl"),
    # CLIP-L + CLIP-G under kohya's lora_te1_/lora_te2_: SDXL or SD3 (the refiner has no CLIP-L)
    "te1_te2": (lambda: subset("lora_sdxl_kohya", lambda n: n.startswith("lora_te")), ["sdxl", "sd3"], "medium",
                "sd3"),
    # CLIP-L under lora_te1_: any two-encoder family with CLIP-L (Flux's second is T5)
    "te1_only": (lambda: subset("lora_sdxl_kohya", lambda n: n.startswith("lora_te1_")), ["sdxl", "sd3", "flux"],
                 "flux1", "flux"),
    # SD1 and SD2 UNets have the same block widths; only proj_in's kind or a text encoder's width tells
    "sd1_sd2_attn1_ff": (lambda: subset("lora_sd15_kohya", _attn1_ff), ["sd1", "sd2"], "sd_v1", "sd1"),
    "sd1_sd2_locon_resnets": (lambda: subset("lora_sd15_locon", lambda n: "_resnets_" in n), ["sd1", "sd2"],
                              "sd_v2", "sd2"),
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_layers_that_fit_several_families_stay_unknown(tmp_path: Path, name: str) -> None:
    build, candidates, base, family = AMBIGUOUS[name]
    tensors = build()
    ident = _identify(tmp_path, tensors)
    assert (ident.kind, ident.family, ident.candidates) == ("lora", "unknown", candidates), ident.evidence
    unknown = ident.because("family")[-1]
    assert unknown.value == "unknown" and ", ".join(candidates) in unknown.because
    assert _cites(ident, tensors)  # the unknown names what it saw
    # metadata naming one of the candidates decides, and says the layers alone did not
    named = _identify(tmp_path, tensors, {"ss_base_model_version": base})
    assert (named.family, named.candidates) == (family, [family])
    assert "metadata only" in named.because("family")[-1].because


def test_metadata_outside_the_fitting_families_is_refused(tmp_path: Path) -> None:
    tensors = subset("lora_sdxl_kohya", lambda n: n.startswith("lora_te2_"))
    ident = _identify(tmp_path, tensors, {"ss_base_model_version": "sd_v1"})
    assert ident.family == "unknown" and ident.warnings
    assert ident.candidates == ["sdxl", "sdxl_refiner", "sd3"]


def test_kolors_metadata_wins_over_sdxl_widths(tmp_path: Path) -> None:
    """Kolors keeps SDXL's UNet widths (only its 4096-wide cross-attention K/V differ): with no K/V
    adapted, the widths cannot tell them apart, so the metadata's Kolors is not overruled."""
    tensors = subset("lora_sdxl_kohya", _attn1_ff)
    assert _identify(tmp_path, tensors, {"ss_base_model_version": "kolors"}).family == "kolors"
    assert _identify(tmp_path, tensors).family == "sdxl"


def test_layers_of_two_unets_are_no_family(tmp_path: Path) -> None:
    """SD1's first attention blocks (320 channels, which SDXL lacks) next to SDXL's output block 0
    attention (which SD1 lacks): no UNet has both, so nothing is claimed, and the answer names what it saw."""
    tensors = {**subset("lora_sd15_kohya", lambda n: "_attn1_" in n),
               **subset("lora_sdxl_kohya", lambda n: "output_blocks_0_1_" in n and "attn2" not in n)}
    ident = _identify(tmp_path, tensors)
    assert (ident.family, ident.candidates) == ("unknown", [])
    assert "seen: lora_unet_" in ident.because("family")[-1].because
    # and metadata cannot talk it into SD1 or SDXL
    for base, fam in (("sd_v1", "sd1"), ("sdxl_base_v1-0", "sdxl")):
        named = _identify(tmp_path, tensors, {"ss_base_model_version": base})
        assert named.family == "unknown" and named.because("conflict"), fam


def test_cross_attention_width_must_agree_with_the_other_layers(tmp_path: Path) -> None:
    """A 768-wide cross-attention K (SD1's context) on SDXL's layer layout is not SD1."""
    tensors = {**subset("lora_sdxl_kohya", _attn1_ff),
               **subset("lora_sd15_kohya", lambda n: "down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k" in n)}
    ident = _identify(tmp_path, tensors)
    assert ident.family == "unknown"


def test_dit_loras_are_not_placed_on_unets(tmp_path: Path) -> None:
    """A Flux LoRA with CLIP-L text-encoder layers stays Flux: its double/single blocks are no UNet layers."""
    tensors = {**subset("lora_flux_kohya", lambda n: True),
               **subset("lora_sdxl_kohya", lambda n: n.startswith("lora_te1_"))}
    assert _identify(tmp_path, tensors).family == "flux"


# -- SD3 / SD3.5 (item 2) ---------------------------------------------------------------------------
SD3 = {
    # SD3.5 Medium's MMDiT-X second attention alone: kohya (x_block.attn2.qkv/proj) and diffusers (attn2.to_*)
    "sd35m_kohya_attn2_only": (lambda: subset("lora_sd35_medium_kohya", lambda n: "_attn2_" in n), "medium", "3.5"),
    "sd35m_diffusers_attn2_only": (lambda: subset("lora_sd35_medium_diffusers", lambda n: ".attn2." in n),
                                   "medium", "3.5"),
    "sd35m_kohya_full": (lambda: subset("lora_sd35_medium_kohya", lambda n: True), "medium", "3.5"),
    "sd35m_kohya_context_blocks": (lambda: subset("lora_sd35_medium_kohya", lambda n: "context_block" in n),
                                   "medium", None),
    # SimpleTuner's LyCORIS names (lycoris_ + diffusers path) with LoKr factors: the width is kron(w1, w2)
    "sd35l_simpletuner_lokr": (lambda: subset("lora_sd35_large_lycoris_lokr", lambda n: True), "large", None),
    "sd35l_simpletuner_lokr_context_only": (lambda: subset("lora_sd35_large_lycoris_lokr", lambda n: "_add_" in n),
                                            "large", None),
}


@pytest.mark.parametrize("name", sorted(SD3))
def test_sd3_loras(tmp_path: Path, name: str) -> None:
    build, variant, generation = SD3[name]
    tensors = build()
    ident = _identify(tmp_path, tensors)
    assert (ident.family, ident.variant, ident.details["requires_variant"]) == ("sd3", variant, variant), ident.evidence
    assert ident.details.get("generation") == generation
    assert _cites(ident, tensors)
    if "lokr" in name:
        assert ident.lora is not None and ident.lora.format == "lycoris_lokr" and ident.lora.rank == 16
        assert any("kron(w1" in e.because for e in ident.because("family"))


def test_attn2_of_another_width_is_not_sd3(tmp_path: Path) -> None:
    """Only SD3.5 Medium's 1536-wide blocks have attn2: the same names at SD3.5 Large's 2432 are no SD3."""
    tensors = {k.replace("x_block_attn_qkv", "x_block_attn2_qkv"): v
               for k, v in subset("lora_sd35_large_kohya", lambda n: "x_block_attn_qkv" in n).items()}
    assert _identify(tmp_path, tensors).family == "unknown"


def test_lokr_factors_place_unet_loras(tmp_path: Path) -> None:
    """An SDXL LoKr without cross-attention K/V: each layer's width is w1 x w2 (8 x 80 = 640...)."""
    tensors = subset("lora_sdxl_lokr", lambda n: n.startswith("lora_unet_") and "_attn1_" in n)
    ident = _identify(tmp_path, tensors)
    assert (ident.family, ident.lora.format) == ("sdxl", "lycoris_lokr")  # type: ignore[union-attr]
    assert any("kron(w1" in e.because for e in ident.because("family"))


# -- other LyCORIS algorithms (item 3) ---------------------------------------------------------------
@pytest.mark.parametrize("algo,fmt", [("ia3", "lycoris_ia3"), ("glora", "lycoris_glora"), ("oft", "lycoris_oft"),
                                      ("boft", "lycoris_oft"), ("full", "lycoris_full")])
@pytest.mark.parametrize("fixture,family", [("lora_sdxl_kohya", "sdxl"), ("lora_sd15_kohya", "sd1"),
                                            ("lora_flux_kohya", "flux")])
def test_other_lycoris_algorithms(tmp_path: Path, algo: str, fmt: str, fixture: str, family: str) -> None:
    """Each algorithm's factors give what they can: GLoRA and full diffs in and out features, OFT blocks the
    out-features, IA3 one scale width (in or out: which is tensor data). The family is told where that is
    enough, and never guessed where it is not."""
    tensors = lycoris_from(fixture, lambda k: True, algo)
    ident = _identify(tmp_path, tensors)
    assert ident.kind == "lora" and ident.lora is not None and ident.lora.format == fmt
    per_module = {"ia3": ".on_input", "glora": ".a1.weight", "oft": ".oft_blocks", "boft": ".oft_blocks",
                  "full": ".diff"}[algo]
    assert ident.lora.modules == sum(1 for k in tensors if k.endswith(per_module))
    # Flux blocks are told by in-features, which IA3 and OFT do not carry
    expected = "unknown" if family == "flux" and algo in ("ia3", "oft", "boft") else family
    assert ident.family == expected, [str(e) for e in ident.because("family")]
    if expected != "unknown":
        assert _cites(ident, tensors)
    else:
        assert ident.because("family")[-1].value == "unknown" and not ident.warnings

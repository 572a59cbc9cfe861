"""The built-in model families: SD1.x, SD2.x, SDXL, SDXL refiner, SD3/3.5, Flux.1.

Each family is a small matcher over header shapes (``../shared/reference/architectures.md`` §3),
plus a LoRA matcher over the adapted layers' widths (§7) and a diffusers-config matcher (§5). They
are registered through the ``register_families`` hook exactly like a third-party plugin's, so a
plugin can add a family or replace one of these (``register(family, override=True)``).

Widths that decide, all read from the header:

- UNet cross-attention context width (``attn2.to_k`` in-features): 768 SD1, 1024 SD2, 2048 SDXL,
  1280 SDXL refiner; with model channels (``input_blocks.0.0`` out) 320 / 320 / 320 / 384 and the
  ADM/``label_emb`` input 2816 (SDXL) / 2560 (refiner), absent for SD1/SD2.
- MMDiT (SD3): hidden = ``x_embedder.proj`` out = 64 x depth: 1536 (24 blocks, Medium) or 2432 (38,
  Large); qk-norm (``ln_q``) marks SD3.5.
- Flux.1: hidden 3072, ``txt_in`` from T5 width 4096, ``img_in`` in-features 64 (dev with
  ``guidance_in``, schnell without), 384 (Fill), 128 (Depth/Canny: ``control``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub import hookimpl
from hub.identify import (
    DiffusersConfigs,
    Evidence,
    Family,
    FamilyMatch,
    HeaderView,
    LoraModule,
    LoraView,
    base_model_claims,
    in_channels_variant,
    prediction_from_metadata,
)

from .families_unet_lora import placement

# --------------------------------------------------------------------------------------------
# UNet families (SD1, SD2, SDXL, SDXL refiner)
# --------------------------------------------------------------------------------------------
# Cross-attention K projections, in the LDM/SGM layout and the diffusers layout, most common first.
_LDM_CROSS = ([f"input_blocks.{i}.1.transformer_blocks.0.attn2.to_k.weight" for i in (1, 2, 4, 5, 7, 8)]
              + ["middle_block.1.transformer_blocks.0.attn2.to_k.weight"]
              + [f"output_blocks.{i}.1.transformer_blocks.0.attn2.to_k.weight" for i in range(12)])
_DIFFUSERS_CROSS = ([f"down_blocks.{b}.attentions.{a}.transformer_blocks.0.attn2.to_k.weight"
                     for b in range(4) for a in range(2)]
                    + ["mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
                    + [f"up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn2.to_k.weight"
                       for b in range(4) for a in range(3)])


class UNetFacts:
    """The numbers that tell UNet families apart, with the keys they came from."""

    def __init__(self, m: HeaderView, layout: str, cross_key: str, conv_in: str, adm_key: str | None) -> None:
        self.view = m
        self.layout = layout
        self.cross_key = cross_key
        self.context_dim = m.dim(cross_key, 1)
        self.conv_in = conv_in
        self.model_channels = m.dim(conv_in, 0)
        self.in_channels = m.dim(conv_in, 1)
        self.adm_key = adm_key
        self.adm = m.dim(adm_key, 1) if adm_key else None

    def evidence(self, family: str) -> list[Evidence]:
        m = self.view
        ev = [Evidence("family", family, f"{m.full(self.cross_key)} shape {list(m.shape(self.cross_key) or [])}: "
                                         f"cross-attention context width {self.context_dim}"),
              Evidence("family", family, f"{m.full(self.conv_in)} shape {list(m.shape(self.conv_in) or [])}: "
                                         f"model channels {self.model_channels}")]
        if self.adm_key:
            ev.append(Evidence("family", family, f"{m.full(self.adm_key)} shape {list(m.shape(self.adm_key) or [])}"
                                                 f": ADM (pooled text + size) input {self.adm}"))
        else:
            ev.append(Evidence("family", family, "no label_emb/add_embedding: no ADM conditioning"))
        return ev

    def details(self) -> dict[str, Any]:
        return {"context_dim": self.context_dim, "model_channels": self.model_channels,
                "in_channels": self.in_channels, "adm_in_channels": self.adm, "layout": self.layout}


def unet_facts(view: HeaderView) -> UNetFacts | None:
    """Read the UNet's widths from the LDM/SGM layout or the diffusers layout (cached per view)."""
    cache = view.__dict__.setdefault("_unet_facts", {})
    if "v" in cache:
        return cache["v"]
    m = view.model
    facts = None
    # A UNet has its decoder half (output_blocks / up_blocks): a ControlNet is the encoder half alone
    # (plus zero convs), with the same widths, and is no diffusion model.
    if m.has("input_blocks.0.0.weight") and m.has_prefix("output_blocks."):
        cross = next((k for k in _LDM_CROSS if m.has(k)), None)
        if cross is not None:
            adm = "label_emb.0.0.weight" if m.has("label_emb.0.0.weight") else None
            facts = UNetFacts(m, "ldm", cross, "input_blocks.0.0.weight", adm)
    elif m.has("conv_in.weight") and m.has_prefix("down_blocks.") and m.has_prefix("up_blocks."):
        cross = next((k for k in _DIFFUSERS_CROSS if m.has(k)), None)
        if cross is not None:
            adm = next((k for k in ("add_embedding.linear_1.weight", "class_embedding.linear_1.weight")
                        if m.has(k)), None)
            facts = UNetFacts(m, "diffusers", cross, "conv_in.weight", adm)
    cache["v"] = facts
    return facts


def prediction_from_keys(view: HeaderView) -> tuple[str, str, dict[str, Any]] | None:
    """(prediction, because, extra details) from the marker keys ComfyUI reads (``SDXL.model_type``).

    ``edm_vpred.sigma_max``/``edm_vpred.sigma_min`` (CosXL): v-prediction on an EDM schedule (the sigma
    values are tensor data, not read); ``edm_mean`` + ``edm_std`` (Playground v2.5): EDM; ``v_pred``:
    v-prediction, ``ztsnr`` adds zero terminal SNR. None when no marker key is there.
    """
    edm_v = [k for k in ("edm_vpred.sigma_max", "edm_vpred.sigma_min") if view.has(k)]
    if edm_v:
        return "v", f"{' and '.join(edm_v)} key{'s' if len(edm_v) > 1 else ''} (CosXL-style EDM v-prediction)", {
            "schedule": "edm", "zero_terminal_snr": view.has("ztsnr")}
    if view.has("edm_mean") and view.has("edm_std"):
        return "edm", "edm_mean and edm_std keys (Playground v2.5 style EDM)", {}
    if view.has("v_pred"):
        z = view.has("ztsnr")
        return "v", "v_pred key" + (" and ztsnr key (zero terminal SNR)" if z else ""), {"zero_terminal_snr": z}
    return None


def _prediction(view: HeaderView, match: FamilyMatch, family: str) -> None:
    """Set details.prediction and the v-prediction variant from marker keys, then metadata; None (unknown)
    when neither tells: eps is only a convention, and v-prediction finetunes exist for SD1, SD2 and SDXL."""
    keys = prediction_from_keys(view)
    found = (keys[0], keys[1]) if keys else prediction_from_metadata(view.metadata)
    if keys:
        match.details.update(keys[2])
    elif view.has("ztsnr"):
        match.details["zero_terminal_snr"] = True
    if found is None:
        match.details["prediction"] = None
        seen = "a ztsnr key but " if view.has("ztsnr") else ""
        match.evidence.append(Evidence("prediction", None, (
            f"unknown: {seen}no v_pred, edm_vpred.*, edm_mean/edm_std key and no prediction metadata "
            "(modelspec.prediction_type, ss_v_parameterization, *-v architecture); "
            f"eps vs v for {family} cannot be told from the header alone")))
        return
    pred, because = found
    match.details["prediction"] = pred
    match.evidence.append(Evidence("prediction", pred, because))
    if pred == "v" and match.variant is None:
        match.variant = "v-prediction"
        match.evidence.append(Evidence("variant", "v-prediction", because))


def _variant_from_in_channels(facts: UNetFacts, match: FamilyMatch, allowed: Sequence[int]) -> bool:
    """Set the variant from the input channels; False when the channel count is not one this family has."""
    n = facts.in_channels
    if n not in allowed:
        return False
    variant = in_channels_variant(n)
    if variant:
        match.variant = variant
        match.evidence.append(Evidence("variant", variant, f"{facts.view.full(facts.conv_in)} shape "
                                                           f"{list(facts.view.shape(facts.conv_in) or [])}: "
                                                           f"{n} input channels"))
    return True


def match_sd1(view: HeaderView) -> FamilyMatch | None:
    f = unet_facts(view)
    if f is None or f.context_dim != 768 or f.model_channels != 320 or f.adm is not None:
        return None
    if view.has("cc_projection.weight"):  # Zero123 shares the SD1 UNet with 8 input channels
        return None
    match = FamilyMatch(components=["unet"], evidence=f.evidence("sd1"), details=f.details())
    if not _variant_from_in_channels(f, match, (4, 8, 9)):
        return None
    _prediction(view, match, "SD1")
    return match


def match_sd2(view: HeaderView) -> FamilyMatch | None:
    f = unet_facts(view)
    if f is None or f.context_dim != 1024 or f.model_channels != 320:
        return None
    match = FamilyMatch(components=["unet"], evidence=f.evidence("sd2"), details=f.details())
    if f.adm is not None:
        if f.adm not in (1536, 2048):  # unCLIP L / H image embeddings; anything else is not SD2
            return None
        match.variant = "unclip"
        match.evidence.append(Evidence("variant", "unclip", f"{f.view.full(f.adm_key or '')}: image-embedding "
                                                            f"input {f.adm} (SD2 unCLIP)"))
    elif not _variant_from_in_channels(f, match, (4, 5, 9)):
        return None
    _prediction(view, match, "SD2")
    return match


def match_sdxl(view: HeaderView) -> FamilyMatch | None:
    f = unet_facts(view)
    if f is None or f.context_dim != 2048 or f.model_channels != 320 or f.adm != 2816:
        return None
    match = FamilyMatch(components=["unet"], evidence=f.evidence("sdxl"), details=f.details())
    if not _variant_from_in_channels(f, match, (4, 8, 9)):
        return None
    # Distilled SDXL UNets (SSD-1B, Vega) keep every width but fewer transformer blocks: still SDXL,
    # flagged because SDXL LoRAs only partly apply to them.
    deep = "input_blocks.7.1.transformer_blocks." if f.layout == "ldm" else "down_blocks.2.attentions.0.transformer_blocks."
    depth = f.view.block_count(deep)
    match.details["transformer_depth"] = depth
    if depth != 10:
        match.details["distilled"] = True
        match.evidence.append(Evidence("family", "sdxl", f"{f.view.full(deep)}* has {depth} blocks, not 10: a "
                                                         "distilled SDXL UNet (SSD-1B/Vega style)"))
    _prediction(view, match, "SDXL")
    return match


def match_sdxl_refiner(view: HeaderView) -> FamilyMatch | None:
    f = unet_facts(view)
    if f is None or f.context_dim != 1280 or f.model_channels != 384 or f.adm != 2560:
        return None
    match = FamilyMatch(components=["unet"], evidence=f.evidence("sdxl_refiner"), details=f.details())
    if not _variant_from_in_channels(f, match, (4,)):
        return None
    _prediction(view, match, "SDXL refiner")
    return match


# -- UNet LoRAs -------------------------------------------------------------------------------------
_TE_PATHS = [f"text_model.encoder.layers.{i}.{m}" for i in range(32)
             for m in ("self_attn.q_proj", "self_attn.k_proj", "mlp.fc1")]


def _memo(lv: LoraView, key: str, compute: Any) -> Any:
    cache = lv.__dict__.setdefault("_family_memo", {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def lora_cross_attention(lv: LoraView) -> LoraModule | None:
    """The first adapted cross-attention K/V projection (its in-features = the text context width)."""
    return _memo(lv, "cross", lambda: lv.find("attn2.to_k", "attn2.to_v", "attn2.processor.to_k_lora"))


def lora_single_te_width(lv: LoraView) -> LoraModule | None:
    """kohya's ``lora_te_`` (no number) is used only for single-text-encoder models (SD1/SD2)."""
    if not lv.prefix_counts.get("lora_te_"):
        return None
    return _memo(lv, "te", lambda: lv.first(_TE_PATHS, part="te1"))


def _kolors_claimed(lv: LoraView) -> bool:
    return any(value.startswith("kolors") for _, value in base_model_claims(lv.metadata))


def _unet_lora(lv: LoraView, family: str, width: int) -> FamilyMatch | None:
    place = placement(lv)
    cross = lora_cross_attention(lv)
    if cross is not None and cross.in_features is not None:  # (IA3 and OFT factors do not give in-features)
        if cross.in_features != width or (place.unet_layers and family in place.ruled_out):
            return None
        return FamilyMatch(evidence=[Evidence("family", family, f"{cross.key} shape gives in_features "
                                                                f"{cross.in_features}: cross-attention context "
                                                                f"width of {family}")],
                           details={"context_dim": width})
    if lv.parts() == ["te1"]:
        te = lora_single_te_width(lv)
        if te is not None and te.in_features == width:
            return FamilyMatch(evidence=[Evidence("family", family, f"{te.key} in_features {te.in_features}: the "
                                                                    f"single text encoder of {family} "
                                                                    "(kohya lora_te_ naming)")])
        return None
    # No cross-attention K/V: every adapted UNet layer's location and width (families_unet_lora).
    if not place.unet_layers or place.fits != [family]:
        return None
    if family == "sdxl" and _kolors_claimed(lv):
        return None  # Kolors keeps SDXL's UNet widths; only its 4096-wide cross-attention K/V differ
    evidence = [Evidence("family", family, f"all {place.unet_layers} adapted UNet block locations checked fit "
                                           f"{family}, e.g. {place.seen[0]}")]
    evidence += [Evidence("family", family, f"not {other}: {why}") for other, why in place.ruled_out.items()]
    return FamilyMatch(evidence=evidence, details={"placed_by": "unet layer widths"})


def match_lora_sd1(lv: LoraView) -> FamilyMatch | None:
    return _unet_lora(lv, "sd1", 768)


def match_lora_sd2(lv: LoraView) -> FamilyMatch | None:
    return _unet_lora(lv, "sd2", 1024)


def match_lora_sdxl(lv: LoraView) -> FamilyMatch | None:
    return _unet_lora(lv, "sdxl", 2048)


def match_lora_sdxl_refiner(lv: LoraView) -> FamilyMatch | None:
    return _unet_lora(lv, "sdxl_refiner", 1280)


def _refute_unet_lora(lv: LoraView, family: str, width: int) -> str | None:
    """Why the adapted layers cannot belong to ``family``'s UNet (metadata must not override that)."""
    cross = lora_cross_attention(lv)
    if cross is not None and cross.in_features is not None and cross.in_features != width:
        return (f"{cross.key} has in_features {cross.in_features}, not the {width}-wide cross-attention "
                f"context of {family}")
    place = placement(lv)
    if place.unet_layers and family in place.ruled_out:
        return place.ruled_out[family]
    return None


def refute_lora_sd1(lv: LoraView) -> str | None:
    return _refute_unet_lora(lv, "sd1", 768)


def refute_lora_sd2(lv: LoraView) -> str | None:
    return _refute_unet_lora(lv, "sd2", 1024)


def refute_lora_sdxl(lv: LoraView) -> str | None:
    return _refute_unet_lora(lv, "sdxl", 2048)


def refute_lora_sdxl_refiner(lv: LoraView) -> str | None:
    return _refute_unet_lora(lv, "sdxl_refiner", 1280)


def _unet_lora_fits(lv: LoraView, family: str) -> str | None:
    """Why the adapted layers may be ``family``'s when they do not single it out (for the unknown report)."""
    place = placement(lv)
    if family not in place.fits or not (place.unet_layers or place.seen):
        return None
    return "; ".join(place.seen[:2]) or "its layers fit"


def fits_lora_sd1(lv: LoraView) -> str | None:
    return _unet_lora_fits(lv, "sd1")


def fits_lora_sd2(lv: LoraView) -> str | None:
    return _unet_lora_fits(lv, "sd2")


def fits_lora_sdxl(lv: LoraView) -> str | None:
    return _unet_lora_fits(lv, "sdxl")


def fits_lora_sdxl_refiner(lv: LoraView) -> str | None:
    return _unet_lora_fits(lv, "sdxl_refiner")


# -- UNet diffusers folders --------------------------------------------------------------------------
def _unet_config(configs: DiffusersConfigs, family: str, context: int, adm: int | None,
                 channels: int, unclip_dims: tuple[int, ...] = ()) -> FamilyMatch | None:
    unet = configs.get("unet")
    if not unet:
        return None
    # SVD's UNetSpatioTemporalConditionModel has SD2's widths and 8 input channels: not an SD2 pix2pix
    if unet.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        return None
    ctx = unet.get("cross_attention_dim")
    if isinstance(ctx, list):
        ctx = ctx[0] if ctx else None
    blocks = unet.get("block_out_channels") or [None]
    if ctx != context or blocks[0] != channels:
        return None
    has_adm = unet.get("addition_embed_type") == "text_time"
    if (adm is None) == has_adm:
        return None
    if adm is not None and unet.get("projection_class_embeddings_input_dim") not in (None, adm):
        return None
    # A class embedding the family does not have is another model, except SD2 unCLIP's image embedding
    # (the single-file matcher's label_emb rule).
    class_embed = unet.get("class_embed_type")
    image_dim = unet.get("projection_class_embeddings_input_dim") if class_embed else None
    unclip = adm is None and class_embed is not None
    if unclip and not (class_embed == "projection" and image_dim in unclip_dims):
        return None
    match = FamilyMatch(components=["unet"], details={"context_dim": ctx, "model_channels": blocks[0],
                                                      "in_channels": unet.get("in_channels", 4)},
                        evidence=[Evidence("family", family, f"unet/config.json cross_attention_dim={ctx}, "
                                                             f"block_out_channels[0]={blocks[0]}"
                                                             + (", addition_embed_type=text_time" if has_adm else ""))])
    in_ch = unet.get("in_channels", 4)
    variant = in_channels_variant(in_ch)
    if unclip:
        match.variant = "unclip"
        match.evidence.append(Evidence("variant", "unclip", f"unet/config.json class_embed_type={class_embed}, "
                                                            f"projection_class_embeddings_input_dim={image_dim}"))
    elif variant:
        match.variant = variant
        match.evidence.append(Evidence("variant", variant, f"unet/config.json in_channels={in_ch}"))
    return match


def config_sd1(configs: DiffusersConfigs) -> FamilyMatch | None:
    return _unet_config(configs, "sd1", 768, None, 320)


def config_sd2(configs: DiffusersConfigs) -> FamilyMatch | None:
    return _unet_config(configs, "sd2", 1024, None, 320, unclip_dims=(1536, 2048))


def config_sdxl(configs: DiffusersConfigs) -> FamilyMatch | None:
    return _unet_config(configs, "sdxl", 2048, 2816, 320)


def config_sdxl_refiner(configs: DiffusersConfigs) -> FamilyMatch | None:
    return _unet_config(configs, "sdxl_refiner", 1280, 2560, 384)


# --------------------------------------------------------------------------------------------
# SD3 / SD3.5 (MMDiT)
# --------------------------------------------------------------------------------------------
SD3_VARIANTS = {24: "medium", 38: "large"}


def match_sd3(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if m.has("joint_blocks.0.context_block.attn.qkv.weight") and m.has("x_embedder.proj.weight"):
        layout, embed, blocks, final = "mmdit", "x_embedder.proj.weight", "joint_blocks.", "final_layer.linear.weight"
        qk, attn2, pos = ("joint_blocks.0.x_block.attn.ln_q.weight", "joint_blocks.0.x_block.attn2.qkv.weight",
                          "pos_embed")
    elif (m.has("transformer_blocks.0.attn.add_q_proj.weight") and m.has("pos_embed.proj.weight")
          and not m.has_prefix("single_transformer_blocks.")):
        layout, embed, blocks, final = "diffusers", "pos_embed.proj.weight", "transformer_blocks.", "proj_out.weight"
        qk, attn2, pos = ("transformer_blocks.0.attn.norm_q.weight", "transformer_blocks.0.attn2.to_q.weight",
                          "pos_embed.pos_embed")
    else:
        return None
    if not m.has(final) or m.has_prefix("controlnet_blocks."):  # a ControlNet: blocks without the output layer
        return None
    shape = m.shape(embed)
    if shape is None or len(shape) != 4:
        return None
    hidden, in_channels = shape[0], shape[1]
    depth = m.block_count(blocks)
    if hidden != 64 * depth:  # every MMDiT release has hidden = 64 x depth
        return None
    qk_norm = m.has(qk)
    dual = m.has(attn2)
    generation = "3.5" if qk_norm else "3"
    details = {"hidden_size": hidden, "depth": depth, "in_channels": in_channels, "qk_norm": qk_norm,
               "dual_attention": dual, "generation": generation, "prediction": "flow", "layout": layout}
    pos_shape = m.shape(pos)
    if pos_shape is not None and len(pos_shape) == 3:
        details["pos_embed_tokens"] = pos_shape[1]
    evidence = [
        Evidence("family", "sd3", f"{m.full(blocks + '0.')}* MMDiT joint blocks; {m.full(embed)} shape {list(shape)}: "
                                  f"hidden {hidden} = 64 x {depth} blocks"),
        Evidence("generation", generation, f"{m.full(qk)} {'present' if qk_norm else 'absent'} (qk-norm is SD3.5)"),
    ]
    variant = SD3_VARIANTS.get(depth)
    if variant:
        evidence.append(Evidence("variant", variant, f"{depth} blocks (hidden {hidden}): SD3{'.5' if qk_norm else ''} "
                                                     f"{variant.capitalize()}" + (", MMDiT-X (attn2)" if dual else "")))
    else:
        evidence.append(Evidence("variant", None, f"{depth} blocks is not a released SD3 size"))
    return FamilyMatch(variant=variant, components=["dit"], evidence=evidence, details=details)


SD3_HIDDEN = (1536, 2432)


def _flux_block_names(lv: LoraView) -> bool:
    return bool(lv.has_path_prefix("double_blocks.") or lv.has_path_prefix("single_blocks.")
                or lv.has_path_prefix("single_transformer_blocks."))


def _sd3_lora_layer(lv: LoraView) -> tuple[LoraModule, str] | None:
    """An adapted MMDiT joint-block layer whose in-features are the hidden size, and its block prefix."""
    if _flux_block_names(lv):
        return None
    module = lv.find("x_block.attn.qkv", "context_block.attn.qkv", "x_block.mlp.fc1", "context_block.mlp.fc1",
                     "x_block.attn2.qkv", "x_block.attn.proj", "context_block.attn.proj", "x_block.attn2.proj")
    if module is not None:
        return module, "joint_blocks."
    if lv.has_path_prefix("transformer_blocks."):  # diffusers/PEFT names (no single blocks)
        module = lv.find(".attn.to_q", ".attn.add_q_proj", ".attn.to_k", ".attn.add_k_proj", ".attn2.to_q",
                         ".attn2.to_k", ".attn2.to_v", ".attn2.to_out.0")
        if module is not None:
            return module, "transformer_blocks."
    return None


def _only_attn2(module: LoraModule) -> bool:
    return ".attn2." in module.key or "_attn2_" in module.key


def match_lora_sd3(lv: LoraView) -> FamilyMatch | None:
    found = _sd3_lora_layer(lv)
    if found is None:
        return None
    module, blocks = found
    hidden = module.in_features
    if hidden not in SD3_HIDDEN:
        return None
    if _only_attn2(module) and hidden != 1536:
        return None  # the second attention (MMDiT-X) exists only in SD3.5 Medium's 1536-wide blocks
    variant = "medium" if hidden == 1536 else "large"
    depth = lv.block_count(blocks)
    how = f" ({module.how})" if module.how else ""
    evidence = [Evidence("family", "sd3", f"{module.key}{how}: MMDiT joint-block layer with in_features {hidden}"),
                Evidence("variant", variant, f"hidden {hidden} = 64 x {hidden // 64} blocks (SD3 {variant}); "
                                             f"highest adapted block index {depth - 1}")]
    details: dict[str, Any] = {"hidden_size": hidden, "requires_variant": variant}
    attn2 = lv.find("x_block.attn2.", ".attn2.to_q", ".attn2.to_k", ".attn2.to_v", ".attn2.to_out")
    if attn2 is not None:
        details["generation"] = "3.5"
        evidence.append(Evidence("generation", "3.5", f"{attn2.key}: a second attention in the joint blocks "
                                                      "(MMDiT-X), which only SD3.5 Medium has"))
    return FamilyMatch(variant=variant, evidence=evidence, details=details)


def refute_lora_sd3(lv: LoraView) -> str | None:
    if _flux_block_names(lv):
        return "it adapts Flux double/single-stream blocks"
    found = _sd3_lora_layer(lv)
    if found is not None and found[0].in_features not in SD3_HIDDEN:
        return (f"{found[0].key} has in_features {found[0].in_features}; SD3 joint blocks are "
                f"{' or '.join(map(str, SD3_HIDDEN))} wide")
    return None


def _text_encoder_only(lv: LoraView) -> list[tuple[str, str, int | None]] | None:
    """The text-encoder parts of a LoRA that adapts nothing else (kohya lora_te_ excluded: single encoder)."""
    parts = lv.parts()
    if not parts or "unet" in parts or lv.prefix_counts.get("lora_te_"):
        return None
    from .families_unet_lora import _text_encoder_widths

    return _text_encoder_widths(lv)


def fits_lora_sd3(lv: LoraView) -> str | None:
    found = _text_encoder_only(lv)
    if found is None:
        return None
    for part, key, width in found:
        if width is not None and width != {"te1": 768, "te1_of_two": 768, "te2": 1280}.get(part, width):
            return None
    return "text encoders only: " + ", ".join(f"{key} width {width}" for _, key, width in found) \
        + (" and T5" if "t5" in lv.parts() else "") + " (SD3 has CLIP-L, CLIP-G and T5)"


def config_sd3(configs: DiffusersConfigs) -> FamilyMatch | None:
    t = configs.get("transformer") or {}
    if t.get("_class_name") != "SD3Transformer2DModel":
        return None
    depth = t.get("num_layers")
    variant = SD3_VARIANTS.get(depth) if isinstance(depth, int) else None
    qk = bool(t.get("qk_norm"))
    ev = [Evidence("family", "sd3", f"transformer/config.json _class_name=SD3Transformer2DModel, num_layers={depth}")]
    if variant:
        ev.append(Evidence("variant", variant, f"transformer/config.json num_layers={depth}"))
    return FamilyMatch(variant=variant, components=["dit"], evidence=ev,
                       details={"depth": depth, "qk_norm": qk, "generation": "3.5" if qk else "3",
                                "prediction": "flow"})


# --------------------------------------------------------------------------------------------
# Flux.1
# --------------------------------------------------------------------------------------------
FLUX_HIDDEN = 3072
T5_WIDTH = 4096
FLUX_IN_VARIANTS = {384: "fill", 128: "control"}


def match_flux(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if m.has("double_blocks.0.img_attn.norm.key_norm.scale") and m.has("img_in.weight"):
        layout, img_in, txt_in, guidance = "bfl", "img_in.weight", "txt_in.weight", "guidance_in.in_layer.weight"
        double, single, final = "double_blocks.", "single_blocks.", "final_layer.linear.weight"
    elif (m.has("transformer_blocks.0.attn.norm_added_k.weight") and m.has("x_embedder.weight")
          and m.has_prefix("single_transformer_blocks.")):
        layout, img_in, txt_in = "diffusers", "x_embedder.weight", "context_embedder.weight"
        guidance = "time_text_embed.guidance_embedder.linear_1.weight"
        double, single, final = "transformer_blocks.", "single_transformer_blocks.", "proj_out.weight"
    else:
        return None
    if not m.has(final) or m.has_prefix("controlnet_blocks."):  # XLabs / InstantX ControlNets reuse the block names
        return None
    if m.has_prefix("distilled_guidance_layer."):  # Chroma reuses Flux names; not Flux.1
        return None
    img = m.shape(img_in)
    txt = m.shape(txt_in)
    if img is None or len(img) != 2 or img[0] != FLUX_HIDDEN or txt is None or len(txt) != 2 or txt[1] != T5_WIDTH:
        return None  # Flux.2 and other relatives have other widths
    in_features = img[1]
    has_guidance = m.has(guidance)
    details = {"hidden_size": img[0], "in_channels": in_features, "double_blocks": m.block_count(double),
               "single_blocks": m.block_count(single), "guidance_embed": has_guidance, "prediction": "flow",
               "layout": layout}
    evidence = [Evidence("family", "flux", f"{m.full(img_in)} shape {list(img)}, {m.full(txt_in)} shape {list(txt)}: "
                                           f"hidden {img[0]}, T5 context {txt[1]}; {details['double_blocks']} double + "
                                           f"{details['single_blocks']} single blocks")]
    if in_features == 64:
        variant = "dev" if has_guidance else "schnell"
        why = (f"{m.full(guidance)} present (guidance-distilled: dev)" if has_guidance
               else "no guidance_in embedding (timestep-distilled: schnell)")
    elif in_features in FLUX_IN_VARIANTS:
        variant = FLUX_IN_VARIANTS[in_features]
        why = f"{m.full(img_in)} in_features {in_features} ({'Fill' if in_features == 384 else 'Depth/Canny'})"
    else:
        variant, why = None, f"{m.full(img_in)} in_features {in_features}: not a released Flux.1 variant"
    evidence.append(Evidence("variant", variant, why))
    return FamilyMatch(variant=variant, components=["dit"], evidence=evidence, details=details)


_FLUX_LORA_FRAGMENTS = ("img_attn.qkv", "txt_attn.qkv", "img_mod.lin", "img_mlp.0", "processor.qkv_lora1",
                        ".linear1", "modulation.lin", ".attn.to_q", ".attn.add_q_proj", ".attn.to_k", ".proj_mlp")


# Out-features of Flux.1's MLP inputs (mlp ratio 4; single blocks fuse qkv with the MLP: 3 + 4) and the
# text input's in-features (T5). FLUX.2 reuses the block names at hidden 3072 (klein) with other widths,
# and Chroma reuses Flux.1's layers outright (told only by its metadata).
_FLUX1_OUT_WIDTHS = {"img_mlp.0": 4 * FLUX_HIDDEN, "txt_mlp.0": 4 * FLUX_HIDDEN, ".linear1": 7 * FLUX_HIDDEN,
                     "ff.net.0.proj": 4 * FLUX_HIDDEN, "ff_context.net.0.proj": 4 * FLUX_HIDDEN,
                     ".proj_mlp": 4 * FLUX_HIDDEN}


def _not_flux1(lv: LoraView) -> str | None:
    """Why a LoRA with Flux block names is not for Flux.1, or None."""
    for key, value in base_model_claims(lv.metadata):
        if value.startswith("chroma"):
            return f"{key}={lv.metadata[key]} (Chroma reuses Flux.1's layer names)"
    txt = lv.dims("txt_in")
    if txt is not None and txt.in_features not in (None, T5_WIDTH):
        return f"{txt.key} has in_features {txt.in_features}, not Flux.1's T5 width {T5_WIDTH}"
    for fragment, width in _FLUX1_OUT_WIDTHS.items():
        module = lv.find(fragment)
        if module is not None and module.out_features not in (None, width):
            return f"{module.key} has out_features {module.out_features}, not Flux.1's {width}"
    return None


def match_lora_flux(lv: LoraView) -> FamilyMatch | None:
    flux_names = _flux_block_names(lv)
    if (flux_names or lv.has_path_prefix("img_in")) and _not_flux1(lv) is not None:
        return None
    control = lv.dims("img_in")
    if control is not None and control.in_features in FLUX_IN_VARIANTS and control.out_features == FLUX_HIDDEN:
        return FamilyMatch(variant=FLUX_IN_VARIANTS[control.in_features], evidence=[
            Evidence("family", "flux", f"{control.key}: img_in adapted from {control.in_features} to "
                                       f"{control.out_features} features (Flux control/fill LoRA)")])
    module = lv.find(*_FLUX_LORA_FRAGMENTS)
    if module is None or module.in_features != FLUX_HIDDEN:
        return None
    if not flux_names and not (lv.has_path_prefix("transformer_blocks.0.attn.add_q_proj")
                               or lv.has_path_prefix("transformer_blocks.0.attn.add_k_proj")):
        return None
    how = f" ({module.how})" if module.how else ""
    return FamilyMatch(evidence=[Evidence("family", "flux", f"{module.key}{how}: in_features {module.in_features} "
                                                            "(Flux.1 hidden size)"
                                          + (" in double/single stream blocks" if flux_names else ""))],
                       details={"hidden_size": FLUX_HIDDEN})


def refute_lora_flux(lv: LoraView) -> str | None:
    module = lv.find(*_FLUX_LORA_FRAGMENTS) if _flux_block_names(lv) else None
    if module is not None and module.in_features != FLUX_HIDDEN:
        return f"{module.key} has in_features {module.in_features}; Flux.1 blocks are {FLUX_HIDDEN} wide"
    if module is not None:
        return _not_flux1(lv)
    return None


def fits_lora_flux(lv: LoraView) -> str | None:
    found = _text_encoder_only(lv)
    if found is None or any(part == "te2" for part, _, _ in found):
        return None  # Flux.1 has no CLIP-G (its kohya lora_te2_ is T5, counted as t5)
    if any(width not in (None, 768) for _, _, width in found):
        return None
    return "text encoders only: " + ", ".join(f"{key} width {width}" for _, key, width in found) \
        + (" and T5" if "t5" in lv.parts() else "") + " (Flux.1 has CLIP-L and T5)"


def config_flux(configs: DiffusersConfigs) -> FamilyMatch | None:
    t = configs.get("transformer") or {}
    if t.get("_class_name") != "FluxTransformer2DModel":
        return None
    in_ch = t.get("in_channels", 64)
    guidance = bool(t.get("guidance_embeds"))
    if in_ch == 64:
        variant = "dev" if guidance else "schnell"
        why = f"transformer/config.json guidance_embeds={guidance}"
    else:
        variant = FLUX_IN_VARIANTS.get(in_ch)
        why = f"transformer/config.json in_channels={in_ch}"
    return FamilyMatch(variant=variant, components=["dit"],
                       evidence=[Evidence("family", "flux", "transformer/config.json _class_name=FluxTransformer2DModel"),
                                 Evidence("variant", variant, why)],
                       details={"in_channels": in_ch, "guidance_embed": guidance, "prediction": "flow"})


# --------------------------------------------------------------------------------------------
# Identified-only families (runnable=False): named by their markers so users see what a file is.
# Markers: ComfyUI comfy/model_detection.py detect_unet_config (Comfy-Org/ComfyUI 0b61ce5b) and
# comfy/supported_models.py (Kolors); FLUX.2 context widths from InvokeAI configs/main.py.
# --------------------------------------------------------------------------------------------
def _ev(m: HeaderView, family: str, key: str, note: str) -> Evidence:
    shape = m.shape(key)
    return Evidence("family", family, f"{m.full(key)} shape {list(shape) if shape is not None else None}: {note}")


def _dit(family: str, evidence: list[Evidence], details: dict[str, Any], variant: str | None = None,
         why_variant: str | None = None) -> FamilyMatch:
    if why_variant:
        evidence.append(Evidence("variant", variant, why_variant))
    details.setdefault("prediction", None)
    return FamilyMatch(variant=variant, components=["dit"], evidence=evidence, details=details)


def _key_norm(m: HeaderView) -> bool:
    return m.has("double_blocks.0.img_attn.norm.key_norm.scale") or m.has("double_blocks.0.img_attn.norm.key_norm.weight")


# FLUX.2 text input = 3 stacked hidden states of its LLM: Mistral-Small-3.1 (3 x 5120) for dev,
# Qwen3-4B (3 x 2560) / Qwen3-8B (3 x 4096) for klein 4B / 9B.
FLUX2_CONTEXT = {15360: ("dev", "Mistral Small 3.1 (3 x 5120)"), 7680: ("klein", "Qwen3-4B (3 x 2560)"),
                 12288: ("klein", "Qwen3-8B (3 x 4096)")}


def match_flux2(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not _key_norm(m):
        return None
    mod = next((k for k in ("double_stream_modulation_img.lin.weight", "single_stream_modulation.lin.weight")
                if m.has(k)), None)
    if mod is None:
        return None
    img, txt = m.shape("img_in.weight"), m.shape("txt_in.weight")
    ev = [_ev(m, "flux2", mod, "FLUX.2 shared (global) modulation, which FLUX.1 does not have")]
    details: dict[str, Any] = {"prediction": "flow", "double_blocks": m.block_count("double_blocks."),
                               "single_blocks": m.block_count("single_blocks.")}
    if img is not None and len(img) == 2:
        details["hidden_size"], details["in_channels"] = img[0], img[1]
    variant, why = None, "txt_in.weight missing: variant not told"
    if txt is not None and len(txt) == 2:
        details["context_dim"] = txt[1]
        ev.append(_ev(m, "flux2", "txt_in.weight", f"text context {txt[1]}"))
        found = FLUX2_CONTEXT.get(txt[1])
        if found:
            variant, why = found[0], f"{m.full('txt_in.weight')} in_features {txt[1]}: {found[1]} text encoder"
        else:
            why = f"{m.full('txt_in.weight')} in_features {txt[1]}: not a known FLUX.2 text width"
    return _dit("flux2", ev, details, variant, why)


def match_chroma(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not _key_norm(m):
        return None
    key = next((k for k in ("distilled_guidance_layer.norms.0.scale", "distilled_guidance_layer.norms.0.weight",
                            "distilled_guidance_layer.0.norms.0.scale", "distilled_guidance_layer.0.norms.0.weight")
                if m.has(k)), None)
    if key is None:
        return None
    ev = [_ev(m, "chroma", key, "Chroma's distilled guidance layer on FLUX.1-style double/single blocks")]
    radiance = m.has("nerf_blocks.0.norm.scale") or m.has("nerf_blocks.0.norm.weight")
    return _dit("chroma", ev, {"prediction": "flow", "double_blocks": m.block_count("double_blocks."),
                               "single_blocks": m.block_count("single_blocks.")},
                "radiance" if radiance else None, "nerf_blocks.*: Chroma Radiance (pixel space)" if radiance else None)


QWEN25_VL_7B = 3584


def match_qwen_image(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not (m.has("txt_norm.weight") and m.has("img_in.weight") and m.has_prefix("transformer_blocks.")):
        return None
    width = m.dim("txt_norm.weight", 0)
    if width != QWEN25_VL_7B:  # Mage-Flow and others reuse the names with other widths
        return None
    img = m.shape("img_in.weight") or ()
    ev = [_ev(m, "qwen_image", "txt_norm.weight", f"text norm over {width} features (Qwen2.5-VL-7B hidden size)")]
    return _dit("qwen_image", ev, {"prediction": "flow", "context_dim": width, "layers": m.block_count("transformer_blocks."),
                                   "hidden_size": img[0] if img else None, "in_channels": img[1] if len(img) > 1 else None})


# Lumina-2 / Z-Image share the Lumina Next-DiT layout; the width tells them apart.
LUMINA_DIMS = {2304: "lumina2", 3840: "zimage"}


def _lumina_layout(view: HeaderView) -> tuple[HeaderView, tuple[int, ...]] | None:
    m = view.model
    if not (m.has("cap_embedder.1.weight") and m.has("noise_refiner.0.attention.k_norm.weight")):
        return None
    shape = m.shape("cap_embedder.1.weight")
    if shape is None or len(shape) != 2:
        return None
    return m, shape


def _match_lumina(view: HeaderView, family: str) -> FamilyMatch | None:
    found = _lumina_layout(view)
    if found is None or LUMINA_DIMS.get(found[1][0]) != family:
        return None
    m, shape = found
    text = {"lumina2": "Lumina-Image 2.0 (Gemma-2-2B captions)", "zimage": "Z-Image (Qwen3-4B captions)"}[family]
    ev = [_ev(m, family, "cap_embedder.1.weight", f"Next-DiT caption embedder, dim {shape[0]}, caption features "
                                                  f"{shape[1]}: {text}")]
    return _dit(family, ev, {"prediction": "flow", "hidden_size": shape[0], "context_dim": shape[1],
                             "layers": m.block_count("layers.")})


def match_lumina2(view: HeaderView) -> FamilyMatch | None:
    return _match_lumina(view, "lumina2")


def match_zimage(view: HeaderView) -> FamilyMatch | None:
    return _match_lumina(view, "zimage")


def match_hidream(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not m.has("caption_projection.0.linear.weight"):
        return None
    if not (m.has_prefix("double_stream_blocks.") or m.has_prefix("single_stream_blocks.")):
        return None
    ev = [_ev(m, "hidream", "caption_projection.0.linear.weight", "HiDream per-layer caption projections with "
                                                                  "double/single stream blocks")]
    return _dit("hidream", ev, {"prediction": "flow", "double_blocks": m.block_count("double_stream_blocks."),
                                "single_blocks": m.block_count("single_stream_blocks.")})


def match_auraflow(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not m.has("double_layers.0.attn.w1q.weight"):
        return None
    ev = [_ev(m, "auraflow", "double_layers.0.attn.w1q.weight", "AuraFlow MMDiT double layers")]
    return _dit("auraflow", ev, {"prediction": "flow", "double_layers": m.block_count("double_layers."),
                                 "single_layers": m.block_count("single_layers.")})


def match_pixart(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if m.has("t_block.1.weight") and m.has_prefix("blocks."):
        embed, layout = "x_embedder.proj.weight", "original"
    elif m.has("adaln_single.emb.timestep_embedder.linear_1.bias") and m.has("pos_embed.proj.bias"):
        embed, layout = "pos_embed.proj.weight", "diffusers"
    else:
        return None
    shape = m.shape(embed)
    if shape is None or len(shape) != 4 or shape[1] != 4:  # SD-VAE latents; SANA (32-channel DC-AE) reuses t_block
        return None
    ev = [_ev(m, "pixart", embed, f"PixArt DiT ({layout} layout), hidden {shape[0]}, 4 latent channels")]
    variant, why = None, None
    if layout == "original":
        alpha = m.has("ar_embedder.mlp.0.weight")
        variant = "alpha" if alpha else "sigma"
        why = "ar_embedder (aspect-ratio micro-conditioning): PixArt-alpha" if alpha else "no ar_embedder: PixArt-Sigma"
    return _dit("pixart", ev, {"prediction": None, "hidden_size": shape[0], "layout": layout}, variant, why)


def match_sana(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if m.has("blocks.0.mlp.inverted_conv.conv.weight") and m.has("t_block.1.weight"):
        key, embed, layout = "blocks.0.mlp.inverted_conv.conv.weight", "x_embedder.proj.weight", "original"
    elif m.has("transformer_blocks.0.ff.conv_inverted.weight") and m.has("patch_embed.proj.weight"):
        key, embed, layout = "transformer_blocks.0.ff.conv_inverted.weight", "patch_embed.proj.weight", "diffusers"
    else:
        return None
    shape = m.shape(embed)
    ev = [_ev(m, "sana", key, f"SANA linear-attention DiT with GLU-MBConv feed-forward ({layout} layout)")]
    details: dict[str, Any] = {"prediction": "flow", "layout": layout}
    if shape is not None and len(shape) == 4:
        details["hidden_size"], details["in_channels"] = shape[0], shape[1]
    return _dit("sana", ev, details)


def match_hunyuan_dit(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not m.has("mlp_t5.0.weight"):
        return None
    ev = [_ev(m, "hunyuan_dit", "mlp_t5.0.weight", "Hunyuan-DiT's mT5 projection")]
    extra = m.dim("extra_embedder.0.weight", 1)
    variant, why = None, None
    if extra == 3968:
        variant, why = "1.0-1.1", "extra_embedder.0.weight in_features 3968 (size/style conditioning: v1.0/1.1)"
    return _dit("hunyuan_dit", ev, {"prediction": None, "hidden_size": m.dim("x_embedder.proj.weight", 0),
                                    "depth": m.block_count("blocks.")}, variant, why)


def match_hunyuan_video(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not (m.has("txt_in.individual_token_refiner.blocks.0.norm1.weight") and m.has("img_in.proj.weight")):
        return None
    shape = m.shape("img_in.proj.weight") or ()
    ev = [_ev(m, "hunyuan_video", "txt_in.individual_token_refiner.blocks.0.norm1.weight",
              "HunyuanVideo token refiner")]
    v15 = m.has("cond_type_embedding.weight")
    return _dit("hunyuan_video", ev, {"prediction": "flow", "hidden_size": shape[0] if shape else None,
                                      "in_channels": shape[1] if len(shape) > 1 else None,
                                      "double_blocks": m.block_count("double_blocks."),
                                      "single_blocks": m.block_count("single_blocks.")},
                "1.5" if v15 else None, "cond_type_embedding.weight: HunyuanVideo 1.5" if v15 else None)


WAN_SIZES = {1536: "1.3B", 5120: "14B", 3072: "5B"}


def match_wan(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not (m.has("head.modulation") and m.has("patch_embedding.weight")):
        return None
    dim = m.dim("head.modulation", -1)
    in_dim = m.dim("patch_embedding.weight", 1)
    ev = [_ev(m, "wan", "head.modulation", f"Wan DiT head modulation, dim {dim}")]
    details: dict[str, Any] = {"prediction": "flow", "hidden_size": dim, "in_channels": in_dim,
                               "layers": m.block_count("blocks."), "size": WAN_SIZES.get(dim or 0)}
    if dim == 3072 and in_dim == 48:
        details["generation"] = "2.2"
        ev.append(_ev(m, "wan", "patch_embedding.weight", "48 input channels at dim 3072: Wan 2.2 TI2V-5B"))
    if m.has("vace_patch_embedding.weight"):
        variant, why = "vace", "vace_patch_embedding.weight"
    elif m.has("img_emb.proj.0.bias"):
        variant, why = "i2v", "img_emb.proj.* (CLIP image conditioning: image-to-video)"
    else:
        variant, why = None, "no image-embedding or VACE layers: text-to-video, or a Wan 2.2 expert (not told)"
    return _dit("wan", ev, details, variant, why)


def match_ltxv(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not (m.has("adaln_single.emb.timestep_embedder.linear_1.bias") and m.has("transformer_blocks.0.attn2.to_k.weight")):
        return None
    if m.has("pos_embed.proj.bias"):  # PixArt (diffusers) has the same timestep embedder
        return None
    ev = [_ev(m, "ltxv", "transformer_blocks.0.attn2.to_k.weight", "LTX-Video transformer (adaln_single timestep, "
                                                                  "no patch-embedding conv)")]
    av = m.has("audio_adaln_single.linear.weight")
    return _dit("ltxv", ev, {"prediction": "flow", "layers": m.block_count("transformer_blocks."),
                             "context_dim": m.dim("transformer_blocks.0.attn2.to_k.weight", 1)},
                "ltx-2" if av else None, "audio_adaln_single: LTX-2 audio-video" if av else None)


def match_cosmos(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if m.has("blocks.block0.blocks.0.block.attn.to_q.0.weight"):
        ev = [_ev(m, "cosmos", "blocks.block0.blocks.0.block.attn.to_q.0.weight", "Cosmos-1 DiT")]
        return _dit("cosmos", ev, {"prediction": None, "hidden_size": m.dim("blocks.block0.blocks.0.block.attn.to_q.0.weight", 0)},
                    "predict1", "blocks.blockN.* layout: Cosmos-1 (Predict1)")
    if m.has("blocks.0.mlp.layer1.weight") and m.has("x_embedder.proj.1.weight"):
        if m.has("llm_adapter.blocks.0.cross_attn.q_proj.weight"):
            return None  # Anima
        ev = [_ev(m, "cosmos", "x_embedder.proj.1.weight", "Cosmos-Predict2 DiT")]
        return _dit("cosmos", ev, {"prediction": None, "hidden_size": m.dim("x_embedder.proj.1.weight", 0),
                                   "layers": m.block_count("blocks.")}, "predict2", "blocks.N.mlp.layer1: Cosmos-Predict2")
    return None


def match_anima(view: HeaderView) -> FamilyMatch | None:
    m = view.model
    if not (m.has("blocks.0.mlp.layer1.weight") and m.has("llm_adapter.blocks.0.cross_attn.q_proj.weight")):
        return None
    ev = [_ev(m, "anima", "llm_adapter.blocks.0.cross_attn.q_proj.weight", "Cosmos-Predict2 DiT with Anima's LLM adapter")]
    return _dit("anima", ev, {"prediction": None, "layers": m.block_count("blocks.")})


KOLORS_ADM = 5632  # ChatGLM3 pooled 4096 + 6 x 256 size embeddings (ComfyUI Kolors.unet_config)


def match_kolors(view: HeaderView) -> FamilyMatch | None:
    f = unet_facts(view)
    if f is None or f.context_dim != 2048 or f.model_channels != 320 or f.adm != KOLORS_ADM:
        return None
    match = FamilyMatch(components=["unet"], evidence=f.evidence("kolors"), details=f.details())
    match.evidence.append(Evidence("family", "kolors", f"ADM input {KOLORS_ADM}: ChatGLM3 pooled text (4096) + size "
                                                       "embeddings, the SDXL UNet of Kolors"))
    if not _variant_from_in_channels(f, match, (4, 9)):
        return None
    match.details["prediction"] = None
    return match


def _foreign(name: str, match: Any, title: str, ids: tuple[str, ...], latent: int | None = None,
             encoders: tuple[str, ...] = ()) -> Family:
    return Family(name, match, title=title, latent_channels=latent, text_encoders=encoders, metadata_ids=ids,
                  runnable=False)


FOREIGN_FAMILIES: tuple[Family, ...] = (
    _foreign("flux2", match_flux2, "FLUX.2", (r"flux[._-]?2.*",), 32),
    _foreign("chroma", match_chroma, "Chroma", (r"chroma.*",), 16, ("t5",)),
    _foreign("qwen_image", match_qwen_image, "Qwen-Image", (r"qwen[._ -]?image.*",)),
    _foreign("zimage", match_zimage, "Z-Image", (r"z[._ -]?image.*",), 16),
    _foreign("hidream", match_hidream, "HiDream-I1", (r"hidream.*",), 16),
    _foreign("lumina2", match_lumina2, "Lumina-Image 2.0", (r"lumina[._ -]?2.*",), 16),
    _foreign("auraflow", match_auraflow, "AuraFlow", (r"aura[._ -]?flow.*",), 4),
    _foreign("pixart", match_pixart, "PixArt-alpha / Sigma", (r"pixart.*",), 4, ("t5",)),
    _foreign("sana", match_sana, "SANA", (r"sana.*",)),
    _foreign("hunyuan_dit", match_hunyuan_dit, "Hunyuan-DiT", (r"hunyuan[._ -]?dit.*", r"hydit.*"), 4),
    _foreign("kolors", match_kolors, "Kolors", (r"kolors.*",), 4),
    _foreign("wan", match_wan, "Wan 2.x", (r"wan[._ -]?2.*",)),
    _foreign("hunyuan_video", match_hunyuan_video, "HunyuanVideo", (r"hunyuan[._ -]?video.*",)),
    _foreign("ltxv", match_ltxv, "LTX-Video", (r"ltx[._ -]?(video|v|2).*",)),
    _foreign("cosmos", match_cosmos, "Cosmos", (r"cosmos.*",)),
    _foreign("anima", match_anima, "Anima", (r"anima",)),
)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
BUILTIN_FAMILIES: tuple[Family, ...] = (
    Family("sd1", match_sd1, match_lora_sd1, config_sd1, aliases=("sd15", "sd1.5", "sd_v1"),
           title="Stable Diffusion 1.x", latent_channels=4, text_encoders=("clip_l",), embedding_widths=(768,),
           metadata_ids=(r"sd_v1(_v)?", r"stable-diffusion-v1(-[a-z0-9-]+)?", r"sd1(\.\d)?", r"sd 1\.\d"),
           refute_lora=refute_lora_sd1, lora_fits=fits_lora_sd1),
    Family("sd2", match_sd2, match_lora_sd2, config_sd2, aliases=("sd21", "sd2.1", "sd_v2"),
           title="Stable Diffusion 2.x", latent_channels=4, text_encoders=("clip_h",), embedding_widths=(1024,),
           metadata_ids=(r"sd_v2(_768)?(_v)?", r"stable-diffusion-v2(-[a-z0-9-]+)?", r"sd2(\.\d)?", r"sd 2\.\d"),
           refute_lora=refute_lora_sd2, lora_fits=fits_lora_sd2),
    Family("sdxl", match_sdxl, match_lora_sdxl, config_sdxl, aliases=("sdxl_base", "xl"),
           title="Stable Diffusion XL", latent_channels=4, text_encoders=("clip_l", "clip_g"),
           embedding_widths=(768, 1280),
           metadata_ids=(r"sdxl_base_v\d.*", r"sdxl(_v\d.*)?", r"stable-diffusion-xl-(v1-base|v1-edit|turbo-v1)",
                         r"sdxl 1\.0", r"pony", r"illustrious"),
           refute_lora=refute_lora_sdxl, lora_fits=fits_lora_sdxl),
    Family("sdxl_refiner", match_sdxl_refiner, match_lora_sdxl_refiner, config_sdxl_refiner,
           aliases=("refiner",), title="Stable Diffusion XL refiner", latent_channels=4, text_encoders=("clip_g",),
           embedding_widths=(1280,), metadata_ids=(r"stable-diffusion-xl-v1-refiner", r"sdxl_refiner.*"),
           refute_lora=refute_lora_sdxl_refiner, lora_fits=fits_lora_sdxl_refiner),
    Family("sd3", match_sd3, match_lora_sd3, config_sd3, aliases=("sd3.5", "sd35"),
           title="Stable Diffusion 3 / 3.5", latent_channels=16, text_encoders=("clip_l", "clip_g", "t5"),
           metadata_ids=(r"sd3.*", r"stable-diffusion-3.*", r"stable-diffusion-v3.*", r"3-medium", r"medium",
                         r"5-large", r"5-large-turbo", r"5-medium"),
           refute_lora=refute_lora_sd3, lora_fits=fits_lora_sd3),
    Family("flux", match_flux, match_lora_flux, config_flux, aliases=("flux1", "flux.1"),
           title="FLUX.1", latent_channels=16, text_encoders=("clip_l", "t5"),
           metadata_ids=(r"flux1?", r"flux-1(-(dev|schnell|fill-dev|depth-dev|canny-dev))?",
                         r"flux\.1(-(dev|schnell|fill-dev))?", r"flux\.1 [ds]"),
           refute_lora=refute_lora_flux, lora_fits=fits_lora_flux),
)


@hookimpl
def register_families(register: Any) -> None:
    for family in BUILTIN_FAMILIES + FOREIGN_FAMILIES:
        register(family)


def builtin_families() -> list[Family]:
    """The built-in table without going through the plugin manager (for tests and tools that want only these)."""
    return list(BUILTIN_FAMILIES) + list(FOREIGN_FAMILIES)

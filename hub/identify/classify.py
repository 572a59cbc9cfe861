"""From a parsed header to an :class:`Identification`: kind, components, precision, family.

The order follows the reference synthesis: (1) what kind of file (LoRA, embedding, weights), (2)
which components by key prefix, (3) the family from the family table's matchers (shapes first,
metadata as support; on conflict both are reported and shapes win), (4) variant and precision.
Family-specific knowledge lives in the families (``hub_plugins.families``), not here: this module
only knows the generic layouts (component prefixes, text-encoder and VAE shapes).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from itertools import chain, compress, repeat
from typing import Any

from ..files.safetensors_header import DTYPE_BITS
from .family import Family, FamilyMatch
from .lora import analyse as analyse_lora
from .lora import describe as describe_lora
from .lora import looks_like_lora
from .model import UNKNOWN, Evidence, Identification
from .view import HeaderView

# -- components ------------------------------------------------------------------------------------
VAE_PREFIXES = ("first_stage_model.", "vae.")
# Text encoders in single-file checkpoints (prefix -> where its transformer keys are).
TE_PREFIXES = (
    "cond_stage_model.transformer.",
    "cond_stage_model.model.",
    "conditioner.embedders.0.transformer.",
    "conditioner.embedders.0.model.",
    "conditioner.embedders.1.model.",
    "conditioner.embedders.1.transformer.",
    "text_encoders.clip_l.transformer.",
    "text_encoders.clip_g.transformer.",
    "text_encoders.clip_h.transformer.",
    "text_encoders.t5xxl.transformer.",
    "text_encoders.t5xl.transformer.",
)
CLIP_BY_WIDTH = {768: "clip_l", 1024: "clip_h", 1280: "clip_g"}
T5_BY_WIDTH = {4096: "t5", 2048: "t5xl"}
COMPONENT_ORDER = ("unet", "dit", "vae", "clip_l", "clip_h", "clip_g", "t5", "t5xl", "text_encoder")

PRECISION_NAMES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64", "F8_E4M3": "fp8_e4m3fn",
                   "F8_E5M2": "fp8_e5m2", "F8_E4M3FNUZ": "fp8_e4m3fnuz", "F8_E5M2FNUZ": "fp8_e5m2fnuz",
                   "F8_E8M0": "fp8_e8m0",
                   "F4": "fp4", "F6_E2M3": "fp6", "F6_E3M2": "fp6", "I8": "int8", "U8": "uint8"}


# Metadata worth keeping with the identification (small; the rest stays in the file).
METADATA_KEYS = ("ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
                 "ss_network_args", "ss_sd_model_name", "ss_sd_model_hash", "ss_new_sd_model_hash",
                 "ss_output_name", "ss_v2", "ss_v_parameterization", "ss_resolution", "ss_clip_skip",
                 "ss_training_comment", "ss_model_type", "sshs_model_hash", "sshs_legacy_hash", "format",
                 "global_step")
METADATA_SKIP = ("modelspec.thumbnail",)
METADATA_MAX = 300


def text_encoder_type(view: HeaderView) -> tuple[str, Evidence] | None:
    """Which text encoder the keys under ``view`` are (HF CLIP, OpenCLIP or T5 layout), by width."""
    for key in ("text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight",
                "text_model.embeddings.position_embedding.weight", "embeddings.position_embedding.weight",
                "token_embedding.weight", "positional_embedding", "ln_final.weight",
                "text_model.final_layer_norm.weight", "final_layer_norm.weight"):
        width = view.dim(key, -1)
        if width is None:
            continue
        name = CLIP_BY_WIDTH.get(width, "text_encoder")
        return name, Evidence("component", name, f"{view.full(key)} width {width}")
    for key in ("encoder.final_layer_norm.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight"):
        width = view.dim(key, -1)
        if width is None:
            continue
        name = T5_BY_WIDTH.get(width, "text_encoder")
        return name, Evidence("component", name, f"{view.full(key)} d_model {width} (T5)")
    return None


def vae_latent_channels(view: HeaderView) -> tuple[int, Evidence] | None:
    """Latent channels of a VAE under ``view`` (``decoder.conv_in.weight`` input channels)."""
    key = "decoder.conv_in.weight"
    shape = view.shape(key)
    if shape is None or len(shape) != 4:
        return None
    if not (view.has("encoder.conv_in.weight") or view.has_prefix("decoder.up")):
        return None
    return shape[1], Evidence("component", "vae", f"{view.full(key)} shape {list(shape)}: {shape[1]} latent channels")


def detect_components(view: HeaderView) -> tuple[list[str], list[Evidence], dict[str, Any]]:
    """Components stored under the single-file prefixes (VAE, text encoders)."""
    comps: list[str] = []
    evidence: list[Evidence] = []
    details: dict[str, Any] = {}
    for prefix in VAE_PREFIXES:
        if view.has_prefix(prefix):
            found = vae_latent_channels(view.sub(prefix))
            if found:
                comps.append("vae")
                evidence.append(found[1])
                details["latent_channels"] = found[0]
                break
    for prefix in TE_PREFIXES:
        if view.has_prefix(prefix):
            found_te = text_encoder_type(view.sub(prefix))
            if found_te and found_te[0] not in comps:
                comps.append(found_te[0])
                evidence.append(found_te[1])
    return comps, evidence, details


def order_components(comps: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(comps))
    rank = {c: i for i, c in enumerate(COMPONENT_ORDER)}
    return sorted(seen, key=lambda c: rank.get(c, len(rank)))


# -- precision -------------------------------------------------------------------------------------
def precision_of(raw: dict[str, dict[str, Any]], names: Sequence[str] | None = None) -> tuple[str | None, str]:
    """The dtype holding most bytes (of ``names``, default all tensors), and the byte shares."""
    entries = list(raw.values()) if names is None else list(map(raw.__getitem__, names))
    if not entries:
        return None, "no tensors"
    dtypes = list(map(operator.itemgetter("dtype"), entries))
    distinct = set(dtypes)
    if len(distinct) == 1:
        only = dtypes[0]
        return PRECISION_NAMES.get(only, only.lower()), f"all {len(entries)} tensors are {only}"
    try:
        flat = list(chain.from_iterable(map(operator.itemgetter("data_offsets"), entries)))
        sizes = list(map(operator.sub, flat[1::2], flat[0::2]))
    except KeyError:  # a scanned pickle: no offsets, size from dtype x shape
        sizes = list(map(_nbytes, entries))
    total = sum(sizes) or 1
    shares = sorted(((sum(compress(sizes, map(operator.eq, dtypes, repeat(d)))), d) for d in distinct), reverse=True)
    floats = [(n, d) for n, d in shares if d in PRECISION_NAMES] or shares
    top = floats[0][1]
    text = ", ".join(f"{d} {n / total:.0%}" for n, d in shares if n)
    return PRECISION_NAMES.get(top, top.lower()), f"bytes by dtype: {text}"


def _nbytes(entry: dict[str, Any]) -> int:
    offsets = entry.get("data_offsets")
    if offsets is not None:
        return int(offsets[1] - offsets[0])
    return math.prod(entry["shape"]) * DTYPE_BITS.get(entry["dtype"], 16) // 8


# -- metadata --------------------------------------------------------------------------------------
def summarize_metadata(metadata: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in metadata.items():
        if key in METADATA_SKIP:
            continue
        if key in METADATA_KEYS or key.startswith("modelspec."):
            text = str(value)
            out[key] = text if len(text) <= METADATA_MAX else text[: METADATA_MAX - 1] + "…"
    return out


# -- the pipeline ----------------------------------------------------------------------------------
def ordered(families: Iterable[Family]) -> list[Family]:
    """Matchers by descending priority, registration order within a priority."""
    fams = list(families)
    return sorted(fams, key=lambda f: -f.priority)


# -- quantised files --------------------------------------------------------------------------------
BNB_SUFFIXES = (".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map")
BNB_STATE = ".quant_state.bitsandbytes__"


def bnb_unpacked(view: HeaderView) -> tuple[HeaderView, str, list[Evidence]] | None:
    """A bitsandbytes 4-bit file (``W`` packed as U8 ``[numel/2, 1]`` plus ``W.absmax``, ``W.quant_map``,
    ``W.quant_state.bitsandbytes__nf4``...) seen with the quantisation state dropped and each packed
    weight's true shape restored where its bias gives the out-features (in = 2 x packed / out).
    Weights without a bias keep their packed shape, so no width is ever guessed."""
    states = [k for k in view.sorted_names if BNB_STATE in k]
    if not states:
        return None
    kinds = sorted({k.rsplit("__", 1)[-1] for k in states})
    quant = kinds[0] if len(kinds) == 1 else "+".join(kinds)
    raw = view.raw
    out: dict[str, dict[str, Any]] = {}
    restored = packed = 0
    for name, entry in raw.items():
        if BNB_STATE in name or name.endswith(BNB_SUFFIXES):
            continue
        out[name] = entry
        if name + BNB_STATE + kinds[0] in raw or any(name + BNB_STATE + k in raw for k in kinds):
            packed += 1
            bias = raw.get(name[: -len("weight")] + "bias") if name.endswith("weight") else None
            numel = math.prod(entry["shape"]) * 2
            if bias is not None and len(bias["shape"]) == 1 and bias["shape"][0] and numel % bias["shape"][0] == 0:
                out[name] = {**entry, "shape": [bias["shape"][0], numel // bias["shape"][0]]}
                restored += 1
    ev = [Evidence("precision", quant, f"{len(states)} {BNB_STATE.strip('.')}{quant} states (e.g. {states[0]}): "
                                       f"bitsandbytes 4-bit {quant}; {restored} of {packed} packed weights' shapes "
                                       "restored from their biases")]
    return HeaderView(out, view.metadata), quant, ev


def scaled_fp8(view: HeaderView) -> Evidence | None:
    """ComfyUI's scaled fp8 (``scaled_fp8`` marker tensor, per-layer ``.scale_weight``)."""
    if view.has("scaled_fp8") or view.has("model.diffusion_model.scaled_fp8"):
        return Evidence("precision", "fp8_scaled", "scaled_fp8 marker tensor (ComfyUI scaled fp8: weights x .scale_weight)")
    return None


def identify_view(view: HeaderView, families: Sequence[Family], fmt: str = "safetensors") -> Identification:
    """Identify the tensors in ``view`` (a safetensors header or a scanned pickle)."""
    bnb = bnb_unpacked(view)
    if bnb is not None:
        ident = _identify_view(bnb[0], families, fmt)
        ident.tensors = len(view.raw)
        ident.precision = bnb[1]
        ident.details["quantization"] = f"bitsandbytes_{bnb[1]}"
        ident.evidence = [e for e in ident.evidence if e.what != "precision"] + bnb[2]
        return ident
    ident = _identify_view(view, families, fmt)
    fp8 = scaled_fp8(view)
    if fp8 is not None and ident.precision and ident.precision.startswith("fp8"):
        ident.details["quantization"] = "comfyui_scaled_fp8"
        ident.evidence.append(fp8)
    return ident


def _identify_view(view: HeaderView, families: Sequence[Family], fmt: str = "safetensors") -> Identification:
    ident = Identification(format=fmt, tensors=len(view.raw), metadata=summarize_metadata(view.metadata))
    fams = ordered(families)
    if not view.raw:
        ident.evidence.append(Evidence("kind", UNKNOWN, "the file holds no tensors"))
        return ident
    if _identify_embedding(view, fams, ident):
        pass
    elif looks_like_lora(view):
        _identify_lora(view, fams, ident)
    else:
        _identify_weights(view, fams, ident)
    if ident.kind != "lora":
        names = view.model.keys() if ident.kind in ("checkpoint", "diffusion_model") and view.model_prefix else None
        full_names = [view.model_prefix + n for n in names] if names is not None else None
        ident.precision, why = precision_of(view.raw, full_names)
    else:
        ident.precision, why = precision_of(view.raw)
    if ident.precision:
        scope = "diffusion model" if ident.kind in ("checkpoint",) and view.model_prefix else "file"
        ident.evidence.append(Evidence("precision", ident.precision, f"{scope}: {why}"))
    if not ident.candidates and ident.family != UNKNOWN:
        ident.candidates = [ident.family]
    set_runnable(ident, fams)
    return ident


def set_runnable(ident: Identification, fams: Sequence[Family]) -> None:
    """``runnable`` from the identified family (None while the family is unknown)."""
    if ident.family == UNKNOWN:
        ident.runnable = None
        return
    fam = next((f for f in fams if f.name == ident.family), None)
    ident.runnable = fam.runnable if fam is not None else None


def _apply_match(ident: Identification, family: Family, match: FamilyMatch) -> None:
    ident.family = family.name
    ident.variant = match.variant
    ident.evidence.extend(match.evidence)
    ident.details.update(match.details)


def _metadata_check(ident: Identification, fams: Sequence[Family], metadata: dict[str, str]) -> Family | None:
    """Compare the family the shapes gave with what the metadata claims; return the claimed family."""
    claimed = [(f, why) for f in fams if (why := f.claimed_by(metadata))]
    if not claimed:
        return None
    if ident.family == UNKNOWN:
        return claimed[0][0]
    for fam, why in claimed:
        if fam.name == ident.family:
            ident.evidence.append(Evidence("family.metadata", fam.name, f"{why} agrees"))
            return fam
    fam, why = claimed[0]
    ident.warnings.append(f"metadata says {fam.name} ({why}) but the tensor shapes say {ident.family}; "
                          "trusting the shapes")
    ident.evidence.append(Evidence("conflict", fam.name, f"{why} disagrees with the shapes"))
    return fam


# -- other kinds people keep in their model folders --------------------------------------------------
# (kind, ComfyUI folder, A1111/Forge folder)
UI_FOLDERS = {"controlnet": ("controlnet", "ControlNet"), "t2i_adapter": ("controlnet", "ControlNet"),
              "ip_adapter": ("ipadapter", "ControlNet"), "clip_vision": ("clip_vision", None),
              "upscaler": ("upscale_models", "ESRGAN"), "style_model": ("style_models", None)}
# UNet cross-attention context width -> family (architectures.md §3); for ControlNets/IP-Adapters.
CONTEXT_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
CLIP_VISION = {1024: "ViT-L/14", 1280: "ViT-H/14", 1664: "ViT-bigG/14"}


def _cross_width(view: HeaderView, prefix: str = "") -> tuple[str, int] | None:
    """The first ``attn2.to_k.weight`` under ``prefix`` and its in-features (the text context width)."""
    for name in view.keys(prefix):
        if name.endswith("attn2.to_k.weight"):
            width = view.dim(name, 1)
            if width is not None:
                return view.full(name), width
    return None


def _set_kind(ident: Identification, kind: str, because: str, family: str | None = None,
              family_because: str | None = None) -> None:
    ident.kind = kind
    ident.evidence.append(Evidence("kind", kind, because))
    comfy, a1111 = UI_FOLDERS[kind]
    ident.details["ui_folders"] = {"comfyui": f"models/{comfy}", **({"a1111": f"models/{a1111}"} if a1111 else {})}
    if family:
        ident.family = family
        ident.evidence.append(Evidence("family", family, family_because or ""))
    else:
        ident.evidence.append(Evidence("family", UNKNOWN, family_because or f"no width that names a family in this {kind}"))


def _identify_other_kind(view: HeaderView, ident: Identification) -> bool:
    """ControlNets, T2I-Adapters, IP-Adapters, CLIP vision encoders and upscalers, by their key layouts."""
    v = view
    # Stability's Control-LoRAs (control-lora-canny-rank128...): an SDXL ControlNet whose large layers are
    # LoRA pairs (<layer>.up / <layer>.down), marked by a lora_controlnet tensor (ComfyUI ControlLora,
    # diffusers convert_sai_sd_control_lora_state_dict_to_peft)
    if v.has("lora_controlnet") and v.has("input_hint_block.0.weight"):
        key = next((k for k in v.keys("input_blocks.") if k.endswith(("attn2.to_k.down", "attn2.to_k.weight"))), None)
        width = v.dim(key, 1) if key else None
        fam = CONTEXT_FAMILY.get(width or 0)
        ident.details["format"] = "control-lora"
        down = next((k for k in v.keys("input_blocks.") if k.endswith(".down")), None)
        if down:
            ident.details["rank"] = v.dim(down, 0)
        _set_kind(ident, "controlnet", "lora_controlnet marker and input_hint_block.*: Control-LoRA (ControlNet as "
                                       "LoRA pairs)", fam,
                  f"{key} shape {list(v.shape(key) or [])}: cross-attention width {width} of {fam}" if fam else None)
        return True
    # Flux Redux (flux1-redux-dev): SigLIP image features up to 3 x T5 width and back down to Flux's txt_in
    if v.has("redux_up.weight") and v.has("redux_down.weight"):
        up, down = v.shape("redux_up.weight") or (), v.shape("redux_down.weight") or ()
        flux = len(up) == 2 and len(down) == 2 and down[0] == 4096 and up[0] == 3 * 4096
        ident.details["image_features"] = up[1] if len(up) == 2 else None
        _set_kind(ident, "style_model", f"redux_up.weight shape {list(up)}, redux_down.weight shape {list(down)}: "
                                        "Flux Redux image-prompt adapter", "flux" if flux else None,
                  "redux_down out-features 4096: Flux.1's T5 text-token width" if flux else None)
        return True
    # ControlNet, original LDM layout (lllyasviel ControlNet, SDXL ControlNets): control_model.* with zero convs
    for prefix in ("control_model.", ""):
        if v.has(prefix + "input_hint_block.0.weight") and v.has(prefix + "zero_convs.0.0.weight"):
            cross = _cross_width(v, prefix + "input_blocks.")
            fam = CONTEXT_FAMILY.get(cross[1]) if cross else None
            _set_kind(ident, "controlnet", f"{v.full(prefix + 'input_hint_block.0.weight')} and zero_convs: "
                                           "ControlNet (original layout)", fam,
                      f"{cross[0]} in_features {cross[1]}: cross-attention width of {fam}" if fam and cross else None)
            return True
    # diffusers ControlNetModel
    if v.has("controlnet_cond_embedding.conv_in.weight") and v.has_prefix("controlnet_down_blocks."):
        cross = _cross_width(v, "down_blocks.")
        fam = CONTEXT_FAMILY.get(cross[1]) if cross else None
        _set_kind(ident, "controlnet", "controlnet_cond_embedding.* and controlnet_down_blocks.*: diffusers "
                                       "ControlNetModel", fam,
                  f"{cross[0]} in_features {cross[1]}: cross-attention width of {fam}" if fam and cross else None)
        return True
    # DiT ControlNets: InstantX/diffusers Flux, XLabs Flux, diffusers SD3
    if v.has("controlnet_blocks.0.weight"):
        width = v.dim("controlnet_blocks.0.weight", 1)
        if v.has("double_blocks.0.img_attn.norm.key_norm.scale") and v.has("input_hint_block.0.weight"):
            how, fam = "XLabs Flux ControlNet (double_blocks + input_hint_block)", "flux" if width == 3072 else None
        elif v.has("controlnet_x_embedder.weight") and v.has_prefix("transformer_blocks.0.attn.norm_added_k"):
            how, fam = "InstantX/diffusers FluxControlNetModel (controlnet_x_embedder)", "flux" if width == 3072 else None
        elif v.has("pos_embed_input.proj.weight"):
            how, fam = "diffusers SD3ControlNetModel (pos_embed_input)", "sd3" if width in (1536, 2432) else None
        else:
            how, fam = None, None
        if how:
            _set_kind(ident, "controlnet", f"controlnet_blocks.0.weight shape {list(v.shape('controlnet_blocks.0.weight') or [])}: "
                                           + how, fam, f"controlnet_blocks in_features {width}: hidden size of {fam}"
                      if fam else f"controlnet_blocks in_features {width}: not a hidden size sdhub knows")
            return True
    # T2I-Adapter (TencentARC original, and diffusers T2IAdapter under adapter.)
    for prefix in ("", "adapter."):
        if v.has(prefix + "conv_in.weight") and (v.has(prefix + "body.0.block1.weight")
                                                 or v.has(prefix + "body.0.resnets.0.block1.weight")):
            # conv_in sees the control image pixel-unshuffled: 8 x 8 for SD1/SD2's adapters (64 = 1 x 64,
            # 192 = 3 x 64 input features), 16 x 16 for SDXL's full_adapter_xl (256 or 768)
            cin = v.dim(prefix + "conv_in.weight", 1)
            fam = "sdxl" if cin in (256, 768) else None
            _set_kind(ident, "t2i_adapter", f"{v.full(prefix + 'conv_in.weight')} and {prefix}body.*: T2I-Adapter", fam,
                      f"{v.full(prefix + 'conv_in.weight')} in-features {cin}: the control image unshuffled 16 x 16 "
                      "(SDXL's adapters)" if fam else
                      f"{v.full(prefix + 'conv_in.weight')} in-features {cin}: unshuffled 8 x 8, the SD1 and SD2 "
                      "adapters' factor" if cin in (64, 192) else None)
            if cin in (64, 192):
                ident.candidates = ["sd1", "sd2"]
            return True
    # IP-Adapter (image_proj.* + ip_adapter.*), XLabs Flux IP-Adapter
    if v.has_prefix("image_proj.") and v.has_prefix("ip_adapter."):
        key = next((k for k in v.keys("ip_adapter.") if k.endswith("to_k_ip.weight")), None)
        width = v.dim(key, 1) if key else None
        fam = CONTEXT_FAMILY.get(width or 0)
        _set_kind(ident, "ip_adapter", "image_proj.* and ip_adapter.* keys: IP-Adapter", fam,
                  f"{key} in_features {width}: cross-attention width of {fam}" if fam else None)
        return True
    if v.has_prefix("ip_adapter_proj_model.") and v.has_prefix("double_blocks.0.processor.ip_adapter"):
        _set_kind(ident, "ip_adapter", "ip_adapter_proj_model.* and double_blocks.*.processor.ip_adapter_*: "
                                       "XLabs Flux IP-Adapter", "flux", "Flux double_blocks processors")
        return True
    # CLIP vision encoders (HF CLIPVisionModel[WithProjection])
    for prefix in ("vision_model.", ""):
        if v.has(prefix + "embeddings.patch_embedding.weight") and v.has(prefix + "embeddings.class_embedding"):
            width = v.dim(prefix + "embeddings.patch_embedding.weight", 0)
            ident.details["vision_width"] = width
            if width in CLIP_VISION:
                ident.details["vision_model"] = CLIP_VISION[width]
            _set_kind(ident, "clip_vision", f"{v.full(prefix + 'embeddings.patch_embedding.weight')} shape "
                                            f"{list(v.shape(prefix + 'embeddings.patch_embedding.weight') or [])}: CLIP "
                                            f"vision encoder, width {width} ({CLIP_VISION.get(width, 'unknown size')})",
                      None, "a CLIP vision encoder serves IP-Adapters/unCLIP of several families")
            return True
    # Upscalers: ESRGAN (old layout model.N / new BasicSR RRDBNet), SwinIR
    if v.has("model.0.weight") and v.has_prefix("model.1.sub.0.RDB1."):
        _set_kind(ident, "upscaler", "model.0.weight and model.1.sub.*.RDB1.*: ESRGAN RRDBNet (old layout)", None,
                  "upscalers are not tied to a diffusion family")
        ident.details["architecture"] = "ESRGAN"
        return True
    if v.has("conv_first.weight") and (v.has_prefix("body.0.rdb1.") or v.has_prefix("RRDB_trunk.0.RDB1.")):
        in_ch = v.dim("conv_first.weight", 1)
        ident.details["architecture"] = "RRDBNet"
        scale = {3: 4, 12: 2, 48: 1}.get(in_ch or 0)  # BasicSR pixel-unshuffles the input for x2/x1
        if scale:
            ident.details["scale"] = scale
        _set_kind(ident, "upscaler", f"conv_first.weight (in {in_ch}) and RRDB blocks: ESRGAN/Real-ESRGAN RRDBNet "
                                     "(BasicSR layout)", None, "upscalers are not tied to a diffusion family")
        return True
    # DAT (Dual Aggregation Transformer; spandrel's DATArch markers)
    if v.has("conv_first.weight") and v.has("before_RG.1.weight") and v.has("layers.0.blocks.0.attn.attns.0.rpe_biases"):
        ident.details["architecture"] = "DAT"
        scale = _pixelshuffle_scale(v, v.dim("conv_first.weight", 1) or 3)
        if scale:
            ident.details["scale"] = scale
        _set_kind(ident, "upscaler", "conv_first, before_RG and layers.*.blocks.*.attn.attns.*.rpe_biases: DAT", None,
                  "upscalers are not tied to a diffusion family")
        return True
    # Real-ESRGAN SRVGGNetCompact (realesr-general-x4v3, animevideov3): body.0 conv, body.1 PReLU, ... and a last
    # conv of in_ch x scale^2 outputs before the pixel shuffle
    first, prelu = v.shape("body.0.weight"), v.shape("body.1.weight")
    if first is not None and len(first) == 4 and prelu is not None and len(prelu) == 1 and not v.has("conv_first.weight"):
        n = v.block_count("body.")
        last = v.shape(f"body.{n - 1}.weight")
        if n >= 4 and last is not None and len(last) == 4 and first[1] in (1, 3, 4):
            root = round((last[0] / first[1]) ** 0.5)
            ident.details["architecture"] = "SRVGGNetCompact"
            if root * root * first[1] == last[0]:
                ident.details["scale"] = root
            _set_kind(ident, "upscaler", f"body.0.weight shape {list(first)}, body.1.weight (PReLU) ... body.{n - 1}"
                                         f".weight shape {list(last)}: Real-ESRGAN SRVGGNetCompact", None,
                      "upscalers are not tied to a diffusion family")
            return True
    if v.has("conv_first.weight") and v.has_prefix("layers.0.residual_group.blocks.0.attn.relative_position_bias_table"):
        ident.details["architecture"] = "SwinIR"
        _set_kind(ident, "upscaler", "conv_first.weight and layers.*.residual_group.*: SwinIR", None,
                  "upscalers are not tied to a diffusion family")
        return True
    return False


def describe_layout(view: HeaderView, groups: int = 6) -> str:
    """What an unplaced file holds, for its "unknown" answer: the top-level module names with their key
    counts, and the first weight of the largest one with its shape."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for name in view.keys():
        top = name.split(".", 1)[0]
        counts[top] = counts.get(top, 0) + 1
        if top not in first and name.endswith(".weight"):
            first[top] = name
    if not counts:
        return "no tensors"
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{top}.* ({n})" for top, n in ranked[:groups])
    if len(ranked) > groups:
        text += f" and {len(ranked) - groups} more"
    example = next((first[t] for t, _ in ranked if t in first), None)
    if example:
        text += f"; e.g. {view.full(example)} shape {list(view.shape(example) or [])}"
    return text


def _pixelshuffle_scale(v: HeaderView, in_ch: int) -> int | None:
    """Upscale factor of a pixel-shuffle tail: ``upsample.N`` convs of 4 x num_feat out (x2 each) or one of 9 x
    (x3) before ``conv_last``; ``upsample.0`` alone with in_ch x s^2 out is the direct variant."""
    first = v.shape("upsample.0.weight")
    if first is None or len(first) != 4:
        return None
    if not v.has("conv_last.weight"):  # pixelshuffledirect: in_ch x scale^2 channels
        root = round((first[0] / in_ch) ** 0.5)
        return root if root * root * in_ch == first[0] else None
    if first[0] == 9 * first[1]:
        return 3
    steps = sum(1 for i in range(0, 16, 2) if v.has(f"upsample.{i}.weight"))
    return 2 ** steps if first[0] == 4 * first[1] else None


def _identify_weights(view: HeaderView, fams: Sequence[Family], ident: Identification) -> None:
    comps, comp_evidence, details = detect_components(view)
    ident.details.update(details)
    match: tuple[Family, FamilyMatch] | None = None
    for fam in fams:
        found = fam.match(view)
        if found is not None:
            match = (fam, found)
            break
    if match is not None:
        fam, found = match
        _apply_match(ident, fam, found)
        model_comps = found.components or ["unet"]
        has_others = bool(comps)
        ident.kind = "checkpoint" if has_others else "diffusion_model"
        ident.components = order_components(model_comps + comps)
        ident.evidence.insert(0, Evidence("kind", ident.kind, (
            f"diffusion model keys{' under ' + repr(view.model_prefix) if view.model_prefix else ''}"
            + (f" plus {', '.join(comps)}" if has_others else " only"))))
        ident.evidence.extend(comp_evidence)
        _metadata_check(ident, fams, view.metadata)
        return
    if not comps and _identify_other_kind(view, ident):
        return
    if view.model_prefix == "model.diffusion_model.":
        ident.kind = "checkpoint" if comps else "diffusion_model"
        # LDM/SGM UNets keep input_blocks; anything else under this prefix (SD3, Flux, Chroma...) is a DiT
        denoiser = "unet" if view.model.has_prefix("input_blocks.") else "dit"
        ident.components = order_components([denoiser] + comps)
        ident.evidence.append(Evidence("kind", ident.kind, f"{view.model.count()} keys under "
                                                           "'model.diffusion_model.' but no family matched"))
        ident.evidence.append(Evidence("family", UNKNOWN, "no family's markers or widths fit; seen: "
                                       + describe_layout(view.model)))
        ident.evidence.extend(comp_evidence)
        claimed = _metadata_check(ident, fams, view.metadata)
        if claimed is not None:
            ident.warnings.append(f"metadata names {claimed.name}, but no {claimed.name} tensor layout was found")
        return
    # Standalone VAE or text encoder (bare keys)?
    vae = vae_latent_channels(view)
    if vae is not None:
        channels, ev = vae
        ident.kind = "vae"
        ident.components = ["vae"]
        ident.details["latent_channels"] = channels
        ident.evidence += [Evidence("kind", "vae", ev.because), ev]
        ident.candidates = [f.name for f in fams if f.latent_channels == channels]
        _single_or_claimed(ident, fams, view.metadata, f"{channels}-channel VAEs have the same tensors")
        return
    te = text_encoder_type(view)
    if te is not None:
        name, ev = te
        ident.kind = "text_encoder"
        ident.components = [name]
        ident.evidence += [Evidence("kind", "text_encoder", ev.because), ev]
        ident.candidates = [f.name for f in fams if name in f.text_encoders]
        _single_or_claimed(ident, fams, view.metadata, f"{name} is used by several families")
        return
    if comps:
        ident.kind = "checkpoint"
        ident.components = order_components(comps)
        ident.evidence.append(Evidence("kind", "checkpoint", "component prefixes without a diffusion model: "
                                                             + ", ".join(comps)))
        ident.evidence.extend(comp_evidence)
        return
    ident.evidence.append(Evidence("kind", UNKNOWN, "no known key layout (not a UNet/DiT, VAE, text encoder, "
                                                    "LoRA, embedding or another kind sdhub knows); seen: "
                                                    + describe_layout(view)))


def _single_or_claimed(ident: Identification, fams: Sequence[Family], metadata: dict[str, str],
                       ambiguity: str) -> None:
    """Name the family when only one fits, or when metadata names one of those that fit."""
    if len(ident.candidates) == 1:
        ident.family = ident.candidates[0]
        ident.evidence.append(Evidence("family", ident.family, f"the only family whose {ident.kind} this fits"))
        return
    for fam in fams:
        if fam.name in ident.candidates and (why := fam.claimed_by(metadata)):
            ident.family = fam.name
            ident.evidence.append(Evidence("family", fam.name, f"{why} (metadata; {ambiguity})"))
            return
    if ident.candidates:
        ident.evidence.append(Evidence("family", UNKNOWN, f"{ambiguity}: fits {', '.join(ident.candidates)}"))


def _identify_lora(view: HeaderView, fams: Sequence[Family], ident: Identification) -> None:
    info, lv, evidence = analyse_lora(view)
    ident.kind = "lora"
    ident.lora = info
    ident.components = []
    ident.evidence.extend(evidence)
    for fam in fams:
        if fam.match_lora is None:
            continue
        found = fam.match_lora(lv)
        if found is not None:
            _apply_match(ident, fam, found)
            break
    claimed = _metadata_check(ident, fams, view.metadata)
    fits: list[tuple[str, str]] = []
    if ident.family == UNKNOWN:
        fits = [(f.name, why) for f in fams if f.lora_fits is not None and (why := f.lora_fits(lv))]
    if ident.family == UNKNOWN and claimed is not None:
        why = claimed.claimed_by(view.metadata)
        refuted = claimed.refute_lora(lv) if claimed.refute_lora is not None else None
        if not refuted and fits and claimed.lora_fits is not None and claimed.name not in dict(fits):
            refuted = f"the adapted layers fit only {', '.join(name for name, _ in fits)}"
        if refuted:
            ident.warnings.append(f"metadata says {claimed.name} ({why}) but {refuted}; not trusting the metadata")
            ident.evidence.append(Evidence("conflict", claimed.name, f"{why} disagrees with the layers: {refuted}"))
        else:
            ident.family = claimed.name
            note = f"; the layers fit {', '.join(n for n, _ in fits)}" if len(fits) > 1 else ""
            ident.evidence.append(Evidence("family", claimed.name, f"{why} (metadata only: the adapted layers "
                                                                   f"do not tell{note})"))
    if ident.family == UNKNOWN:
        ident.candidates = [name for name, _ in fits]
        if fits:
            ident.evidence.append(Evidence("family", UNKNOWN, "the adapted layers fit " + ", ".join(ident.candidates)
                                           + f" and do not tell which: {fits[0][1]}"))
        else:
            ident.evidence.append(Evidence("family", UNKNOWN, "no family's layer names and widths match the "
                                                              "adapted layers; seen: " + describe_lora(lv)))
    info.target = ident.family


# Textual-inversion embeddings: a handful of [tokens, width] tensors.
def _identify_embedding(view: HeaderView, fams: Sequence[Family], ident: Identification) -> bool:
    # The original (ldm) format also pickles the placeholder's token id as a 0-d tensor next to the vectors.
    raw = {n: e for n, e in view.raw.items() if not (n.startswith("string_to_token.") and not e["shape"])}
    if not raw or len(raw) > 4:
        return False
    widths: dict[str, int] = {}
    for name, entry in raw.items():
        shape = entry["shape"]
        if not 1 <= len(shape) <= 2 or shape[-1] not in (768, 1024, 1280):
            return False
        if "." in name and not name.startswith("string_to_param."):
            return False
        widths[name] = shape[-1]
    key_widths = tuple(sorted(widths.values()))
    if set(widths) == {"clip_l", "clip_g"}:
        key_widths = (widths["clip_l"], widths["clip_g"])
    vectors = max((raw[n]["shape"][0] if len(raw[n]["shape"]) == 2 else 1) for n in raw)
    ident.kind = "embedding"
    ident.details["vectors"] = vectors
    ident.details["widths"] = list(key_widths)
    because = ", ".join(f"{n} shape {list(raw[n]['shape'])}" for n in sorted(raw))
    ident.evidence.append(Evidence("kind", "embedding", f"{because}: textual-inversion token vectors"))
    ident.candidates = [f.name for f in fams if tuple(f.embedding_widths) == key_widths]
    _single_or_claimed(ident, fams, view.metadata, f"embeddings of width {list(key_widths)} fit several families")
    return True

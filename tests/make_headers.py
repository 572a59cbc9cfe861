"""Generate the full-size header specs used by the identification tests (run once; needs torch).

    .venv/bin/python tests/make_headers.py            # writes tests/data/headers/*.json.gz
    .venv/bin/python tests/make_headers.py --check    # regenerate in memory, compare with the stored files

Why a generator: the identification tests need the *true* tensor names and shapes of real releases
(SD1.5, SDXL, SD3, Flux...), but no multi-GB download. So every spec is derived from the real model
classes: diffusers ``UNet2DConditionModel`` / ``AutoencoderKL`` / ``SD3Transformer2DModel`` /
``FluxTransformer2DModel`` and transformers ``CLIPTextModel`` / ``T5EncoderModel`` are instantiated
on torch's meta device (no memory, no weights) with the published config values, their state-dict
shapes are taken, and names are converted to the original single-file layout (LDM/SGM/MMDiT/BFL)
with the key maps of ``../shared/reference/offline-testing.md`` §3 (plus the Flux map below).

Each conversion is then checked against diffusers' own original->diffusers converters
(``convert_ldm_unet_checkpoint`` etc., run on meta tensors): converting our original-layout spec back
must give exactly the model's state-dict names and shapes. diffusers' own model-type detector
(``infer_diffusers_model_type``) must also agree with what each checkpoint spec claims to be.

LoRA specs are derived from the same models' module names (Linear/Conv layers) in the naming scheme
of each trainer (kohya sd-scripts, diffusers/PEFT, LyCORIS LoCon/LoHa/LoKr, SimpleTuner LyCORIS).

Output: one ``<fixture>.json.gz`` per fixture with ``{"about", "metadata", "tensors": {name: [dtype,
shape]}}``. The tests (``tests/headers.py``) write sparse safetensors files from them at run time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data" / "headers"

Shape = tuple[int, ...]
Spec = dict[str, Shape]

# --------------------------------------------------------------------------------------------
# Published configs (values from the diffusers-format repos' config.json files)
# --------------------------------------------------------------------------------------------
SD15_UNET: dict[str, Any] = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8,
)
SD21_UNET: dict[str, Any] = dict(
    SD15_UNET, sample_size=96, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True,
)
SDXL_UNET: dict[str, Any] = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=2048, attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
SDXL_REFINER_UNET: dict[str, Any] = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(384, 768, 1536, 1536),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=1280, attention_head_dim=(6, 12, 24, 24), transformer_layers_per_block=4,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2560,
)
SD_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
)
SD3_VAE: dict[str, Any] = dict(SD_VAE, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False)
CLIP_L: dict[str, Any] = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, projection_dim=768, vocab_size=49408,
                              max_position_embeddings=77)
CLIP_H: dict[str, Any] = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, projection_dim=1024, vocab_size=49408,
                              max_position_embeddings=77)
CLIP_G: dict[str, Any] = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                              num_attention_heads=20, projection_dim=1280, vocab_size=49408,
                              max_position_embeddings=77)
T5_XXL: dict[str, Any] = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
                              vocab_size=32128, feed_forward_proj="gated-gelu",
                              relative_attention_num_buckets=32)
SD3_MEDIUM: dict[str, Any] = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24,
                                  attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                                  caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
                                  pos_embed_max_size=192)
SD35_LARGE: dict[str, Any] = dict(SD3_MEDIUM, num_layers=38, num_attention_heads=38,
                                  caption_projection_dim=2432, qk_norm="rms_norm")
SD35_MEDIUM: dict[str, Any] = dict(SD3_MEDIUM, pos_embed_max_size=384, qk_norm="rms_norm",
                                   dual_attention_layers=tuple(range(13)))
FLUX_DEV: dict[str, Any] = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                                attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                                pooled_projection_dim=768, guidance_embeds=True)
FLUX_SCHNELL: dict[str, Any] = dict(FLUX_DEV, guidance_embeds=False)

# The DDPM schedule buffers LDM checkpoints (SD1/SD2) carry next to the weights.
DDPM_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                "posterior_mean_coef1", "posterior_mean_coef2")


# --------------------------------------------------------------------------------------------
# Models on the meta device
# --------------------------------------------------------------------------------------------
def _meta(build: Callable[[], Any]) -> Any:
    import torch

    with torch.device("meta"):
        return build()


def state_shapes(model: Any) -> Spec:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def unet_model(cfg: dict[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel

    return _meta(lambda: UNet2DConditionModel(**cfg))


def vae_model(cfg: dict[str, Any]) -> Any:
    from diffusers import AutoencoderKL

    return _meta(lambda: AutoencoderKL(**cfg))


def clip_model(cfg: dict[str, Any], with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return _meta(lambda: cls(CLIPTextConfig(**cfg)))


def t5_model() -> Any:
    from transformers import T5Config, T5EncoderModel

    return _meta(lambda: T5EncoderModel(T5Config(**T5_XXL)))


def sd3_model(cfg: dict[str, Any]) -> Any:
    from diffusers import SD3Transformer2DModel

    return _meta(lambda: SD3Transformer2DModel(**cfg))


def flux_model(cfg: dict[str, Any]) -> Any:
    from diffusers import FluxTransformer2DModel

    return _meta(lambda: FluxTransformer2DModel(**cfg))


# --------------------------------------------------------------------------------------------
# diffusers -> original layout key maps
# --------------------------------------------------------------------------------------------
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def unet_key_to_ldm(key: str, cfg: dict[str, Any]) -> str:
    """One diffusers UNet2DConditionModel key in the LDM/SGM ``model.diffusion_model`` layout."""
    lpb = cfg["layers_per_block"]
    simple = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
              "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
              "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for src, dst in simple.items():
        if key.startswith(src + "."):
            return dst + key[len(src):]

    def resnet(rest: str) -> str:
        head, _, tail = rest.partition(".")
        return f"{_RESNET[head]}.{tail}"

    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + i * (lpb + 1) + j}.0.{resnet(rest)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + i * (lpb + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        i = int(m[1])
        return f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{0 if m[1] == '0' else 2}.{resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{i * (lpb + 1) + j}.0.{resnet(rest)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{i * (lpb + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        i = int(m[1])
        has_attn = "CrossAttn" in cfg["up_block_types"][i]
        return f"output_blocks.{i * (lpb + 1) + lpb}.{2 if has_attn else 1}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key}")


def unet_to_ldm(shapes: Spec, cfg: dict[str, Any], prefix: str = "model.diffusion_model.") -> Spec:
    return {prefix + unet_key_to_ldm(k, cfg): s for k, s in shapes.items()}


def vae_key_to_ldm(key: str, shape: Shape, n_blocks: int) -> tuple[str, Shape]:
    """One diffusers AutoencoderKL key in the LDM ``first_stage_model`` layout (attention as 1x1 convs)."""
    key = key.replace("conv_shortcut", "nin_shortcut")
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}", shape
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}", shape
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}", shape
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}", shape
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}", shape
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(\w+)(?:\.0)?\.(weight|bias)", key):
        part = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}[m[2]]
        if m[3] == "weight" and len(shape) == 2:
            shape = (*shape, 1, 1)
        return f"{m[1]}.mid.attn_1.{part}.{m[3]}", shape
    key = key.replace("conv_norm_out", "norm_out")
    return key, shape


def vae_to_ldm(shapes: Spec, prefix: str = "first_stage_model.") -> Spec:
    out: Spec = {}
    for k, s in shapes.items():
        name, shape = vae_key_to_ldm(k, s, 4)
        out[prefix + name] = shape
    return out


def clip_hf(shapes: Spec, prefix: str) -> Spec:
    """transformers >= 5.6 drops ``text_model.`` from CLIPTextModel; the original layout keeps it."""
    out: Spec = {}
    for k, s in shapes.items():
        if not k.startswith(("text_model.", "text_projection")):
            k = "text_model." + k
        out[prefix + k] = s
    return out


def clip_to_openclip(shapes: Spec, prefix: str) -> Spec:
    """A HF CLIPTextModelWithProjection in the OpenCLIP layout (SD2 ``cond_stage_model.model.``, SDXL bigG)."""
    out: Spec = {}
    for k, s in shapes.items():
        k = k.removeprefix("text_model.")
        if k == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = s
        elif k == "embeddings.position_embedding.weight":
            out["positional_embedding"] = s
        elif k.startswith("final_layer_norm."):
            out["ln_final." + k.rsplit(".", 1)[1]] = s
        elif k == "text_projection.weight":
            out["text_projection"] = (s[1], s[0])
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", k):
            n, rest = m[1], m[2]
            base = f"transformer.resblocks.{n}."
            if pm := re.fullmatch(r"self_attn\.(q|k|v)_proj\.(weight|bias)", rest):
                if pm[1] == "q":  # q, k, v are stored concatenated
                    name = "attn.in_proj_" + pm[2]
                    out[base + name] = (s[0] * 3, *s[1:])
                continue
            rest = (rest.replace("self_attn.out_proj", "attn.out_proj").replace("layer_norm1", "ln_1")
                    .replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj"))
            out[base + rest] = s
        else:
            raise KeyError(f"no OpenCLIP name for {k}")
    out["logit_scale"] = ()
    return {prefix + k: v for k, v in out.items()}


def sd3_to_mmdit(shapes: Spec, prefix: str = "model.diffusion_model.") -> Spec:
    """diffusers SD3Transformer2DModel keys in the original MMDiT (SAI) layout."""
    out: Spec = {}
    simple = {"pos_embed.pos_embed": "pos_embed", "pos_embed.proj": "x_embedder.proj",
              "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
              "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
              "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
              "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
              "context_embedder": "context_embedder", "norm_out.linear": "final_layer.adaLN_modulation.1",
              "proj_out": "final_layer.linear"}
    block = {"attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
             "attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
             "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
             "attn2.to_out.0": "x_block.attn2.proj", "attn2.norm_q": "x_block.attn2.ln_q",
             "attn2.norm_k": "x_block.attn2.ln_k", "norm1.linear": "x_block.adaLN_modulation.1",
             "norm1_context.linear": "context_block.adaLN_modulation.1", "ff.net.0.proj": "x_block.mlp.fc1",
             "ff.net.2": "x_block.mlp.fc2", "ff_context.net.0.proj": "context_block.mlp.fc1",
             "ff_context.net.2": "context_block.mlp.fc2"}
    fused = {"attn.to_q": "x_block.attn.qkv", "attn.to_k": None, "attn.to_v": None,
             "attn.add_q_proj": "context_block.attn.qkv", "attn.add_k_proj": None, "attn.add_v_proj": None,
             "attn2.to_q": "x_block.attn2.qkv", "attn2.to_k": None, "attn2.to_v": None}
    for k, s in shapes.items():
        if k == "pos_embed.pos_embed":
            out["pos_embed"] = s
            continue
        if m := re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)\.(weight|bias)", k):
            i, mod, kind = m[1], m[2], m[3]
            if mod in fused:
                if fused[mod] is not None:
                    out[f"joint_blocks.{i}.{fused[mod]}.{kind}"] = (s[0] * 3, *s[1:])
                continue
            out[f"joint_blocks.{i}.{block[mod]}.{kind}"] = s
            continue
        mod, _, kind = k.rpartition(".")
        out[f"{simple[mod]}.{kind}"] = s
    return {prefix + k: v for k, v in out.items()}


def flux_to_bfl(shapes: Spec, prefix: str = "") -> Spec:
    """diffusers FluxTransformer2DModel keys in the original BFL layout (flux1-dev.safetensors)."""
    out: Spec = {}
    simple = {"x_embedder": "img_in", "context_embedder": "txt_in",
              "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
              "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
              "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
              "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
              "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
              "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
              "norm_out.linear": "final_layer.adaLN_modulation.1", "proj_out": "final_layer.linear"}
    double = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin",
              "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj",
              "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
              "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2"}
    double_norm = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
                   "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
    single_sizes: dict[tuple[str, str], list[Shape]] = {}
    for k, s in shapes.items():
        if m := re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)\.(weight|bias)", k):
            i, mod, kind = m[1], m[2], m[3]
            if mod in double:
                out[f"double_blocks.{i}.{double[mod]}.{kind}"] = s
            elif mod in double_norm:
                out[f"double_blocks.{i}.{double_norm[mod]}.scale"] = s
            elif mod == "attn.to_q":
                out[f"double_blocks.{i}.img_attn.qkv.{kind}"] = (s[0] * 3, *s[1:])
            elif mod == "attn.add_q_proj":
                out[f"double_blocks.{i}.txt_attn.qkv.{kind}"] = (s[0] * 3, *s[1:])
            elif mod in ("attn.to_k", "attn.to_v", "attn.add_k_proj", "attn.add_v_proj"):
                pass
            else:
                raise KeyError(k)
            continue
        if m := re.fullmatch(r"single_transformer_blocks\.(\d+)\.(.+)\.(weight|bias)", k):
            i, mod, kind = m[1], m[2], m[3]
            if mod == "norm.linear":
                out[f"single_blocks.{i}.modulation.lin.{kind}"] = s
            elif mod == "attn.norm_q":
                out[f"single_blocks.{i}.norm.query_norm.scale"] = s
            elif mod == "attn.norm_k":
                out[f"single_blocks.{i}.norm.key_norm.scale"] = s
            elif mod == "proj_out":
                out[f"single_blocks.{i}.linear2.{kind}"] = s
            elif mod in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"):
                single_sizes.setdefault((i, kind), []).append(s)
                parts = single_sizes[(i, kind)]
                if len(parts) == 4:  # linear1 = cat(q, k, v, mlp)
                    out[f"single_blocks.{i}.linear1.{kind}"] = (sum(p[0] for p in parts), *parts[0][1:])
            else:
                raise KeyError(k)
            continue
        mod, _, kind = k.rpartition(".")
        out[f"{simple[mod]}.{kind}"] = s
    return {prefix + k: v for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Round-trip checks through diffusers' own converters (on meta tensors)
# --------------------------------------------------------------------------------------------
def _meta_tensors(spec: Spec) -> dict[str, Any]:
    import torch

    return {k: torch.empty(s, device="meta") for k, s in spec.items()}


def _same(label: str, got: dict[str, Any], want: Spec) -> None:
    got_shapes = {k: tuple(v.shape) for k, v in got.items()}
    missing = sorted(set(want) - set(got_shapes))
    extra = sorted(set(got_shapes) - set(want))
    wrong = sorted(k for k in set(want) & set(got_shapes) if want[k] != got_shapes[k])
    if missing or extra or wrong:
        raise SystemExit(f"{label}: round trip failed: missing {missing[:5]} extra {extra[:5]} wrong {wrong[:5]}")


def check_unet(label: str, ldm: Spec, model: Any) -> None:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    got = convert_ldm_unet_checkpoint(_meta_tensors(ldm), dict(model.config))
    _same(label, got, state_shapes(model))


def check_vae(label: str, ldm: Spec, model: Any) -> None:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    got = convert_ldm_vae_checkpoint(_meta_tensors(ldm), dict(model.config))
    want = state_shapes(model)
    # diffusers stores the attention projections as Linear: compare after squeezing the 1x1.
    got = {k: (v.squeeze(-1).squeeze(-1) if v.ndim == 4 and "attentions" in k else v) for k, v in got.items()}
    _same(label, got, want)


def check_openclip(label: str, openclip: Spec, prefix: str, model: Any) -> None:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    got = convert_open_clip_checkpoint(model, _meta_tensors(openclip), prefix=prefix)
    want = {("text_model." + k if not k.startswith(("text_model.", "text_projection")) else k): v
            for k, v in state_shapes(model).items()}
    got = {("text_model." + k if not k.startswith(("text_model.", "text_projection")) else k): v
           for k, v in got.items()}
    # position_ids is a buffer the original layout does not carry.
    want.pop("text_model.embeddings.position_ids", None)
    if prefix == "cond_stage_model.model.":
        # SD2 uses the penultimate layer, so diffusers skips the last one (SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).
        last = f"text_model.encoder.layers.{model.config.num_hidden_layers - 1}."
        want = {k: v for k, v in want.items() if not k.startswith(last) and k != "text_projection.weight"}
    _same(label, got, want)


def check_sd3(label: str, mmdit: Spec, model: Any) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_sd3_transformer_checkpoint_to_diffusers,
    )

    got = convert_sd3_transformer_checkpoint_to_diffusers(_meta_tensors(mmdit))
    _same(label, got, state_shapes(model))


def check_flux(label: str, bfl: Spec, model: Any) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_flux_transformer_checkpoint_to_diffusers,
    )

    got = convert_flux_transformer_checkpoint_to_diffusers(_meta_tensors(bfl))
    _same(label, got, state_shapes(model))


def check_detected(label: str, spec: Spec, expected: str) -> None:
    """diffusers' single-file model-type detector must agree with what the fixture claims to be."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    got = infer_diffusers_model_type(_meta_tensors(spec))
    if got != expected:
        raise SystemExit(f"{label}: diffusers detects {got!r}, expected {expected!r}")


# --------------------------------------------------------------------------------------------
# Fixture assembly
# --------------------------------------------------------------------------------------------
class Fixture:
    """One header: tensors with a dtype rule, metadata, and a line saying what it stands for."""

    def __init__(self, name: str, about: str, metadata: dict[str, str] | None = None) -> None:
        self.name = name
        self.about = about
        self.metadata = metadata or {}
        self.tensors: dict[str, tuple[str, Shape]] = {}

    def add(self, spec: Spec, dtype: str | Callable[[str, Shape], str]) -> Fixture:
        for k, s in spec.items():
            self.tensors[k] = (dtype(k, s) if callable(dtype) else dtype, s)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"about": self.about, "metadata": self.metadata,
                "tensors": {k: [d, list(s)] for k, (d, s) in sorted(self.tensors.items())}}


def fp8_weights(default: str) -> Callable[[str, Shape], str]:
    """fp8 checkpoints keep norms/biases/embeddings in 16-bit and store the big matrices in F8_E4M3."""
    return lambda k, s: "F8_E4M3" if (len(s) == 2 and k.endswith(".weight") and "norm" not in k) else default


def ddpm_buffers() -> Spec:
    return {b: (1000,) for b in DDPM_BUFFERS}


def sd1_clip() -> Spec:
    spec = clip_hf(state_shapes(clip_model(CLIP_L, False)), "cond_stage_model.transformer.")
    return spec


def build_checkpoints(check: bool) -> list[Fixture]:
    fixtures: list[Fixture] = []
    vae = vae_model(SD_VAE)
    vae_ldm = vae_to_ldm(state_shapes(vae))
    if check:
        check_vae("sd vae", {k.removeprefix("first_stage_model."): v for k, v in vae_ldm.items()}, vae)
    vae16 = vae_model(SD3_VAE)
    vae16_ldm = vae_to_ldm(state_shapes(vae16))
    if check:
        check_vae("16ch vae", {k.removeprefix("first_stage_model."): v for k, v in vae16_ldm.items()}, vae16)
    clip_l = sd1_clip()
    pos_ids = {"cond_stage_model.transformer.text_model.embeddings.position_ids": (1, 77)}

    def pos_dtype(default: str) -> Callable[[str, Shape], str]:
        return lambda k, s: "I64" if k.endswith("position_ids") else default

    # SD1.5 (v1-5-pruned-emaonly, fp16)
    unet = unet_model(SD15_UNET)
    sd15_unet = unet_to_ldm(state_shapes(unet), SD15_UNET)
    if check:
        check_unet("sd15 unet", sd15_unet, unet)
    f = Fixture("sd15", "SD1.5 checkpoint (v1-5-pruned-emaonly, fp16): UNet + VAE + CLIP-L, LDM layout")
    f.add(sd15_unet, "F16").add(vae_ldm, "F16").add(clip_l, "F16").add(pos_ids, pos_dtype("F16"))
    f.add(ddpm_buffers(), "F32")
    fixtures.append(f)

    # SD1.5 inpainting (sd-v1-5-inpainting, fp32): 9 input channels
    unet9 = unet_model(dict(SD15_UNET, in_channels=9))
    sd15i_unet = unet_to_ldm(state_shapes(unet9), SD15_UNET)
    if check:
        check_unet("sd15 inpaint unet", sd15i_unet, unet9)
    f = Fixture("sd15_inpaint", "SD1.5 inpainting checkpoint (fp32): UNet in_channels 9 + VAE + CLIP-L")
    f.add(sd15i_unet, "F32").add(vae_ldm, "F32").add(clip_l, "F32").add(pos_ids, pos_dtype("F32"))
    f.add(ddpm_buffers(), "F32")
    fixtures.append(f)

    # SD1.5 instruct-pix2pix (8 input channels), the UNet part is what matters
    unet8 = unet_model(dict(SD15_UNET, in_channels=8))
    f = Fixture("sd15_ip2p", "instruct-pix2pix checkpoint (fp16): SD1.5 UNet in_channels 8 + VAE + CLIP-L")
    f.add(unet_to_ldm(state_shapes(unet8), SD15_UNET), "F16").add(vae_ldm, "F16").add(clip_l, "F16")
    fixtures.append(f)

    # SD2.1 768-v (v2-1_768-ema-pruned, fp16): OpenCLIP-H text encoder
    unet = unet_model(SD21_UNET)
    sd21_unet = unet_to_ldm(state_shapes(unet), SD21_UNET)
    if check:
        check_unet("sd21 unet", sd21_unet, unet)
    clip_h = clip_model(CLIP_H, True)
    clip_h_oc = clip_to_openclip(state_shapes(clip_h), "cond_stage_model.model.")
    if check:
        check_openclip("sd21 openclip-h", clip_h_oc, "cond_stage_model.model.", clip_h)
    f = Fixture("sd21_768_v", "SD2.1 768-v checkpoint (fp16): UNet ctx 1024 + VAE + OpenCLIP-H; no metadata")
    f.add(sd21_unet, "F16").add(vae_ldm, "F16").add(clip_h_oc, "F16").add(ddpm_buffers(), "F32")
    fixtures.append(f)

    # SDXL base 1.0 (fp16) with its modelspec metadata
    unet = unet_model(SDXL_UNET)
    sdxl_unet = unet_to_ldm(state_shapes(unet), SDXL_UNET)
    if check:
        check_unet("sdxl unet", sdxl_unet, unet)
    big_g = clip_model(CLIP_G, True)
    big_g_oc1 = clip_to_openclip(state_shapes(big_g), "conditioner.embedders.1.model.")
    if check:
        check_openclip("sdxl bigG", big_g_oc1, "conditioner.embedders.1.model.", big_g)
    xl_clip_l = clip_hf(state_shapes(clip_model(CLIP_L, False)), "conditioner.embedders.0.transformer.")
    f = Fixture("sdxl_base", "SDXL base 1.0 (fp16): SGM layout UNet + VAE + CLIP-L + OpenCLIP-bigG",
                {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-xl-v1-base",
                 "modelspec.implementation": "sgm", "modelspec.title": "stable-diffusion-xl-v1-base"})
    f.add(sdxl_unet, "F16").add(vae_ldm, "F16").add(xl_clip_l, "F16").add(big_g_oc1, "F16")
    fixtures.append(f)
    if check:
        check_detected("sdxl_base", {k: s for k, (_, s) in f.tensors.items()}, "xl_base")
        check_detected("sd15", {k: s for k, (_, s) in fixtures[0].tensors.items()}, "v1")
        check_detected("sd15_inpaint", {k: s for k, (_, s) in fixtures[1].tensors.items()}, "inpainting")
        check_detected("sd21", {k: s for k, (_, s) in fixtures[3].tensors.items()}, "v2")

    # SDXL refiner 1.0 (fp16)
    unet = unet_model(SDXL_REFINER_UNET)
    ref_unet = unet_to_ldm(state_shapes(unet), SDXL_REFINER_UNET)
    if check:
        check_unet("sdxl refiner unet", ref_unet, unet)
    big_g_oc0 = clip_to_openclip(state_shapes(big_g), "conditioner.embedders.0.model.")
    f = Fixture("sdxl_refiner", "SDXL refiner 1.0 (fp16): UNet model_channels 384, ctx 1280 + VAE + bigG",
                {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-xl-v1-refiner",
                 "modelspec.implementation": "sgm", "modelspec.title": "stable-diffusion-xl-v1-refiner"})
    f.add(ref_unet, "F16").add(vae_ldm, "F16").add(big_g_oc0, "F16")
    fixtures.append(f)
    if check:
        check_detected("sdxl_refiner", {k: s for k, (_, s) in f.tensors.items()}, "xl_refiner")

    # SD3 medium incl. clips and T5 (fp8 T5): MMDiT layout
    sd3m = sd3_model(SD3_MEDIUM)
    sd3m_mm = sd3_to_mmdit(state_shapes(sd3m))
    if check:
        check_sd3("sd3 medium", {k.removeprefix("model.diffusion_model."): v for k, v in sd3m_mm.items()}, sd3m)
    sd3_clip_l = clip_hf(state_shapes(clip_model(CLIP_L, True)), "text_encoders.clip_l.transformer.")
    sd3_clip_g = clip_hf(state_shapes(big_g), "text_encoders.clip_g.transformer.")
    t5 = {"text_encoders.t5xxl.transformer." + k: s for k, s in state_shapes(t5_model()).items()}
    f = Fixture("sd3_medium", "SD3 medium incl. clips + T5-XXL fp8 (sd3_medium_incl_clips_t5xxlfp8): MMDiT "
                "depth 24 + VAE 16ch + CLIP-L + CLIP-G + T5")
    f.add(sd3m_mm, "F16").add(vae16_ldm, "F16").add(sd3_clip_l, "F16").add(sd3_clip_g, "F16")
    f.add(t5, fp8_weights("F16"))
    fixtures.append(f)
    if check:
        check_detected("sd3_medium", {k: s for k, (_, s) in f.tensors.items()}, "sd3")

    # SD3.5 large (bf16): depth 38, qk-norm
    sd35l = sd3_model(SD35_LARGE)
    sd35l_mm = sd3_to_mmdit(state_shapes(sd35l))
    if check:
        check_sd3("sd3.5 large", {k.removeprefix("model.diffusion_model."): v for k, v in sd35l_mm.items()}, sd35l)
    f = Fixture("sd35_large", "SD3.5 large (bf16): MMDiT depth 38 with qk-norm + VAE 16ch")
    f.add(sd35l_mm, "BF16").add(vae16_ldm, "BF16")
    fixtures.append(f)
    if check:
        check_detected("sd35_large", {k: s for k, (_, s) in f.tensors.items()}, "sd35_large")

    # SD3.5 medium (bf16): MMDiT-X, pos_embed 384^2, attn2 in the first 13 blocks
    sd35m = sd3_model(SD35_MEDIUM)
    sd35m_mm = sd3_to_mmdit(state_shapes(sd35m))
    if check:
        check_sd3("sd3.5 medium", {k.removeprefix("model.diffusion_model."): v for k, v in sd35m_mm.items()}, sd35m)
    f = Fixture("sd35_medium", "SD3.5 medium (bf16): MMDiT-X depth 24, qk-norm, attn2 + VAE 16ch")
    f.add(sd35m_mm, "BF16").add(vae16_ldm, "BF16")
    fixtures.append(f)
    if check:
        check_detected("sd35_medium", {k: s for k, (_, s) in f.tensors.items()}, "sd35_medium")

    # Flux.1 dev / schnell (bf16, bare BFL layout as published)
    for name, cfg in (("flux_dev", FLUX_DEV), ("flux_schnell", FLUX_SCHNELL)):
        model = flux_model(cfg)
        bfl = flux_to_bfl(state_shapes(model))
        if check:
            check_flux(name, bfl, model)
        f = Fixture(name, f"Flux.1 {name.split('_')[1]} transformer (bf16, BFL layout, no prefix)")
        f.add(bfl, "BF16")
        fixtures.append(f)
        if check:
            check_detected(name, bfl, "flux-dev" if cfg["guidance_embeds"] else "flux-schnell")
    # Flux dev all-in-one fp8 (ComfyUI's flux1-dev-fp8): model.diffusion_model + vae. + clip_l + t5xxl
    model = flux_model(FLUX_DEV)
    f = Fixture("flux_dev_fp8_aio", "Flux.1 dev all-in-one fp8: DiT (F8_E4M3) + vae. (bf16) + CLIP-L + T5-XXL")
    f.add(flux_to_bfl(state_shapes(model), "model.diffusion_model."), fp8_weights("BF16"))
    f.add(vae_to_ldm(state_shapes(vae16), "vae."), "BF16")
    f.add(clip_hf(state_shapes(clip_model(CLIP_L, False)), "text_encoders.clip_l.transformer."), "F16")
    f.add(t5, fp8_weights("F16"))
    fixtures.append(f)

    # Standalone VAEs
    fixtures.append(Fixture("vae_sdxl", "SDXL VAE (sdxl_vae.safetensors, fp32, LDM layout, no prefix)")
                    .add({k.removeprefix("first_stage_model."): v for k, v in vae_ldm.items()}, "F32"))
    fixtures.append(Fixture("vae_flux", "Flux.1 autoencoder (ae.safetensors, bf16, 16 latent channels)")
                    .add({k.removeprefix("first_stage_model."): v for k, v in vae16_ldm.items()}, "BF16"))
    fixtures.append(Fixture("vae_sd_diffusers", "SD VAE in diffusers layout (vae/diffusion_pytorch_model, fp16)")
                    .add(state_shapes(vae), "F16"))

    # Bare UNets / DiTs
    fixtures.append(Fixture("unet_sdxl_diffusers", "SDXL UNet in diffusers layout (unet/diffusion_pytorch_model)")
                    .add(state_shapes(unet_model(SDXL_UNET)), "F16"))
    fixtures.append(Fixture("unet_sd15_ldm", "SD1.5 UNet only, LDM names with model.diffusion_model. prefix")
                    .add(sd15_unet, "F16"))
    fixtures.append(Fixture("dit_sd3_diffusers", "SD3 medium transformer in diffusers layout")
                    .add(state_shapes(sd3m), "F16"))
    fixtures.append(Fixture("dit_flux_diffusers", "Flux.1 schnell transformer in diffusers layout")
                    .add(state_shapes(flux_model(FLUX_SCHNELL)), "BF16"))

    # Standalone text encoders (ComfyUI's clip_l / clip_g / t5xxl files, HF layout)
    fixtures.append(Fixture("te_clip_l", "CLIP-L text encoder (clip_l.safetensors, HF layout)")
                    .add(clip_hf(state_shapes(clip_model(CLIP_L, True)), ""), "F16"))
    fixtures.append(Fixture("te_clip_g", "CLIP-G / bigG text encoder (clip_g.safetensors, HF layout)")
                    .add(clip_hf(state_shapes(big_g), ""), "F16"))
    fixtures.append(Fixture("te_t5xxl", "T5-XXL encoder (t5xxl_fp16.safetensors, HF layout)")
                    .add(state_shapes(t5_model()), "F16"))
    return fixtures


# --------------------------------------------------------------------------------------------
# LoRAs
# --------------------------------------------------------------------------------------------
def linear_modules(model: Any, keep: Callable[[str], bool]) -> dict[str, tuple[int, int, Shape]]:
    """Module path -> (in, out, kernel) for the Linear/Conv2d layers a trainer would target."""
    from torch import nn

    out: dict[str, tuple[int, int, Shape]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and keep(name):
            out[name] = (mod.in_features, mod.out_features, ())
        elif isinstance(mod, nn.Conv2d) and keep(name):
            out[name] = (mod.in_channels, mod.out_channels, tuple(mod.kernel_size))
    return out


def weight_modules(spec: Spec, keep: Callable[[str], bool], prefix: str = "") -> dict[str, tuple[int, int, Shape]]:
    """The same from an original-layout spec (``X.weight`` of 2-D/4-D shape)."""
    out: dict[str, tuple[int, int, Shape]] = {}
    for k, s in spec.items():
        k = k.removeprefix(prefix)
        if not k.endswith(".weight") or len(s) not in (2, 4):
            continue
        mod = k[: -len(".weight")]
        if keep(mod):
            out[mod] = (s[1], s[0], tuple(s[2:]))
    return out


_UNET_ATTN = re.compile(r"(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)|proj_in|proj_out)$")
_UNET_ATTN_ONLY = re.compile(r"attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
_TE = re.compile(r"(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.fc[12])$")


def unet_targets(model: Any, cfg: dict[str, Any], *, sgm_names: bool, conv: bool = False) -> dict[str, tuple]:
    def keep(name: str) -> bool:
        if "attentions" in name and _UNET_ATTN.search(name):
            return True
        return conv and "resnets" in name and name.endswith(("conv1", "conv2"))

    mods = linear_modules(model, keep)
    if sgm_names:
        mods = {unet_key_to_ldm(k + ".weight", cfg)[: -len(".weight")]: v for k, v in mods.items()}
    return mods


def te_targets(cfg: dict[str, Any]) -> dict[str, tuple]:
    model = clip_model(cfg, False)
    mods = linear_modules(model, lambda n: bool(_TE.search(n)))
    return {("text_model." + k if not k.startswith("text_model.") else k): v for k, v in mods.items()}


def kohya_name(prefix: str, module: str) -> str:
    return prefix + module.replace(".", "_")


def lora_tensors(fmt: str, name: str, dims: tuple[int, int, Shape], rank: int) -> Spec:
    """The tensors one adapted module contributes in a given format."""
    din, dout, kernel = dims
    k = kernel or ()
    if fmt in ("kohya", "locon"):
        down = (rank, din, *k) if k else (rank, din)
        up = (dout, rank, 1, 1) if k else (dout, rank)
        return {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": ()}
    if fmt == "diffusers":
        down = (rank, din, *k) if k else (rank, din)
        up = (dout, rank, 1, 1) if k else (dout, rank)
        return {f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up}
    if fmt == "loha":
        flat_in = din * (k[0] * k[1] if k else 1)
        return {f"{name}.hada_w1_a": (dout, rank), f"{name}.hada_w1_b": (rank, flat_in),
                f"{name}.hada_w2_a": (dout, rank), f"{name}.hada_w2_b": (rank, flat_in), f"{name}.alpha": ()}
    if fmt in ("lokr", "lokr_full"):
        f = 8  # LyCORIS factor=8: w1 is (out/(out/8), in/(in/8)) = (8, 8)
        w1 = (f, f)
        out_n, in_n = dout // f, din // f
        if fmt == "lokr_full":
            return {f"{name}.lokr_w1": w1, f"{name}.lokr_w2": (out_n, in_n), f"{name}.alpha": ()}
        return {f"{name}.lokr_w1": w1, f"{name}.lokr_w2_a": (out_n, rank), f"{name}.lokr_w2_b": (rank, in_n),
                f"{name}.alpha": ()}
    raise ValueError(fmt)


def lora_fixture(name: str, about: str, fmt: str, parts: list[tuple[str, dict[str, tuple]]], rank: int,
                 metadata: dict[str, str], dtype: str = "F16", naming: str = "kohya") -> Fixture:
    """``parts`` = [(prefix, {module: dims})]; ``naming`` kohya (prefix + dots->_) or dotted (prefix + path)."""
    spec: Spec = {}
    for prefix, mods in parts:
        for mod, dims in mods.items():
            full = kohya_name(prefix, mod) if naming == "kohya" else prefix + mod
            spec.update(lora_tensors(fmt, full, dims, rank))
    return Fixture(name, about, metadata).add(spec, lambda k, s: "F32" if k.endswith(".alpha") else dtype)


def kohya_meta(module: str, dim: int, alpha: int, base: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    meta = {"ss_network_module": module, "ss_network_dim": str(dim), "ss_network_alpha": str(alpha),
            "ss_base_model_version": base, "ss_v2": "True" if base.startswith("sd_v2") else "False",
            "ss_output_name": "test_lora", "ss_resolution": "(512, 512)", "ss_sd_model_name": "model.safetensors",
            "ss_tag_frequency": json.dumps({"img": {"1girl": 10, "solo": 8}})}
    meta.update(extra or {})
    return meta


def lyco_meta(algo: str, dim: int, base: str) -> dict[str, str]:
    return kohya_meta("lycoris.kohya", dim, 1, base,
                      {"ss_network_args": json.dumps({"algo": algo, "conv_dim": "8", "conv_alpha": "1",
                                                      "preset": "attn-mlp"})})


def build_loras() -> list[Fixture]:
    fx: list[Fixture] = []
    sd15 = unet_model(SD15_UNET)
    sd21 = unet_model(SD21_UNET)
    sdxl = unet_model(SDXL_UNET)
    te_l = te_targets(CLIP_L)
    te_h = te_targets(CLIP_H)
    te_g = te_targets(CLIP_G)

    # ---- SD1.5 ----
    u = unet_targets(sd15, SD15_UNET, sgm_names=False)
    fx.append(lora_fixture("lora_sd15_kohya", "SD1.5 LoRA, kohya sd-scripts networks.lora, rank 32", "kohya",
                           [("lora_unet_", u), ("lora_te_", te_l)], 32, kohya_meta("networks.lora", 32, 16, "sd_v1")))
    fx.append(lora_fixture("lora_sd15_diffusers", "SD1.5 LoRA, diffusers/PEFT (attention only), rank 4",
                           "diffusers",
                           [("unet.", {k: v for k, v in u.items() if _UNET_ATTN_ONLY.search(k)}),
                            ("text_encoder.", {k: v for k, v in te_l.items() if "self_attn" in k})],
                           4, {"format": "pt"}, naming="dotted"))
    uc = unet_targets(sd15, SD15_UNET, sgm_names=False, conv=True)
    fx.append(lora_fixture("lora_sd15_locon", "SD1.5 LyCORIS LoCon (attn + resnet convs), rank 16", "locon",
                           [("lora_unet_", uc), ("lora_te_", te_l)], 16, lyco_meta("locon", 16, "sd_v1")))
    fx.append(lora_fixture("lora_sd15_loha", "SD1.5 LyCORIS LoHa, rank 8", "loha",
                           [("lora_unet_", u), ("lora_te_", te_l)], 8, lyco_meta("loha", 8, "sd_v1")))
    fx.append(lora_fixture("lora_sd15_lokr", "SD1.5 LyCORIS LoKr (factor 8, full w2), no metadata", "lokr_full",
                           [("lora_unet_", u)], 8, {}))
    # ---- SD2.1 (kohya) ----
    fx.append(lora_fixture("lora_sd21_kohya", "SD2.1 LoRA, kohya, rank 16", "kohya",
                           [("lora_unet_", unet_targets(sd21, SD21_UNET, sgm_names=False)), ("lora_te_", te_h)], 16,
                           kohya_meta("networks.lora", 16, 8, "sd_v2_768_v")))
    # ---- SDXL ----
    ux = unet_targets(sdxl, SDXL_UNET, sgm_names=True)
    fx.append(lora_fixture("lora_sdxl_kohya", "SDXL LoRA, kohya sd-scripts (SGM unet names, te1/te2), rank 32",
                           "kohya", [("lora_unet_", ux), ("lora_te1_", te_l), ("lora_te2_", te_g)], 32,
                           kohya_meta("networks.lora", 32, 16, "sdxl_base_v1-0",
                                      {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
                                       "modelspec.sai_model_spec": "1.0.0"})))
    uxd = unet_targets(sdxl, SDXL_UNET, sgm_names=False)
    fx.append(lora_fixture("lora_sdxl_diffusers", "SDXL LoRA, diffusers/PEFT (unet attention + both TEs), rank 16",
                           "diffusers",
                           [("unet.", {k: v for k, v in uxd.items() if _UNET_ATTN_ONLY.search(k)}),
                            ("text_encoder.", {k: v for k, v in te_l.items() if "self_attn" in k}),
                            ("text_encoder_2.", {k: v for k, v in te_g.items() if "self_attn" in k})],
                           16, {}, naming="dotted"))
    uxc = unet_targets(sdxl, SDXL_UNET, sgm_names=True, conv=True)
    fx.append(lora_fixture("lora_sdxl_locon", "SDXL LyCORIS LoCon, rank 16", "locon",
                           [("lora_unet_", uxc)], 16, lyco_meta("locon", 16, "sdxl_base_v1-0")))
    fx.append(lora_fixture("lora_sdxl_loha", "SDXL LyCORIS LoHa, rank 8, no metadata", "loha",
                           [("lora_unet_", ux)], 8, {}))
    fx.append(lora_fixture("lora_sdxl_lokr", "SDXL LyCORIS LoKr (factor 8, w2 decomposed rank 16)", "lokr",
                           [("lora_unet_", ux), ("lora_te1_", te_l), ("lora_te2_", te_g)], 16,
                           lyco_meta("lokr", 16, "sdxl_base_v1-0")))
    # Slider-style SDXL LoRA: only self-attention of the 2nd+ transformer blocks (no attn2, no 2048 dims)
    slider = {k: v for k, v in ux.items() if re.search(r"transformer_blocks\.[1-9]\d*\.attn1\.", k)}
    fx.append(lora_fixture("lora_sdxl_slider", "SDXL slider LoRA: attn1 of transformer_blocks>=1 only", "kohya",
                           [("lora_unet_", slider)], 4, {}))

    # ---- SD3 medium ----
    sd3m = sd3_to_mmdit(state_shapes(sd3_model(SD3_MEDIUM)), "")
    sd3_keep = re.compile(r"joint_blocks\.\d+\.(x_block|context_block)\.(attn\.(qkv|proj)|mlp\.fc[12])$")
    u3 = weight_modules(sd3m, lambda m: bool(sd3_keep.search(m)))
    fx.append(lora_fixture("lora_sd3_kohya", "SD3 medium LoRA, kohya networks.lora_sd3, rank 16", "kohya",
                           [("lora_unet_", u3)], 16, kohya_meta("networks.lora_sd3", 16, 16, "sd3",
                                                               {"ss_base_model_version": "medium"})))
    sd3d = sd3_model(SD3_MEDIUM)
    u3d = linear_modules(sd3d, lambda n: bool(re.search(
        r"transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)$", n)))
    fx.append(lora_fixture("lora_sd3_diffusers", "SD3 medium LoRA, diffusers/PEFT, rank 16", "diffusers",
                           [("transformer.", u3d)], 16, {}, naming="dotted"))
    fx.append(lora_fixture("lora_sd3_locon", "SD3 medium LyCORIS LoCon (kohya names), rank 8", "locon",
                           [("lora_unet_", u3)], 8, lyco_meta("locon", 8, "medium")))
    fx.append(lora_fixture("lora_sd3_loha", "SD3 medium LyCORIS LoHa, rank 8, no metadata", "loha",
                           [("lora_unet_", u3)], 8, {}))
    fx.append(lora_fixture("lora_sd3_lokr", "SD3 medium LyCORIS LoKr (full w2)", "lokr_full",
                           [("lora_unet_", u3)], 8, lyco_meta("lokr", 8, "medium")))
    sd35l = sd3_to_mmdit(state_shapes(sd3_model(SD35_LARGE)), "")
    fx.append(lora_fixture("lora_sd35_large_kohya", "SD3.5 large LoRA, kohya, rank 16, no metadata", "kohya",
                           [("lora_unet_", weight_modules(sd35l, lambda m: bool(sd3_keep.search(m))))], 16, {}))
    # SD3.5 Medium (MMDiT-X): kohya networks.lora_sd3 also adapts the x_block's second attention (attn2)
    sd35m_mmdit = sd3_to_mmdit(state_shapes(sd3_model(SD35_MEDIUM)), "")
    sd35_keep = re.compile(r"joint_blocks\.\d+\.(x_block|context_block)\.(attn2?\.(qkv|proj)|mlp\.fc[12])$")
    fx.append(lora_fixture("lora_sd35_medium_kohya", "SD3.5 medium LoRA, kohya, rank 16 (x_block attn2 included)",
                           "kohya", [("lora_unet_", weight_modules(sd35m_mmdit, lambda m: bool(sd35_keep.search(m))))],
                           16, {}))
    sd35_attn = re.compile(r"transformer_blocks\.\d+\.attn2?\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj"
                           r"|add_v_proj|to_add_out)$")
    fx.append(lora_fixture("lora_sd35_medium_diffusers", "SD3.5 medium LoRA, diffusers/PEFT (attn and attn2), rank 16",
                           "diffusers", [("transformer.", linear_modules(sd3_model(SD35_MEDIUM),
                                                                         lambda n: bool(sd35_attn.search(n))))],
                           16, {}, naming="dotted"))
    # SimpleTuner LyCORIS (lycoris_ + diffusers path, ComfyUI's "simpletuner lycoris format"), LoKr factor 8
    # with w2 decomposed at rank 16, on SD3.5 Large
    fx.append(lora_fixture("lora_sd35_large_lycoris_lokr", "SD3.5 large LyCORIS LoKr, SimpleTuner naming, no metadata",
                           "lokr", [("lycoris_", linear_modules(sd3_model(SD35_LARGE),
                                                                lambda n: bool(sd35_attn.search(n))))],
                           16, {}, dtype="BF16"))

    # ---- Flux ----
    bfl = flux_to_bfl(state_shapes(flux_model(FLUX_DEV)))
    flux_keep = re.compile(r"(double_blocks\.\d+\.(img|txt)_(attn\.(qkv|proj)|mlp\.[02]|mod\.lin)"
                           r"|single_blocks\.\d+\.(linear[12]|modulation\.lin))$")
    uf = weight_modules(bfl, lambda m: bool(flux_keep.search(m)))
    fx.append(lora_fixture("lora_flux_kohya", "Flux.1 LoRA, kohya networks.lora_flux, rank 16", "kohya",
                           [("lora_unet_", uf)], 16,
                           kohya_meta("networks.lora_flux", 16, 16, "flux1",
                                      {"modelspec.architecture": "flux-1-dev/lora"}), dtype="BF16"))
    fd = flux_model(FLUX_DEV)
    ufd = linear_modules(fd, lambda n: bool(re.search(
        r"(transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
        r"|single_transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v)|proj_mlp|proj_out))$", n)))
    fx.append(lora_fixture("lora_flux_diffusers", "Flux.1 LoRA, diffusers/PEFT (ai-toolkit style), rank 16",
                           "diffusers", [("transformer.", ufd)], 16, {"format": "pt"}, dtype="BF16",
                           naming="dotted"))
    fx.append(lora_fixture("lora_flux_locon", "Flux.1 LyCORIS LoCon (kohya names), rank 16", "locon",
                           [("lora_unet_", uf)], 16, lyco_meta("locon", 16, "flux1"), dtype="BF16"))
    fx.append(lora_fixture("lora_flux_loha", "Flux.1 LyCORIS LoHa, rank 8, no metadata", "loha",
                           [("lora_unet_", uf)], 8, {}, dtype="BF16"))
    fx.append(lora_fixture("lora_flux_lokr", "Flux.1 LyCORIS LoKr, SimpleTuner naming (lycoris_ + diffusers path)",
                           "lokr_full", [("lycoris_", ufd)], 8, {}, dtype="BF16"))
    return fx


def build_all(check: bool) -> list[Fixture]:
    return build_checkpoints(check) + build_loras()


def _dump(fixture: Fixture) -> bytes:
    raw = json.dumps(fixture.to_json(), separators=(",", ":")).encode()
    return gzip.compress(raw, compresslevel=9, mtime=0)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored files instead of writing")
    parser.add_argument("--no-verify", action="store_true", help="skip the round trips through diffusers")
    args = parser.parse_args(list(argv) if argv is not None else None)
    fixtures = build_all(check=not args.no_verify)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stale = []
    total = 0
    for f in fixtures:
        path = DATA_DIR / f"{f.name}.json.gz"
        data = _dump(f)
        total += len(data)
        if args.check:
            if not path.exists() or json.loads(gzip.decompress(path.read_bytes())) != f.to_json():
                stale.append(f.name)
        else:
            path.write_bytes(data)
        print(f"{f.name:24s} {len(f.tensors):5d} tensors  {len(data) / 1024:7.1f} KiB", file=sys.stderr)
    print(f"{len(fixtures)} fixtures, {total / 1024:.0f} KiB", file=sys.stderr)
    if stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Tiny random-weight SD1.5 / SDXL / SD3 models, built offline, for the runtime tests.

Everything here is made from scratch: tokenizers from vocab files written here, diffusers configs
with tiny sizes, a diffusers -> original-layout converter that follows the block counts of the
config (the converters in diffusers' repo hard-code the real layout), single-file writers, and
LoRA writers in kohya and diffusers/PEFT formats targeting the attention projections.

Built models are cached for the whole test process in one temporary folder (removed at exit), so
each family is built once however many tests use it. Traps handled (see
shared/reference/offline-testing.md): every module is put in eval() (T5 dropout), CLIP-L hidden
(32) differs from CLIP-G hidden (64) so from_single_file cannot mix them up, SD3's CLIP-L has an
identity projection (the loader forces one), and T5 is written with both tied embedding keys.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIP_BOS = 516
CLIP_EOS = 517


# -- tokenizers --------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars)))


def write_clip_tokenizer(folder: Path) -> Path:
    """A 518-token byte-level BPE vocabulary in CLIP's file format (vocab.json + merges.txt)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>")]
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["th", "the</w>", "an", "and</w>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    vocab["<|startoftext|>"] = CLIP_BOS
    vocab["<|endoftext|>"] = CLIP_EOS
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n", encoding="utf-8")
    return folder


@functools.cache
def clip_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer(cache_root() / "tokenizers" / "clip")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77, pad_token="<|endoftext|>")


@functools.cache
def t5_tokenizer() -> Any:
    """A unigram T5 tokenizer from a piece list: no sentencepiece model file needed."""
    from transformers import T5TokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in letters] + [("\u2581" + c, -3.5) for c in letters]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=256)


# -- models --------------------------------------------------------------------------------------------


def _clip_config(hidden: int, projection: int | None = None, act: str = "quick_gelu") -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=1000, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=projection or hidden,
        bos_token_id=CLIP_BOS, eos_token_id=CLIP_EOS, pad_token_id=CLIP_EOS, hidden_act=act,
    )


def _vae(sd3: bool = False) -> Any:
    from diffusers import AutoencoderKL

    extra: dict[str, Any] = {}
    if sd3:
        extra = {"use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609, "scaling_factor": 1.5035}
    return AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, layers_per_block=1, norm_num_groups=2, sample_size=64, **extra,
    )


def _eval_all(pipe: Any) -> Any:
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe


def build_sd15() -> Any:
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
        steps_offset=1, set_alpha_to_one=False,
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=_vae(), text_encoder=CLIPTextModel(_clip_config(32)), tokenizer=clip_tokenizer(),
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return _eval_all(pipe)


def build_sdxl() -> Any:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32 + 64, attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=64 + 6 * 8, norm_num_groups=4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
    )
    pipe = StableDiffusionXLPipeline(
        unet=unet, vae=_vae(), scheduler=scheduler,
        text_encoder=CLIPTextModel(_clip_config(32)), tokenizer=clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(64, 64, act="gelu")), tokenizer_2=clip_tokenizer(),
    )
    return _eval_all(pipe)


def build_sd3() -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=96, caption_projection_dim=32, pooled_projection_dim=96,
        pos_embed_max_size=32,
    )
    clip_l = CLIPTextModelWithProjection(_clip_config(32, 32))
    with torch.no_grad():  # the single-file loader forces an identity projection on CLIP-L
        clip_l.text_projection.weight.copy_(torch.eye(32))
    t5 = T5EncoderModel(
        T5Config(vocab_size=64, d_model=96, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                 relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, vae=_vae(sd3=True), scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        text_encoder=clip_l, tokenizer=clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(64, 64, act="gelu")), tokenizer_2=clip_tokenizer(),
        text_encoder_3=t5, tokenizer_3=t5_tokenizer(),
    )
    return _eval_all(pipe)


def build_sdxl_refiner() -> Any:
    """An SDXL refiner: OpenCLIP-G conditioning only, aesthetic-score time ids (5 instead of 6)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=64 + 5 * 8,
        norm_num_groups=4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
    )
    pipe = StableDiffusionXLImg2ImgPipeline(
        unet=unet, vae=_vae(), scheduler=scheduler, text_encoder=None, tokenizer=None,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(64, 64, act="gelu")), tokenizer_2=clip_tokenizer(),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
    )
    return _eval_all(pipe)


def _inpaint(base: Any, cls_name: str) -> Any:
    """``base``'s pipeline with a 9-channel UNet (latents + mask + masked-image latents), as inpaint checkpoints have."""
    import torch
    import diffusers
    from diffusers import UNet2DConditionModel

    torch.manual_seed(2)
    config = dict(base.unet.config)
    config["in_channels"] = 9
    unet = UNet2DConditionModel.from_config(config)
    components = {**base.components, "unet": unet}
    if cls_name == "StableDiffusionInpaintPipeline":
        components.update(requires_safety_checker=False)
    return _eval_all(getattr(diffusers, cls_name)(**components))


def build_sd15_inpaint() -> Any:
    return _inpaint(build_sd15(), "StableDiffusionInpaintPipeline")


def build_sdxl_inpaint() -> Any:
    return _inpaint(build_sdxl(), "StableDiffusionXLInpaintPipeline")


BUILDERS = {"sd1": build_sd15, "sdxl": build_sdxl, "sd3": build_sd3, "sdxl_refiner": build_sdxl_refiner,
            "sd1_inpaint": build_sd15_inpaint, "sdxl_inpaint": build_sdxl_inpaint}
#: The layout family of a test model whose name says more (an inpaint SD1 is laid out as SD1).
LAYOUT = {"sd1_inpaint": "sd1", "sdxl_inpaint": "sdxl"}


# -- diffusers -> original layout ------------------------------------------------------------------------

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _resnet_rest(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET.get(head, head)}.{tail}"


def unet_key_to_original(key: str, config: Any) -> str:
    """One diffusers UNet2DConditionModel key in original (LDM/SGM) naming, for any block counts."""
    lpb = config["layers_per_block"]
    up_has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    parts = key.split(".")
    simple = {
        "conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
        "conv_norm_out": "out.0", "conv_out": "out.2",
    }
    for src, dst in simple.items():
        if key.startswith(src + "."):
            return dst + key[len(src):]
    if parts[0] == "down_blocks":
        i, what, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if what == "resnets":
            return f"input_blocks.{1 + i * (lpb + 1) + j}.0.{_resnet_rest(rest)}"
        if what == "attentions":
            return f"input_blocks.{1 + i * (lpb + 1) + j}.1.{rest}"
        if what == "downsamplers":  # downsamplers.0.conv.weight
            return f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op.{'.'.join(parts[5:])}"
    if parts[0] == "mid_block":
        what, k, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        if what == "resnets":
            return f"middle_block.{0 if k == 0 else 2}.{_resnet_rest(rest)}"
        return f"middle_block.1.{rest}"
    if parts[0] == "up_blocks":
        i, what, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if what == "resnets":
            return f"output_blocks.{i * (lpb + 1) + j}.0.{_resnet_rest(rest)}"
        if what == "attentions":
            return f"output_blocks.{i * (lpb + 1) + j}.1.{rest}"
        if what == "upsamplers":
            return f"output_blocks.{i * (lpb + 1) + lpb}.{2 if up_has_attn[i] else 1}.{'.'.join(parts[4:])}"
    raise KeyError(f"no original name for UNet key {key}")


def vae_to_original(state: dict[str, Any], n_blocks: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        parts = new.split(".")
        if parts[1] == "down_blocks":
            i, what = int(parts[2]), parts[3]
            if what == "resnets":
                new = f"{parts[0]}.down.{i}.block.{parts[4]}.{'.'.join(parts[5:])}"
            else:
                new = f"{parts[0]}.down.{i}.downsample.{'.'.join(parts[5:])}"
        elif parts[1] == "up_blocks":
            i, what = n_blocks - 1 - int(parts[2]), parts[3]
            if what == "resnets":
                new = f"{parts[0]}.up.{i}.block.{parts[4]}.{'.'.join(parts[5:])}"
            else:
                new = f"{parts[0]}.up.{i}.upsample.{'.'.join(parts[5:])}"
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
            else:
                rest = ".".join(parts[4:])
                for src, dst in attn.items():
                    if rest.startswith(src + "."):
                        rest = dst + rest[len(src):]
                        break
                new = f"{parts[0]}.mid.attn_1.{rest}"
                if value.ndim == 2:
                    value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def clip_to_original(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """HF CLIP keys under ``prefix``; transformers >= 5.6 dropped ``text_model.`` from CLIPTextModel."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        if not key.startswith("text_model.") and not key.startswith("text_projection"):
            key = "text_model." + key
        out[prefix + key] = value
    return out


def openclip_to_original(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key.endswith("position_ids"):
            continue
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.split(".")[-1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif key.startswith("encoder.layers."):
            parts = key.split(".")
            layer, rest = parts[2], ".".join(parts[3:])
            base = f"{prefix}transformer.resblocks.{layer}."
            if rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                qkv.setdefault((base, parts[-1]), {})[rest.split(".")[1]] = value
                continue
            for src, dst in names.items():
                if rest.startswith(src + "."):
                    out[base + dst + rest[len(src):]] = value
                    break
            else:
                raise KeyError(key)
        else:
            raise KeyError(key)
    for (base, kind), parts3 in qkv.items():
        out[f"{base}attn.in_proj_{kind}"] = torch.cat([parts3["q_proj"], parts3["k_proj"], parts3["v_proj"]], 0)
    return out


def _swap_halves(t: Any) -> Any:
    import torch

    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def sd3_transformer_to_original(state: dict[str, Any], num_layers: int) -> dict[str, Any]:
    import torch

    p = "model.diffusion_model."
    out: dict[str, Any] = {}
    simple = {
        "pos_embed.pos_embed": "pos_embed", "pos_embed.proj": "x_embedder.proj",
        "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
        "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
        "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
        "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
        "context_embedder": "context_embedder", "proj_out": "final_layer.linear",
    }
    block_names = {
        "norm1.linear": "x_block.adaLN_modulation.1", "norm1_context.linear": "context_block.adaLN_modulation.1",
        "attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
        "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
        "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
    }
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        stem, _, kind = key.rpartition(".")
        if stem in simple or key in simple:
            out[p + (simple[key] if key in simple else f"{simple[stem]}.{kind}")] = value
        elif stem == "norm_out.linear":
            out[f"{p}final_layer.adaLN_modulation.1.{kind}"] = _swap_halves(value)
        elif key.startswith("transformer_blocks."):
            parts = stem.split(".")
            i, inner = int(parts[1]), ".".join(parts[2:])
            base = f"{p}joint_blocks.{i}."
            if inner in ("attn.to_q", "attn.to_k", "attn.to_v"):
                qkv.setdefault((base + "x_block.attn.qkv", kind), {})[inner[-1]] = value
            elif inner in ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"):
                qkv.setdefault((base + "context_block.attn.qkv", kind), {})[inner.split(".")[1][4]] = value
            elif inner in block_names:
                if inner == "norm1_context.linear" and i == num_layers - 1:
                    value = _swap_halves(value)
                out[f"{base}{block_names[inner]}.{kind}"] = value
            else:
                raise KeyError(key)
        else:
            raise KeyError(key)
    for (name, kind), d in qkv.items():
        out[f"{name}.{kind}"] = torch.cat([d["q"], d["k"], d["v"]], 0)
    return out


def original_state_dict(pipe: Any, family: str, include_t5: bool = True) -> dict[str, Any]:
    """The whole pipeline as one original-layout state dict (what Civitai serves)."""
    sd: dict[str, Any] = {}
    n_vae_blocks = len(pipe.vae.config.block_out_channels)
    sd.update(vae_to_original(pipe.vae.state_dict(), n_vae_blocks))
    if family in ("sd1", "sdxl", "sdxl_refiner"):
        cfg = pipe.unet.config
        for key, value in pipe.unet.state_dict().items():
            sd["model.diffusion_model." + unet_key_to_original(key, cfg)] = value
    if family == "sd1":
        sd.update(clip_to_original(pipe.text_encoder.state_dict(), "cond_stage_model.transformer."))
    elif family == "sdxl":
        sd.update(clip_to_original(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        sd.update(openclip_to_original(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    elif family == "sdxl_refiner":  # the refiner's only text encoder is OpenCLIP-G, embedder 0
        sd.update(openclip_to_original(pipe.text_encoder_2.state_dict(), "conditioner.embedders.0.model."))
    elif family == "sd3":
        sd.update(sd3_transformer_to_original(pipe.transformer.state_dict(), pipe.transformer.config.num_layers))
        sd.update(clip_to_original(pipe.text_encoder.state_dict(), "text_encoders.clip_l.transformer."))
        sd.update(clip_to_original(pipe.text_encoder_2.state_dict(), "text_encoders.clip_g.transformer."))
        if include_t5:
            t5 = pipe.text_encoder_3.state_dict()
            t5.setdefault("encoder.embed_tokens.weight", t5["shared.weight"])  # the loader is strict
            sd.update({"text_encoders.t5xxl.transformer." + k: v for k, v in t5.items()})
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


# -- files on disk -----------------------------------------------------------------------------------------


def cache_root() -> Path:
    return _cache_root()


@functools.cache
def _cache_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="sdhub-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@dataclass(frozen=True)
class TinyModel:
    """One tiny model in every form the runtime accepts."""

    family: str
    diffusers_dir: Path  # a full save_pretrained folder
    single_file: Path  # original layout, one safetensors file
    config_dir: Path  # the diffusers folder minus weights: what from_single_file needs as config=


@functools.cache
def tiny_pipeline(family: str) -> Any:
    """The in-memory pipeline (built once per process)."""
    _one_thread()
    return BUILDERS[family]()


@functools.cache
def _one_thread() -> None:
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's
    spin-waiting made the runtime tests ten times slower; one thread keeps them fast and steady."""
    import torch

    torch.set_num_threads(1)


@functools.cache
def tiny_model(family: str) -> TinyModel:
    from safetensors.torch import save_file

    pipe = tiny_pipeline(family)
    root = cache_root() / family
    diffusers_dir = root / "diffusers"
    pipe.save_pretrained(str(diffusers_dir), safe_serialization=True)
    config_dir = root / "config"
    shutil.copytree(diffusers_dir, config_dir, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    single = root / f"tiny_{family}.safetensors"
    save_file(original_state_dict(pipe, LAYOUT.get(family, family)), str(single), metadata={"format": "pt"})
    return TinyModel(family, diffusers_dir, single, config_dir)


@functools.cache
def sd3_without_t5() -> Path:
    """The SD3 single file minus the T5 encoder (most SD3 files on Civitai leave it out)."""
    from safetensors.torch import save_file

    path = cache_root() / "sd3" / "tiny_sd3_no_t5.safetensors"
    save_file(original_state_dict(tiny_pipeline("sd3"), "sd3", include_t5=False), str(path), metadata={"format": "pt"})
    return path


# -- LoRAs ----------------------------------------------------------------------------------------------------

UNET_ATTN = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
TE_ATTN = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
SD3_ATTN = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")


RESNET_CONVS = ("conv1", "conv2")


def lora_targets(pipe: Any, family: str, convs: bool = False) -> dict[str, list[tuple[str, Any]]]:
    """component -> [(module name, layer)] a LoRA trains: attention projections (+ resnet convs: LoCon)."""
    targets: dict[str, list[tuple[str, Any]]] = {}
    if family == "sd3":
        targets["transformer"] = [(n, m) for n, m in pipe.transformer.named_modules() if n.endswith(SD3_ATTN)]
        return targets
    suffixes = UNET_ATTN + (RESNET_CONVS if convs else ())
    targets["unet"] = [(n, m) for n, m in pipe.unet.named_modules()
                       if n.endswith(suffixes) and (not n.endswith(RESNET_CONVS) or ".resnets." in n)]
    targets["text_encoder"] = [(n, m) for n, m in pipe.text_encoder.named_modules() if n.endswith(TE_ATTN)]
    if family == "sdxl":
        targets["text_encoder_2"] = [(n, m) for n, m in pipe.text_encoder_2.named_modules() if n.endswith(TE_ATTN)]
    return targets


@dataclass
class LoraFactors:
    """The low-rank factors of one module: delta W = scale * up @ down, scale = alpha / rank."""

    component: str
    module: str
    down: Any
    up: Any
    alpha: float

    @property
    def delta(self) -> Any:
        """The weight update, shaped like the layer (conv LoRAs: up is 1x1, down carries the kernel)."""
        scale = self.alpha / self.down.shape[0]
        if self.down.ndim == 4:
            out, inp, kh, kw = self.up.shape[0], self.down.shape[1], self.down.shape[2], self.down.shape[3]
            return scale * (self.up.flatten(1) @ self.down.flatten(1)).reshape(out, inp, kh, kw)
        return scale * (self.up @ self.down)


def random_lora(family: str, rank: int = 4, alpha: float = 2.0, seed: int = 1, magnitude: float = 0.5,
                convs: bool = False) -> list[LoraFactors]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    factors = []
    for component, modules in lora_targets(tiny_pipeline(family), family, convs).items():
        for name, layer in modules:
            if isinstance(layer, torch.nn.Conv2d):
                kh, kw = layer.kernel_size
                down = torch.randn(rank, layer.in_channels, kh, kw, generator=gen) * magnitude * 0.3
                up = torch.randn(layer.out_channels, rank, 1, 1, generator=gen) * magnitude * 0.3
            else:
                down = torch.randn(rank, layer.in_features, generator=gen) * magnitude
                up = torch.randn(layer.out_features, rank, generator=gen) * magnitude
            factors.append(LoraFactors(component, name, down, up, alpha))
    return factors


SD3_KOHYA = {"attn.to_out.0": "x_block_attn_proj"}
SD3_FUSED = {("attn.to_q", "attn.to_k", "attn.to_v"): "x_block_attn_qkv",
             ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"): "context_block_attn_qkv"}


def write_kohya_sd3_lora(path: Path, rank: int = 4, alpha: float = 2.0, seed: int = 3, magnitude: float = 0.5) -> tuple[Path, list[LoraFactors]]:
    """kohya's SD3 naming (original MMDiT names, fused qkv: one down, up = cat(q, k, v)).

    Returns the file and the equivalent per-projection factors, for the reference merge.
    """
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    transformer = tiny_pipeline("sd3").transformer
    sd: dict[str, Any] = {}
    factors: list[LoraFactors] = []
    for i, block in enumerate(transformer.transformer_blocks):
        groups: list[tuple[tuple[str, ...], str]] = [((k,), v) for k, v in SD3_KOHYA.items()] + list(SD3_FUSED.items())
        for modules, kohya in groups:
            layers = [block.get_submodule(m) for m in modules]
            down = torch.randn(rank, layers[0].in_features, generator=gen) * magnitude
            ups = [torch.randn(layer.out_features, rank, generator=gen) * magnitude for layer in layers]
            name = f"lora_unet_joint_blocks_{i}_{kohya}"
            sd[f"{name}.lora_down.weight"] = down.contiguous()
            sd[f"{name}.lora_up.weight"] = torch.cat(ups, 0).contiguous()
            sd[f"{name}.alpha"] = torch.tensor(alpha)
            factors += [LoraFactors("transformer", f"transformer_blocks.{i}.{m}", down, up, alpha) for m, up in zip(modules, ups)]
    save_file(sd, str(path), metadata={"ss_network_module": "networks.lora_sd3", "ss_base_model_version": "sd3",
                                       "modelspec.architecture": MODELSPEC_ARCH["sd3"]})
    return path, factors


MODELSPEC_ARCH = {"sd1": "stable-diffusion-v1/lora", "sdxl": "stable-diffusion-xl-v1-base/lora", "sd3": "stable-diffusion-v3-medium/lora"}
KOHYA_BASE = {"sd1": "sd_v1", "sdxl": "sdxl_base_v1-0", "sd3": "sd3"}


def _kohya_te_name(module: str) -> str:
    module = module if module.startswith("text_model.") else "text_model." + module
    return module.replace(".", "_")


def kohya_name(family: str, component: str, module: str) -> str:
    """The kohya-ss stem of a diffusers module: lora_unet_* (SD1: diffusers names; SDXL: original names), lora_te[12]_*."""
    if component == "unet":
        unet_cfg = tiny_pipeline(family).unet.config
        original = module if family == "sd1" else unet_key_to_original(module + ".weight", unet_cfg)[: -len(".weight")]
        return "lora_unet_" + original.replace(".", "_")
    if component == "transformer":
        raise ValueError("kohya SD3 LoRAs are not written by this helper")
    te_prefix = {"text_encoder": "lora_te1" if family == "sdxl" else "lora_te", "text_encoder_2": "lora_te2"}
    return f"{te_prefix[component]}_{_kohya_te_name(module)}"


def write_kohya_lora(path: Path, family: str, factors: list[LoraFactors]) -> Path:
    """kohya-ss naming: lora_unet_* (SD1: diffusers names; SDXL: original names), lora_te[12]_*."""
    import torch
    from safetensors.torch import save_file

    sd = {}
    for f in factors:
        name = kohya_name(family, f.component, f.module)
        sd[f"{name}.lora_down.weight"] = f.down.contiguous()
        sd[f"{name}.lora_up.weight"] = f.up.contiguous()
        sd[f"{name}.alpha"] = torch.tensor(f.alpha)
    meta = {"ss_network_module": "networks.lora", "ss_base_model_version": KOHYA_BASE[family],
            "modelspec.architecture": MODELSPEC_ARCH[family], "ss_network_dim": str(factors[0].down.shape[0]),
            "ss_network_alpha": str(factors[0].alpha)}
    save_file(sd, str(path), metadata=meta)
    return path


def write_peft_lora(path: Path, family: str, factors: list[LoraFactors]) -> Path:
    """diffusers/PEFT naming: <component>.<module>.lora_A/lora_B.weight, alpha in the adapter metadata."""
    from safetensors.torch import save_file

    sd = {}
    components = set()
    for f in factors:
        components.add(f.component)
        sd[f"{f.component}.{f.module}.lora_A.weight"] = f.down.contiguous()
        sd[f"{f.component}.{f.module}.lora_B.weight"] = f.up.contiguous()
    rank = factors[0].down.shape[0]
    adapter: dict[str, dict[str, Any]] = {c: {"r": rank, "lora_alpha": factors[0].alpha} for c in components}
    for f in factors:  # modules whose alpha differs from their component's go in PEFT's alpha_pattern
        if f.alpha != adapter[f.component]["lora_alpha"]:
            adapter[f.component].setdefault("alpha_pattern", {})[f.module] = f.alpha
    meta = {"format": "pt", "modelspec.architecture": MODELSPEC_ARCH[family],
            "lora_adapter_metadata": json.dumps({f"{c}.{k}": v for c, cfg in adapter.items() for k, v in cfg.items()})}
    save_file(sd, str(path), metadata=meta)
    return path


@dataclass
class LycorisFactors:
    """One module of a LyCORIS network, with its update worked out here, independently of sdhub's merge."""

    component: str
    module: str
    kind: str  # "locon_cp", "loha", "loha_tucker", "lokr", "lokr_whole", "lokr_tucker"
    tensors: dict[str, Any]  # leaf name -> tensor, as the file stores them
    alpha: float
    shape: tuple[int, ...]  # the layer's weight shape

    @property
    def delta(self) -> Any:
        import torch

        t = self.tensors

        def tucker(core: Any, wb: Any, wa: Any) -> Any:
            # out[p, r, k, l] = sum_i sum_j core[i, j, k, l] * wb[j, r] * wa[i, p]
            inner = torch.tensordot(core, wb, dims=([1], [0]))  # i, k, l, r
            return torch.tensordot(wa, inner, dims=([0], [0])).permute(0, 3, 1, 2)  # p, r, k, l

        def kron(a: Any, b: Any) -> Any:
            # block (i, j) of the result is a[i, j] * b: rows i * b_rows + p, columns j * b_cols + q
            blocks = torch.einsum("ij,pq...->ipjq...", a, b)
            return blocks.reshape(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1], *b.shape[2:])

        if self.kind == "locon_cp":
            rank = t["lora_down.weight"].shape[0]
            whole = tucker(t["lora_mid.weight"], t["lora_down.weight"].flatten(1), t["lora_up.weight"].flatten(1).T)
        elif self.kind == "loha":
            rank = t["hada_w1_b"].shape[0]
            whole = (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])
        elif self.kind == "loha_tucker":
            rank = t["hada_w1_b"].shape[0]
            whole = tucker(t["hada_t1"], t["hada_w1_b"], t["hada_w1_a"]) * tucker(t["hada_t2"], t["hada_w2_b"], t["hada_w2_a"])
        elif self.kind == "lokr_whole":
            rank = None  # both sides stored whole: LyCORIS applies them unscaled
            whole = kron(t["lokr_w1"], t["lokr_w2"])
        elif self.kind == "lokr_tucker":
            rank = t["lokr_w2_b"].shape[0]
            whole = kron(t["lokr_w1"], tucker(t["lokr_t2"], t["lokr_w2_b"], t["lokr_w2_a"]))
        else:
            rank = t["lokr_w2_b"].shape[0]
            w2 = t["lokr_w2_a"] @ t["lokr_w2_b"]
            whole = kron(t["lokr_w1_a"] @ t["lokr_w1_b"], w2)
        scale = 1.0 if rank is None else self.alpha / rank
        return scale * whole.reshape(self.shape)


def random_lycoris(family: str, seed: int = 5, rank: int = 4, alpha: float = 2.0,
                   magnitude: float = 0.6) -> list[LycorisFactors]:
    """Every kind of LyCORIS module, spread over the model's attention and resnet layers in turn."""
    import torch

    gen = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> Any:
        return torch.randn(*shape, generator=gen) * magnitude

    linear_kinds = ["loha", "lokr", "lokr_whole"]
    conv_kinds = ["locon_cp", "loha", "loha_tucker", "lokr_tucker", "lokr_whole"]
    out: list[LycorisFactors] = []
    n = 0
    for component, modules in lora_targets(tiny_pipeline(family), family, convs=True).items():
        for name, layer in modules:
            shape = tuple(layer.weight.shape)
            conv = len(shape) == 4
            kinds = conv_kinds if conv else linear_kinds
            kind = kinds[n % len(kinds)]
            n += 1
            o, i = shape[0], shape[1]
            k = shape[2:] if conv else ()
            if kind == "locon_cp":
                t = {"lora_down.weight": r(rank, i, 1, 1), "lora_mid.weight": r(rank, rank, *k),
                     "lora_up.weight": r(o, rank, 1, 1)}
            elif kind == "loha":  # a conv LoHa without Tucker cores stores w1b/w2b flattened to in * kh * kw
                flat = i * (k[0] * k[1] if conv else 1)
                t = {"hada_w1_a": r(o, rank), "hada_w1_b": r(rank, flat), "hada_w2_a": r(o, rank), "hada_w2_b": r(rank, flat)}
            elif kind == "loha_tucker":
                t = {"hada_w1_a": r(rank, o), "hada_w1_b": r(rank, i), "hada_t1": r(rank, rank, *k),
                     "hada_w2_a": r(rank, o), "hada_w2_b": r(rank, i), "hada_t2": r(rank, rank, *k)}
            elif kind == "lokr_whole":
                t = {"lokr_w1": r(2, 2), "lokr_w2": r(o // 2, i // 2, *k) * 0.2}
            elif kind == "lokr_tucker":
                t = {"lokr_w1": r(2, 2), "lokr_w2_a": r(rank, o // 2), "lokr_w2_b": r(rank, i // 2),
                     "lokr_t2": r(rank, rank, *k)}
            else:
                t = {"lokr_w1_a": r(2, 1), "lokr_w1_b": r(1, 2), "lokr_w2_a": r(o // 2, rank), "lokr_w2_b": r(rank, i // 2)}
            out.append(LycorisFactors(component, name, kind, {key: v.contiguous() for key, v in t.items()}, alpha, shape))
    return out


def write_lycoris_lora(path: Path, family: str, modules: list[LycorisFactors], naming: str = "kohya") -> Path:
    """LyCORIS' kohya naming (<kohya stem>.<leaf> plus <stem>.alpha), or SimpleTuner's
    (``lycoris_`` + the denoiser's diffusers path, underscored; denoiser modules only)."""
    import torch
    from safetensors.torch import save_file

    sd: dict[str, Any] = {}
    for m in modules:
        if naming == "simpletuner":
            stem = "lycoris_" + m.module.replace(".", "_")
        else:
            stem = kohya_name(family, m.component, m.module)
        sd.update({f"{stem}.{leaf}": value for leaf, value in m.tensors.items()})
        sd[f"{stem}.alpha"] = torch.tensor(m.alpha)
    save_file(sd, str(path), metadata={"ss_network_module": "lycoris.kohya", "ss_base_model_version": KOHYA_BASE[family],
                                       "ss_network_args": json.dumps({"algo": "lokr"})})
    return path


def apply_lora_factors(pipe: Any, factors: list[LoraFactors] | list[LycorisFactors], weight: float) -> None:
    """The reference result: add weight * delta straight onto the diffusers modules."""
    import torch

    with torch.no_grad():
        for f in factors:
            module = getattr(pipe, f.component).get_submodule(f.module)
            module.weight += weight * f.delta.to(module.weight.dtype)


def clone_pipeline(family: str) -> Any:
    """A fresh bare-diffusers load of the saved tiny model, safe to modify: the baseline sdhub is compared to.

    Loaded from disk rather than deep-copied, because a scheduler built in memory marks unset options
    as defaults (``_use_default_values``) and converts to another scheduler class differently than
    one read from ``scheduler_config.json``.
    """
    import diffusers

    folder = tiny_flux(family).diffusers_dir if family.startswith("flux") else tiny_model(family).diffusers_dir
    cls = type(tiny_pipeline(family))
    pipe = getattr(diffusers, cls.__name__).from_pretrained(str(folder), local_files_only=True)
    return _eval_all(pipe)


# -- Flux ---------------------------------------------------------------------------------------------------
# The text encoders have the real widths (CLIP-L 768, T5-XXL 4096) with one thin layer, so identification
# names them clip_l and t5 and the catalogue can offer them; the transformer is tiny (inner 32), so only
# --family flux places it.

FLUX_INNER = 32


def _flux_text_encoders() -> tuple[Any, Any]:
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=768, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        max_position_embeddings=77, projection_dim=768, bos_token_id=CLIP_BOS, eos_token_id=CLIP_EOS,
        pad_token_id=CLIP_EOS, hidden_act="quick_gelu",
    ))
    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=4096, d_kv=8, d_ff=32, num_layers=1, num_heads=4,
                                 relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                                 feed_forward_proj="gated-gelu", is_gated_act=True, dense_act_fn="gelu_new"))
    return clip, t5


def _flux_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=16, layers_per_block=1, norm_num_groups=2,
        sample_size=64, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611,
    )


def _build_flux(guidance: bool, seed: int) -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=guidance, axes_dims_rope=(4, 6, 6),
    )
    clip, t5 = _flux_text_encoders()
    if guidance:  # FLUX.1-dev's scheduler: resolution-dependent shift
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                    base_image_seq_len=256, max_image_seq_len=4096)
    else:  # schnell's
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    pipe = FluxPipeline(scheduler=scheduler, vae=_flux_vae(), text_encoder=clip, tokenizer=clip_tokenizer(),
                        text_encoder_2=t5, tokenizer_2=t5_tokenizer(), transformer=transformer)
    return _eval_all(pipe)


def build_flux() -> Any:
    return _build_flux(True, 11)


def build_flux_schnell() -> Any:
    return _build_flux(False, 12)


BUILDERS.update({"flux": build_flux, "flux_schnell": build_flux_schnell})

# diffusers FluxTransformer2DModel -> BFL (flux1-dev.safetensors) names, written independently of sdhub's loader.
FLUX_DOUBLE = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "attn.to_out.0": "img_attn.proj",
               "attn.to_add_out": "txt_attn.proj", "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
               "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
               "attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
               "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
FLUX_TOP = {"x_embedder": "img_in", "context_embedder": "txt_in", "proj_out": "final_layer.linear",
            "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
            "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
            "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
            "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
            "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
            "time_text_embed.text_embedder.linear_2": "vector_in.out_layer"}


def flux_transformer_to_bfl(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    fused: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        stem, _, leaf = key.rpartition(".")
        if leaf == "weight" and (stem.endswith(("norm_q", "norm_k", "norm_added_q", "norm_added_k"))):
            leaf = "scale"  # BFL's RMSNorm keeps its weight as .scale
        if stem in FLUX_TOP:
            out[f"{FLUX_TOP[stem]}.{leaf}"] = value
        elif stem == "norm_out.linear":
            out[f"final_layer.adaLN_modulation.1.{leaf}"] = _swap_halves(value)
        elif stem.startswith("transformer_blocks."):
            _, i, inner = stem.split(".", 2)
            if inner in ("attn.to_q", "attn.to_k", "attn.to_v"):
                fused.setdefault((f"double_blocks.{i}.img_attn.qkv", leaf), {})[inner[-1]] = value
            elif inner in ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"):
                fused.setdefault((f"double_blocks.{i}.txt_attn.qkv", leaf), {})[inner.split(".")[1][4]] = value
            else:
                out[f"double_blocks.{i}.{FLUX_DOUBLE[inner]}.{leaf}"] = value
        elif stem.startswith("single_transformer_blocks."):
            _, i, inner = stem.split(".", 2)
            if inner in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"):
                fused.setdefault((f"single_blocks.{i}.linear1", leaf), {})[inner[-1] if inner != "proj_mlp" else "m"] = value
            else:
                name = {"norm.linear": "modulation.lin", "proj_out": "linear2", "attn.norm_q": "norm.query_norm",
                        "attn.norm_k": "norm.key_norm"}[inner]
                out[f"single_blocks.{i}.{name}.{leaf}"] = value
        else:
            raise KeyError(key)
    for (name, leaf), parts in fused.items():
        order = ["q", "k", "v"] + (["m"] if "m" in parts else [])
        out[f"{name}.{leaf}"] = torch.cat([parts[k] for k in order], 0)
    return {prefix + k: v.detach().contiguous().clone() for k, v in out.items()}


@dataclass(frozen=True)
class TinyFlux:
    """A tiny Flux in the files users download: BFL transformer, clip_l, t5xxl, ae, plus a diffusers folder."""

    family: str
    diffusers_dir: Path
    transformer: Path
    clip_l: Path
    t5xxl: Path
    vae: Path
    config_dir: Path
    all_in_one: Path  # ComfyUI-style checkpoint: model.diffusion_model. + vae. + text_encoders.*


def tiny_flux(name: str = "flux") -> TinyFlux:
    return _tiny_flux(name)  # one cache entry however it is called


@functools.cache
def _tiny_flux(name: str) -> TinyFlux:
    from safetensors.torch import save_file

    pipe = tiny_pipeline(name)
    root = cache_root() / name
    diffusers_dir = root / "diffusers"
    pipe.save_pretrained(str(diffusers_dir), safe_serialization=True)
    config_dir = root / "config"
    shutil.copytree(diffusers_dir, config_dir, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    files = root / "files"
    files.mkdir()
    transformer = files / f"{name}1-tiny.safetensors"
    save_file(flux_transformer_to_bfl(pipe.transformer.state_dict()), str(transformer))
    clip = {k: v.contiguous() for k, v in clip_to_original(pipe.text_encoder.state_dict(), "").items()}
    save_file(clip, str(files / "clip_l.safetensors"))
    t5 = {k: v.contiguous().clone() for k, v in pipe.text_encoder_2.state_dict().items()}
    t5.setdefault("encoder.embed_tokens.weight", t5["shared.weight"].clone())
    save_file(t5, str(files / "t5xxl_tiny.safetensors"))
    vae = {k.removeprefix("first_stage_model."): v.contiguous()
           for k, v in vae_to_original(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)).items()}
    save_file(vae, str(files / "ae.safetensors"))
    whole = flux_transformer_to_bfl(pipe.transformer.state_dict(), "model.diffusion_model.")
    whole.update({"vae." + k: v for k, v in vae.items()})
    whole.update({"text_encoders.clip_l.transformer." + k: v for k, v in clip.items()})
    whole.update({"text_encoders.t5xxl.transformer." + k: v for k, v in t5.items()})
    all_in_one = files / f"{name}1-tiny-all-in-one.safetensors"
    save_file(whole, str(all_in_one))
    return TinyFlux(name, diffusers_dir, transformer, files / "clip_l.safetensors", files / "t5xxl_tiny.safetensors",
                    files / "ae.safetensors", config_dir, all_in_one)


# -- Flux LoRAs ------------------------------------------------------------------------------------------------
# One random low-rank update per group of diffusers modules that BFL fuses into one layer (q, k, v share a
# down matrix there), written in each trainer's naming; the reference applies them straight to the modules.

FLUX_DOUBLE_GROUPS = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "img_attn.proj": ("attn.to_out.0",),
    "txt_attn.proj": ("attn.to_add_out",),
    "img_mlp.0": ("ff.net.0.proj",),
    "img_mod.lin": ("norm1.linear",),
}
FLUX_SINGLE_GROUPS = {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), "linear2": ("proj_out",),
                      "modulation.lin": ("norm.linear",)}


@dataclass
class FluxLoraGroup:
    bfl: str  # the BFL module ("double_blocks.0.img_attn.qkv")
    targets: list[str]  # the diffusers modules, in BFL row order
    down: Any
    ups: list[Any]  # one per target, diffusers row order
    alpha: float
    swapped: bool = False

    def factors(self) -> list[LoraFactors]:
        return [LoraFactors("transformer", t, self.down, up, self.alpha) for t, up in zip(self.targets, self.ups)]

    def fused_up(self) -> Any:
        import torch

        up = torch.cat(self.ups, 0)
        if self.swapped:
            a, b = up.chunk(2, 0)
            up = torch.cat([b, a], 0)
        return up.contiguous()


def flux_lora_groups(name: str = "flux", rank: int = 4, alpha: float = 2.0, seed: int = 21, magnitude: float = 0.5,
                     double_attention_only: bool = False, final_layer: bool = False) -> list[FluxLoraGroup]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    transformer = tiny_pipeline(name).transformer
    groups: list[FluxLoraGroup] = []
    plan: list[tuple[str, list[str]]] = []
    for i in range(len(transformer.transformer_blocks)):
        for bfl, targets in FLUX_DOUBLE_GROUPS.items():
            if double_attention_only and "attn" not in bfl:
                continue
            plan.append((f"double_blocks.{i}.{bfl}", [f"transformer_blocks.{i}.{t}" for t in targets]))
    if not double_attention_only:
        for i in range(len(transformer.single_transformer_blocks)):
            for bfl, targets in FLUX_SINGLE_GROUPS.items():
                plan.append((f"single_blocks.{i}.{bfl}", [f"single_transformer_blocks.{i}.{t}" for t in targets]))
    if final_layer:
        plan.append(("final_layer.adaLN_modulation.1", ["norm_out.linear"]))
    for bfl, targets in plan:
        layers = [transformer.get_submodule(t) for t in targets]
        down = torch.randn(rank, layers[0].in_features, generator=gen) * magnitude
        ups = [torch.randn(layer.out_features, rank, generator=gen) * magnitude for layer in layers]
        groups.append(FluxLoraGroup(bfl, targets, down, ups, alpha, swapped=bfl.startswith("final_layer")))
    return groups


def flux_te_factors(name: str = "flux", rank: int = 4, alpha: float = 4.0, seed: int = 22) -> list[LoraFactors]:
    """CLIP-L's first q projection and T5's first self-attention q: the text-encoder parts of a Flux LoRA."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    pipe = tiny_pipeline(name)
    out = []
    for component, module in (("text_encoder", _clip_module(pipe.text_encoder, "encoder.layers.0.self_attn.q_proj")),
                              ("text_encoder_2", "encoder.block.0.layer.0.SelfAttention.q")):
        layer = getattr(pipe, component).get_submodule(module)
        out.append(LoraFactors(component, module, torch.randn(rank, layer.in_features, generator=gen) * 0.5,
                               torch.randn(layer.out_features, rank, generator=gen) * 0.5, alpha))
    return out


def _clip_module(model: Any, name: str) -> str:
    names = dict(model.named_modules())
    return name if name in names else "text_model." + name


def write_flux_lora(path: Path, fmt: str, groups: list[FluxLoraGroup], te: list[LoraFactors] = ()) -> Path:
    """``fmt``: kohya (sd-scripts: lora_unet_<BFL>, lora_te1 / lora_te3), peft (diffusers, with adapter metadata),
    aitoolkit (transformer.<diffusers>.lora_A/B, no alpha), xlabs (processor LoRAs, no alpha), onetrainer
    (lora_transformer_<diffusers>, lora_te1 / lora_te2) or bfl (ComfyUI's diffusion_model.<BFL>.lora_A/B)."""
    import torch
    from safetensors.torch import save_file

    sd: dict[str, Any] = {}
    meta: dict[str, str] = {}
    te_names = {"kohya": ("lora_te1", "lora_te3"), "onetrainer": ("lora_te1", "lora_te2")}
    for g in groups:
        if fmt in ("kohya", "bfl", "xlabs"):
            if fmt == "kohya":
                stem = "lora_unet_" + g.bfl.replace(".", "_")
                sd[f"{stem}.lora_down.weight"], sd[f"{stem}.lora_up.weight"] = g.down.contiguous(), g.fused_up()
                sd[f"{stem}.alpha"] = torch.tensor(g.alpha)
            elif fmt == "bfl":
                stem = "diffusion_model." + g.bfl
                sd[f"{stem}.lora_A.weight"], sd[f"{stem}.lora_B.weight"] = g.down.contiguous(), g.fused_up()
                sd[f"{stem}.alpha"] = torch.tensor(g.alpha)
            else:
                block, _, inner = g.bfl.rpartition(".")[0].rpartition(".")[0], None, g.bfl.split(".", 2)[2]
                proc = {"img_attn.qkv": "qkv_lora1", "txt_attn.qkv": "qkv_lora2", "img_attn.proj": "proj_lora1",
                        "txt_attn.proj": "proj_lora2"}[inner]
                block = ".".join(g.bfl.split(".")[:2])
                sd[f"{block}.processor.{proc}.down.weight"] = g.down.contiguous()
                sd[f"{block}.processor.{proc}.up.weight"] = g.fused_up()
        else:
            for f in g.factors():
                if fmt == "onetrainer":
                    stem = "lora_transformer_" + f.module.replace(".", "_")
                    sd[f"{stem}.lora_down.weight"], sd[f"{stem}.lora_up.weight"] = f.down.clone(), f.up.contiguous()
                    sd[f"{stem}.alpha"] = torch.tensor(f.alpha)
                else:
                    sd[f"transformer.{f.module}.lora_A.weight"] = f.down.clone()
                    sd[f"transformer.{f.module}.lora_B.weight"] = f.up.contiguous()
    for f, kohya_te in zip(te, te_names.get(fmt, ("", ""))):
        if fmt in te_names:
            stem = f"{kohya_te}_" + f.module.replace(".", "_")
            sd[f"{stem}.lora_down.weight"], sd[f"{stem}.lora_up.weight"] = f.down.contiguous(), f.up.contiguous()
            sd[f"{stem}.alpha"] = torch.tensor(f.alpha)
    if fmt == "peft":
        for f in te:
            sd[f"{f.component}.{f.module}.lora_A.weight"] = f.down.contiguous()
            sd[f"{f.component}.{f.module}.lora_B.weight"] = f.up.contiguous()
        rank = groups[0].down.shape[0]
        adapter = {"transformer.r": rank, "transformer.lora_alpha": groups[0].alpha}
        for f in te:
            adapter.update({f"{f.component}.r": rank, f"{f.component}.lora_alpha": f.alpha})
        meta["lora_adapter_metadata"] = json.dumps(adapter)
    if fmt == "kohya":
        meta.update({"ss_network_module": "networks.lora_flux", "ss_base_model_version": "flux1"})
    save_file(sd, str(path), metadata=meta or None)
    return path

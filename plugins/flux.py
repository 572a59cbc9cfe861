"""Flux.1 dev and schnell through diffusers' FluxPipeline, from the files users download.

A Flux model usually comes in four files: the transformer (``flux1-dev.safetensors``, Black Forest
Labs' layout ``double_blocks.*`` / ``single_blocks.*``, sometimes under ComfyUI's
``model.diffusion_model.`` prefix), CLIP-L, T5-XXL and the 16-channel VAE (``ae.safetensors``). The
runtime hands over the parts it found (``--text-encoders``, ``--vae``, else the catalogue) in
``RunOptions.parts``; a part still missing is read from the model file itself (ComfyUI's all-in-one
checkpoints carry ``vae.`` and ``text_encoders.*``) or from the config folder's weights, and when
none has it the error names the part and how to get it, before anything heavy loads.

The transformer is converted here rather than by diffusers' single-file loader, which hard-codes the
full model's width when it splits the fused projections: the split sizes are read from the model
built from its config, so any width loads, and the same name table places Flux LoRAs in BFL naming.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
import re
from pathlib import Path
from typing import Any

from hub.errors import PipelineError, SdhubError
from hub.running.pipelines import Defaults, GenerateRequest, LoraToApply, ModelToRun, Pipeline, RunOptions, Runner
from hub_plugins.pipelines import (
    DiffusersRunner,
    _apply_memory_options,
    _brief,
    _compile,
    _diffusers,
    _dtype_kwarg,
    _quiet_loading,
    _ready_with_loras,
    _torch_dtype,
    ensure_configs,
)

# -- BFL <-> diffusers names --------------------------------------------------------------------------------

#: BFL module (inside a double block) -> the diffusers modules its rows are split into, in order.
DOUBLE_BLOCK = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "img_attn.proj": ("attn.to_out.0",),
    "txt_attn.proj": ("attn.to_add_out",),
    "img_mlp.0": ("ff.net.0.proj",),
    "img_mlp.2": ("ff.net.2",),
    "txt_mlp.0": ("ff_context.net.0.proj",),
    "txt_mlp.2": ("ff_context.net.2",),
    "img_mod.lin": ("norm1.linear",),
    "txt_mod.lin": ("norm1_context.linear",),
    "img_attn.norm.query_norm": ("attn.norm_q",),
    "img_attn.norm.key_norm": ("attn.norm_k",),
    "txt_attn.norm.query_norm": ("attn.norm_added_q",),
    "txt_attn.norm.key_norm": ("attn.norm_added_k",),
}
SINGLE_BLOCK = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation.lin": ("norm.linear",),
    "norm.query_norm": ("attn.norm_q",),
    "norm.key_norm": ("attn.norm_k",),
}
TOP = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "final_layer.linear": "proj_out",
    "final_layer.adaLN_modulation.1": "norm_out.linear",  # shift/scale halves swapped
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
}
SWAPPED = {"final_layer.adaLN_modulation.1"}
_BLOCK = re.compile(r"^(double_blocks|single_blocks)[._](\d+)[._](.+)$")


def bfl_targets(module: str) -> tuple[tuple[str, ...], bool] | None:
    """The diffusers modules a BFL module's rows go to, and whether its two halves are swapped; None when
    ``module`` (dotted, or kohya's underscored spelling) is no BFL Flux name."""
    module = module.removeprefix("model.diffusion_model.").removeprefix("diffusion_model.")
    found = _BLOCK.match(module)
    if found:
        kind, index, inner = found.groups()
        table, prefix = (DOUBLE_BLOCK, "transformer_blocks") if kind == "double_blocks" else (SINGLE_BLOCK, "single_transformer_blocks")
        name = _dotted(inner, table)
        if name is None:
            return None
        return tuple(f"{prefix}.{index}.{t}" for t in table[name]), False
    name = _dotted(module, TOP)
    if name is None:
        return None
    return (TOP[name],), name in SWAPPED


def _dotted(name: str, table: dict[str, Any]) -> str | None:
    if name in table:
        return name
    for dotted in table:  # kohya writes dots as underscores
        if dotted.replace(".", "_") == name:
            return dotted
    return None


def _swap_halves(tensor: Any) -> Any:
    import torch

    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


# -- reading parts ------------------------------------------------------------------------------------------

#: Prefixes a part has inside an all-in-one checkpoint (ComfyUI's layout), by role; "" is a file of its own.
INSIDE_PREFIXES = {
    "transformer": ("model.diffusion_model.", ""),
    "clip_l": ("text_encoders.clip_l.transformer.", ""),
    "t5": ("text_encoders.t5xxl.transformer.", ""),
    "vae": ("vae.", "first_stage_model.", ""),
}
#: How to get each part when it is missing (the files Flux users download).
HOW_TO_GET = {
    "clip_l": "sdhub install hf:comfyanonymous/flux_text_encoders/clip_l.safetensors",
    "t5": "sdhub install hf:comfyanonymous/flux_text_encoders/t5xxl_fp16.safetensors",
    "vae": "sdhub install hf:black-forest-labs/FLUX.1-schnell/ae.safetensors",
}
COMPONENT = {"clip_l": "text_encoder", "t5": "text_encoder_2", "vae": "vae"}
ROLE_TITLE = {"clip_l": "a CLIP-L text encoder", "t5": "a T5-XXL text encoder", "vae": "the Flux VAE (ae.safetensors)"}


def _keys(path: Path) -> list[str]:
    from hub.files.safetensors_header import read_header

    if path.suffix.lower() != ".safetensors":
        raise PipelineError(f"{path}: Flux parts are read from .safetensors files")
    return list(read_header(path).tensors)


def _prefix_in(keys: list[str], role: str) -> str | None:
    """The prefix under which ``role`` sits in a file with these keys, or None."""
    markers = {
        "transformer": ("double_blocks.0.img_attn.qkv.weight", "transformer_blocks.0.attn.to_q.weight"),
        "clip_l": ("text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight"),
        "t5": ("encoder.block.0.layer.0.SelfAttention.q.weight",),
        "vae": ("decoder.conv_in.weight",),
    }[role]
    present = set(keys)
    for prefix in INSIDE_PREFIXES[role]:
        if any(prefix + m in present for m in markers):
            return prefix
    return None


def _read(path: Path, prefix: str, torch_dtype: Any = None) -> dict[str, Any]:
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            if key.startswith(prefix):
                tensor = f.get_tensor(key)
                out[key[len(prefix):]] = tensor if torch_dtype is None or not tensor.is_floating_point() else tensor.to(torch_dtype)
    return out


def load_transformer(path: Path, prefix: str, config_folder: Path, torch_dtype: Any) -> Any:
    """A FluxTransformer2DModel from a BFL- or diffusers-layout file; block counts, input width and the
    guidance embedder come from the file, so a dev config also loads schnell and the reverse."""
    import torch
    from diffusers import FluxTransformer2DModel

    state = _read(path, prefix)
    bfl = any(k.startswith("double_blocks.") for k in state)
    config = dict(FluxTransformer2DModel.load_config(str(config_folder)))
    blocks = {"double_blocks." if bfl else "transformer_blocks.": "num_layers",
              "single_blocks." if bfl else "single_transformer_blocks.": "num_single_layers"}
    for marker, field_name in blocks.items():
        config[field_name] = len({k[len(marker):].split(".", 1)[0] for k in state if k.startswith(marker)})
    config["guidance_embeds"] = any(k.startswith("guidance_in." if bfl else "time_text_embed.guidance_embedder.") for k in state)
    img_in = state.get("img_in.weight" if bfl else "x_embedder.weight")
    if img_in is not None:
        config["in_channels"] = int(img_in.shape[1])
    with torch.device("meta"):
        model = FluxTransformer2DModel.from_config(config)
    converted = _to_diffusers(state, model) if bfl else state
    converted = {k: v.to(torch_dtype) if v.is_floating_point() else v for k, v in converted.items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(converted)), sorted(set(converted) - expected)
    if missing or unexpected:
        shown = ", ".join((missing or unexpected)[:3])
        raise PipelineError(f"{path}: not a Flux transformer this config describes ({len(missing)} tensors missing, "
                            f"{len(unexpected)} unexpected: {shown})")
    wanted = model.state_dict()
    for key, value in converted.items():
        want = wanted[key]
        if tuple(want.shape) != tuple(value.shape):
            raise PipelineError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects {tuple(want.shape)}")
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _to_diffusers(state: dict[str, Any], model: Any) -> dict[str, Any]:
    modules = dict(model.named_modules())
    out: dict[str, Any] = {}
    for key, tensor in state.items():
        stem, _, leaf = key.rpartition(".")
        mapped = bfl_targets(stem)
        if mapped is None:
            out[key] = tensor  # reported as unexpected by the caller
            continue
        targets, swapped = mapped
        leaf = "weight" if leaf == "scale" else leaf
        if swapped:
            tensor = _swap_halves(tensor)
        if len(targets) == 1:
            out[f"{targets[0]}.{leaf}"] = tensor
            continue
        sizes = [int(getattr(modules[t], "weight").shape[0]) if t in modules else -1 for t in targets]
        if -1 in sizes or sum(sizes) != tensor.shape[0]:
            out[key] = tensor
            continue
        for target, piece in zip(targets, tensor.split(sizes, dim=0)):
            out[f"{target}.{leaf}"] = piece
    return out


def load_text_encoder(role: str, path: Path, prefix: str, config_folder: Path, torch_dtype: Any) -> Any:
    """CLIP-L or T5 from its own file (HF layout, as ComfyUI's downloads are) or from inside a checkpoint."""
    import transformers

    cls = transformers.CLIPTextModel if role == "clip_l" else transformers.T5EncoderModel
    config = cls.config_class.from_pretrained(str(config_folder))
    state = _read(path, prefix)
    if role == "t5" and "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    if role == "clip_l":
        state.pop("text_projection.weight", None)  # some files keep CLIP's projection; the encoder does not use it
    model, info = cls.from_pretrained(None, config=config, state_dict=state, dtype=torch_dtype, output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(("position_ids", "embed_tokens.weight"))]
    if missing:
        raise PipelineError(f"{path}: not {ROLE_TITLE[role]} (missing {', '.join(sorted(missing)[:3])}"
                            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "") + ")")
    return model.eval().requires_grad_(False)


def load_vae(path: Path, config_folder: Path, torch_dtype: Any) -> Any:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_single_file(str(path), config=str(config_folder.parent), subfolder=config_folder.name,
                                         local_files_only=True, **_dtype_kwarg(torch_dtype))
    if vae.config.latent_channels != 16:
        raise PipelineError(f"{path}: a {vae.config.latent_channels}-channel VAE; Flux needs its 16-channel one")
    return vae.eval().requires_grad_(False)


def _folder_has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def plan_parts(model: ModelToRun, options: RunOptions, config: Path) -> dict[str, tuple[str, Path, str]]:
    """Where each part comes from: role -> (how, path, prefix), with how in given/inside/config.

    Raised before loading anything: the error names each missing part and how to get it.
    """
    keys = _keys(model.path)
    plan: dict[str, tuple[str, Path, str]] = {}
    missing = []
    for role in ("clip_l", "t5", "vae"):
        if role in options.parts:
            path = Path(options.parts[role])
            prefix = _prefix_in(_keys(path), role)
            if prefix is None:
                raise PipelineError(f"{path} is not {ROLE_TITLE[role]}")
            plan[role] = ("given", path, prefix)
            continue
        inside = _prefix_in(keys, role)
        if inside:  # an all-in-one checkpoint
            plan[role] = ("inside", model.path, inside)
        elif _folder_has_weights(config / COMPONENT[role]):
            plan[role] = ("config", config / COMPONENT[role], "")
        else:
            missing.append(role)
    if missing:
        titles = [ROLE_TITLE[r] for r in missing]
        what = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
        how = "; ".join(HOW_TO_GET[r] for r in missing)
        raise PipelineError(
            f"{model.path.name} is a Flux transformer without {what}, and neither --text-encoders/--vae nor the "
            f"catalogue has {'them' if len(missing) > 1 else 'it'}. Get {'them' if len(missing) > 1 else 'it'} "
            f"({how}) or scan a folder that has {'them' if len(missing) > 1 else 'it'}, or pass "
            f"--text-encoders clip_l.safetensors,t5xxl_fp16.safetensors --vae ae.safetensors"
        )
    return plan


def flux_variant(model: ModelToRun) -> str | None:
    """dev / schnell from identification, else from the file (the guidance embedder is dev's)."""
    variant = (model.variant or "").lower() or None
    if variant or model.is_diffusers_folder:
        if variant is None and model.is_diffusers_folder:
            try:
                config = json.loads((model.path / "transformer" / "config.json").read_text(encoding="utf-8"))
                return "dev" if config.get("guidance_embeds") else "schnell"
            except (OSError, ValueError):
                return None
        return variant
    try:
        keys = _keys(model.path)
    except (PipelineError, SdhubError, OSError):
        return None
    return "dev" if any(k.endswith(("guidance_in.in_layer.weight", "guidance_embedder.linear_1.weight")) for k in keys) else "schnell"


# -- the pipeline ---------------------------------------------------------------------------------------------

FLUX_DEV = Defaults(1024, 1024, 28, 1.0, "euler", guidance=3.5)
FLUX_SCHNELL = Defaults(1024, 1024, 4, 1.0, "euler", guidance=None)
NOT_RUN = {"fill": "Flux Fill", "control": "Flux Depth/Canny"}


def load_flux(model: ModelToRun, loras: list[LoraToApply], device: str, dtype: str, options: RunOptions) -> Runner:
    variant = flux_variant(model)
    if variant in NOT_RUN:
        raise PipelineError(f"{model.path} is a {NOT_RUN[variant]} model, which needs a control image; sdhub runs "
                            f"Flux dev and schnell")
    if options.refiner is not None:
        raise PipelineError("a refiner hand-off is only supported for SDXL base models")
    diffusers = _diffusers()
    torch_dtype = _torch_dtype(dtype)
    with _quiet_loading():
        if model.is_diffusers_folder:
            overrides = _given_parts(model.path, options, torch_dtype)
            try:
                pipe = diffusers.FluxPipeline.from_pretrained(str(model.path), **_dtype_kwarg(torch_dtype),
                                                              local_files_only=True, **overrides)
            except SdhubError:
                raise
            except Exception as exc:
                raise PipelineError(f"{model.path}: cannot load as a Flux diffusers folder: {_brief(exc)}") from exc
        else:
            config = ensure_configs("flux", variant, options)
            pipe = _from_files(model, options, config, torch_dtype)
    merged = _ready_with_loras(pipe, device, options, loras)
    _apply_memory_options(pipe, device, options)
    if options.compile:
        _compile(pipe, "transformer")
    defaults = FLUX_DEV if pipe.transformer.config.guidance_embeds else FLUX_SCHNELL
    return FluxRunner(pipe, "flux", defaults, loras=merged)


def _given_parts(folder: Path, options: RunOptions, torch_dtype: Any) -> dict[str, Any]:
    """--text-encoders/--vae over a diffusers folder's own components (configs from the folder's)."""
    out: dict[str, Any] = {}
    for role, path in options.parts.items():
        path = Path(path)
        if role == "vae":
            out["vae"] = load_vae(path, folder / "vae", torch_dtype)
            continue
        prefix = _prefix_in(_keys(path), role)
        if prefix is None:
            raise PipelineError(f"{path} is not {ROLE_TITLE[role]}")
        out[COMPONENT[role]] = load_text_encoder(role, path, prefix, folder / COMPONENT[role], torch_dtype)
    return out


def _from_files(model: ModelToRun, options: RunOptions, config: Path, torch_dtype: Any) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTokenizer, T5TokenizerFast

    plan = plan_parts(model, options, config)
    prefix = _prefix_in(_keys(model.path), "transformer")
    if prefix is None:
        raise PipelineError(f"{model.path}: no Flux transformer in this file (no double_blocks.* or transformer_blocks.* keys)")
    try:
        transformer = load_transformer(model.path, prefix, config / "transformer", torch_dtype)
        parts: dict[str, Any] = {}
        for role, (how, path, part_prefix) in plan.items():
            if how == "config":
                parts[role] = _from_config_folder(role, path, torch_dtype)
            elif role == "vae":
                parts[role] = load_vae(path, config / "vae", torch_dtype)
            else:
                parts[role] = load_text_encoder(role, path, part_prefix, config / COMPONENT[role], torch_dtype)
        return FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(str(config / "scheduler")),
            vae=parts["vae"], text_encoder=parts["clip_l"], tokenizer=CLIPTokenizer.from_pretrained(str(config / "tokenizer")),
            text_encoder_2=parts["t5"], tokenizer_2=T5TokenizerFast.from_pretrained(str(config / "tokenizer_2")),
            transformer=transformer,
        )
    except SdhubError:
        raise
    except Exception as exc:  # diffusers/transformers/safetensors raise many types
        raise PipelineError(f"{model.path}: cannot load as Flux: {_brief(exc)}") from exc


def _from_config_folder(role: str, folder: Path, torch_dtype: Any) -> Any:
    import transformers
    from diffusers import AutoencoderKL

    if role == "vae":
        return AutoencoderKL.from_pretrained(str(folder), torch_dtype=torch_dtype, local_files_only=True)
    cls = transformers.CLIPTextModel if role == "clip_l" else transformers.T5EncoderModel
    return cls.from_pretrained(str(folder), dtype=torch_dtype, local_files_only=True)


class FluxRunner(DiffusersRunner):
    """Flux's call: ``guidance`` is the distilled guidance (dev), ``cfg`` above 1 turns on true CFG with the
    negative prompt; T5 reads 512 tokens on dev and 256 on schnell, as Black Forest Labs ship them."""

    img2img_takes_size = True

    def _call_args(self, request: GenerateRequest) -> dict[str, Any]:
        guidance_embeds = bool(self.pipe.transformer.config.guidance_embeds)
        args: dict[str, Any] = {
            "prompt": request.prompt,
            "num_inference_steps": request.steps,
            "num_images_per_prompt": request.num_images,
            "true_cfg_scale": request.cfg,
            "max_sequence_length": 512 if guidance_embeds else 256,
        }
        if request.cfg > 1 and request.negative_prompt:
            args["negative_prompt"] = request.negative_prompt
        if guidance_embeds:
            args["guidance_scale"] = FLUX_DEV.guidance if request.guidance is None else request.guidance
        return args


@dataclass
class FluxDiffusersPipeline(Pipeline):
    """Flux.1 dev / schnell: a transformer file plus its parts, an all-in-one checkpoint, or a diffusers folder."""

    def defaults_for(self, family: str, variant: str | None = None) -> Defaults:
        return FLUX_SCHNELL if (variant or "").lower() == "schnell" else FLUX_DEV

    def load(self, model: ModelToRun, loras: list[LoraToApply], device: str, dtype: str, options: RunOptions) -> Runner:
        return load_flux(model, loras, device, dtype, options)


FLUX = FluxDiffusersPipeline(
    name="flux",
    families=("flux",),
    kinds=("checkpoint", "diffusion_model"),
    aliases=("flux1",),
    description="Flux.1 dev / schnell: transformer + CLIP-L + T5-XXL + VAE files, or a diffusers folder (FluxPipeline)",
    defaults=FLUX_DEV,
    parts=("clip_l", "t5", "vae"),
)


__all__ = ["FLUX", "FLUX_DEV", "FLUX_SCHNELL", "FluxRunner", "bfl_targets", "flux_variant", "load_flux", "plan_parts"]

"""sdhub's run vs the bare diffusers pipeline, in the same process, on full-size random-weight models.

Speed depends on shapes, not on trained values, so the models are the published SD1.5 / SDXL /
SD3-medium / FLUX.1-dev architectures (configs written below from the released config files) with
random weights: nothing is downloaded. Each model is saved once as a diffusers folder, then loaded and run
by (a) diffusers alone and (b) ``hub.pipeline(...).generate(...)`` with the same scheduler, size,
steps and seed. Printed: denoising it/s and time to first image (load + first image) for both, and
sdhub / diffusers as ratios (target: within 3 %).

    python bench/gpu_generate.py                      # all families, GPU, native sizes, 30 steps
    python bench/gpu_generate.py --family sdxl --steps 20 --repeats 5
    python bench/gpu_generate.py --tiny --steps 2     # CPU smoke test with tiny models (seconds)

For Flux the first image is also timed from the files users download (``--flux-files``): the BFL-layout
transformer plus clip_l / t5xxl / ae files through ``hub.pipeline(transformer, text_encoders=..., vae=...)``,
against diffusers' ``FluxTransformer2DModel.from_single_file`` with the other parts from the folder
(diffusers' single-file converter assumes the full 3072 width, so this row needs the full-size model).

Results also go to bench/out/gpu_generate.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FULL = {
    "sd1": {
        "pipeline": "StableDiffusionPipeline", "size": 512, "denoiser": "unet", "scheduler": "EulerDiscreteScheduler",
        "unet": dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                     layers_per_block=2, cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
                     down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                     up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
        "clip_l": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       projection_dim=768, hidden_act="quick_gelu"),
    },
    "sdxl": {
        "pipeline": "StableDiffusionXLPipeline", "size": 1024, "denoiser": "unet", "scheduler": "EulerDiscreteScheduler",
        "unet": dict(sample_size=128, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280),
                     layers_per_block=2, cross_attention_dim=2048, attention_head_dim=(5, 10, 20),
                     transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
                     addition_embed_type="text_time", addition_time_embed_dim=256,
                     projection_class_embeddings_input_dim=2816,
                     down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                     up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=1024,
                    scaling_factor=0.13025, force_upcast=True,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
        "clip_l": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       projection_dim=768, hidden_act="quick_gelu"),
        "clip_g": dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                       projection_dim=1280, hidden_act="gelu"),
    },
    "sd3": {
        "pipeline": "StableDiffusion3Pipeline", "size": 1024, "denoiser": "transformer",
        "scheduler": "FlowMatchEulerDiscreteScheduler",
        "transformer": dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                            attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                            caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=192),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16, sample_size=1024,
                    use_quant_conv=False, use_post_quant_conv=False, scaling_factor=1.5305, shift_factor=0.0609,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
        "clip_l": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       projection_dim=768, hidden_act="quick_gelu"),
        "clip_g": dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                       projection_dim=1280, hidden_act="gelu"),
        "t5": dict(vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
                   relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", dense_act_fn="gelu_new",
                   is_gated_act=True),
    },
    "flux": {
        "pipeline": "FluxPipeline", "size": 1024, "denoiser": "transformer", "scheduler": "FlowMatchEulerDiscreteScheduler",
        "transformer": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                            guidance_embeds=True, axes_dims_rope=(16, 56, 56)),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16, sample_size=1024,
                    use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
        "clip_l": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       projection_dim=768, hidden_act="quick_gelu"),
        "t5": dict(vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
                   relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", dense_act_fn="gelu_new",
                   is_gated_act=True),
    },
}

TINY = {
    "sd1": {**FULL["sd1"], "size": 64,
            "unet": dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                         cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
            "vae": dict(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=2, sample_size=64,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
            "clip_l": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)},
    "sdxl": {**FULL["sdxl"], "size": 64,
             "unet": dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                          cross_attention_dim=96, attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2),
                          use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                          projection_class_embeddings_input_dim=64 + 6 * 8, norm_num_groups=4,
                          down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D")),
             "vae": dict(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=2, sample_size=64,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
             "clip_l": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
             "clip_g": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, projection_dim=64,
                            hidden_act="gelu")},
    "sd3": {**FULL["sd3"], "size": 64,
            "transformer": dict(sample_size=32, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
                                num_attention_heads=4, joint_attention_dim=96, caption_projection_dim=32,
                                pooled_projection_dim=96, pos_embed_max_size=32),
            "vae": dict(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=2, sample_size=64,
                        use_quant_conv=False, use_post_quant_conv=False, scaling_factor=1.5305, shift_factor=0.0609,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
            "clip_l": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
            "clip_g": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, projection_dim=64,
                           hidden_act="gelu"),
            "t5": dict(vocab_size=64, d_model=96, d_ff=64, d_kv=8, num_heads=4, num_layers=2, relative_attention_num_buckets=8)},
    "flux": {**FULL["flux"], "size": 64,
             "transformer": dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=16,
                                 num_attention_heads=2, joint_attention_dim=96, pooled_projection_dim=32,
                                 guidance_embeds=True, axes_dims_rope=(4, 6, 6)),
             "vae": dict(block_out_channels=(8, 16), layers_per_block=1, latent_channels=16, norm_num_groups=2, sample_size=64,
                         use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
             "clip_l": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
             "t5": dict(vocab_size=64, d_model=96, d_ff=64, d_kv=8, num_heads=4, num_layers=2, relative_attention_num_buckets=8)},
}
#: What each pipeline is called with on both sides (sdhub's defaults for the family, given to diffusers too).
CALL_EXTRA = {"flux": {"guidance_scale": 3.5, "max_sequence_length": 512}}

SAMPLER_FOR = {"EulerDiscreteScheduler": "euler", "FlowMatchEulerDiscreteScheduler": "euler"}
PROMPT = "a photograph of an astronaut riding a horse, detailed, 8k"


# -- building random-weight pipelines offline ----------------------------------------------------------------


def _clip_tokenizer(folder: Path) -> Any:
    """A byte-level BPE tokenizer written here (CLIP's file format): no download, any text tokenizes."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    symbols = [chr(c) for c in chars]
    vocab = {tok: i for i, tok in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = 512, 513
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77, pad_token="<|endoftext|>")


def _t5_tokenizer() -> Any:
    from transformers import T5TokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in letters] + [("\u2581" + c, -3.5) for c in letters]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=256)


def _clip(cfg: dict[str, Any], with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408 if cfg["hidden_size"] >= 512 else 1000, max_position_embeddings=77,
                            bos_token_id=512, eos_token_id=513, pad_token_id=513, **cfg)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def build_pipeline(family: str, spec: dict[str, Any], device: str, work: Path) -> Any:
    """Random weights, created directly on ``device`` (fast on a GPU), eval mode."""
    import diffusers
    import torch

    torch.manual_seed(0)
    tok = _clip_tokenizer(work / "tokenizer")
    with torch.device(device):
        vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, **spec["vae"])
        parts: dict[str, Any] = {"vae": vae}
        if family == "sd1":
            parts.update(unet=diffusers.UNet2DConditionModel(**spec["unet"]), text_encoder=_clip(spec["clip_l"], False),
                         tokenizer=tok, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
            scheduler = diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
        elif family == "sdxl":
            parts.update(unet=diffusers.UNet2DConditionModel(**spec["unet"]), text_encoder=_clip(spec["clip_l"], False),
                         tokenizer=tok, text_encoder_2=_clip(spec["clip_g"], True), tokenizer_2=tok)
            scheduler = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                         steps_offset=1, timestep_spacing="leading")
        elif family == "flux":
            from transformers import T5Config, T5EncoderModel

            parts.update(transformer=diffusers.FluxTransformer2DModel(**spec["transformer"]),
                         text_encoder=_clip(spec["clip_l"], False), tokenizer=tok,
                         text_encoder_2=T5EncoderModel(T5Config(pad_token_id=0, eos_token_id=1, **spec["t5"])),
                         tokenizer_2=_t5_tokenizer())
            scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                                  max_shift=1.15, base_image_seq_len=256,
                                                                  max_image_seq_len=4096)
        else:
            from transformers import T5Config, T5EncoderModel

            parts.update(transformer=diffusers.SD3Transformer2DModel(**spec["transformer"]),
                         text_encoder=_clip(spec["clip_l"], True), tokenizer=tok,
                         text_encoder_2=_clip(spec["clip_g"], True), tokenizer_2=tok,
                         text_encoder_3=T5EncoderModel(T5Config(pad_token_id=0, eos_token_id=1, **spec["t5"])),
                         tokenizer_3=_t5_tokenizer())
            scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = getattr(diffusers, spec["pipeline"])(scheduler=scheduler, **parts)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe


# -- timing ---------------------------------------------------------------------------------------------------


@dataclass
class RunTiming:
    first_image_s: float  # load + first image
    step_its: list[float]  # denoising steps per second, one per timed repeat


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StepClock:
    """Times the denoising loop only: from the first step's end to the last step's end."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.marks: list[float] = []

    def tick(self) -> None:
        _sync(self.device)
        self.marks.append(time.perf_counter())

    def its(self) -> float:
        return (len(self.marks) - 1) / (self.marks[-1] - self.marks[0])


def run_bare(folder: Path, spec: dict[str, Any], device: str, dtype: Any, steps: int, repeats: int,
             family: str = "", transformer_file: Path | None = None) -> RunTiming:
    import diffusers
    import torch

    t0 = time.perf_counter()
    extra: dict[str, Any] = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False} if spec["pipeline"] == "StableDiffusionPipeline" else {}
    if transformer_file is not None:  # diffusers' own single-file path for the transformer
        extra["transformer"] = diffusers.FluxTransformer2DModel.from_single_file(
            str(transformer_file), config=str(folder), subfolder="transformer", dtype=dtype, local_files_only=True)
    pipe = getattr(diffusers, spec["pipeline"]).from_pretrained(str(folder), dtype=dtype, local_files_only=True, **extra).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = getattr(diffusers, spec["scheduler"]).from_config(pipe.scheduler.config)

    def once(clock: StepClock | None) -> None:
        def cb(_p: Any, _i: int, _t: Any, kw: dict[str, Any]) -> dict[str, Any]:
            if clock is not None:
                clock.tick()
            return kw

        pipe(PROMPT, num_inference_steps=steps, width=spec["size"], height=spec["size"],
             generator=torch.Generator("cpu").manual_seed(1), callback_on_step_end=cb, **CALL_EXTRA.get(family, {}))
        _sync(device)

    once(None)
    first = time.perf_counter() - t0
    rates = []
    for _ in range(repeats):
        clock = StepClock(device)
        once(clock)
        rates.append(clock.its())
    pipe = None  # free it before the other side loads
    return RunTiming(first, rates)


def run_sdhub(folder: Path, family: str, spec: dict[str, Any], device: str, dtype_name: str, steps: int, repeats: int,
              files: dict[str, Path] | None = None) -> RunTiming:
    import hub

    t0 = time.perf_counter()
    if files is not None:  # the files users download: transformer + parts, configs from the folder
        runtime = hub.pipeline(files["transformer"], family=family, device=device, dtype=dtype_name, config_dir=folder,
                               text_encoders=[files["clip_l"], files["t5"]], vae=files["vae"],
                               sampler=SAMPLER_FOR[spec["scheduler"]])
    else:
        runtime = hub.pipeline(folder, family=family, device=device, dtype=dtype_name, sampler=SAMPLER_FOR[spec["scheduler"]])

    def once(clock: StepClock | None) -> None:
        runtime.generate(PROMPT, steps=steps, width=spec["size"], height=spec["size"], seed=1, infotext=False,
                         on_step=(lambda _s, _t: clock.tick()) if clock is not None else None)
        _sync(device)

    once(None)
    first = time.perf_counter() - t0
    rates = []
    for _ in range(repeats):
        clock = StepClock(device)
        once(clock)
        rates.append(clock.its())
    runtime.close()
    return RunTiming(first, rates)


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def bench_family(family: str, args: argparse.Namespace, device: str, work: Path) -> dict[str, Any]:
    import torch

    spec = (TINY if args.tiny else FULL)[family]
    dtype_name = args.dtype or ("fp32" if device == "cpu" else "fp16")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    t0 = time.perf_counter()
    pipe = build_pipeline(family, spec, "cpu" if device == "cpu" else device, work)
    folder = work / family
    pipe.to(dtype).save_pretrained(str(folder), safe_serialization=True)
    pipe = None  # free it before the other side loads
    _free(device)
    build_s = time.perf_counter() - t0
    # Alternate the order so neither side always benefits from a warmer cache/allocator.
    bare1 = run_bare(folder, spec, device, dtype, args.steps, args.repeats)
    _free(device)
    ours1 = run_sdhub(folder, family, spec, device, dtype_name, args.steps, args.repeats)
    _free(device)
    ours2 = run_sdhub(folder, family, spec, device, dtype_name, args.steps, args.repeats)
    _free(device)
    bare2 = run_bare(folder, spec, device, dtype, args.steps, args.repeats)
    _free(device)
    files_row = _flux_files_row(folder, spec, device, dtype, dtype_name, args) if family == "flux" and args.flux_files else None
    shutil.rmtree(folder, ignore_errors=True)
    bare_its = statistics.median(bare1.step_its + bare2.step_its)
    ours_its = statistics.median(ours1.step_its + ours2.step_its)
    bare_first = min(bare1.first_image_s, bare2.first_image_s)
    ours_first = min(ours1.first_image_s, ours2.first_image_s)
    return {
        "family": family, "size": spec["size"], "steps": args.steps, "dtype": dtype_name, "device": device,
        "build_and_save_s": round(build_s, 2),
        "diffusers_its": round(bare_its, 3), "sdhub_its": round(ours_its, 3), "its_ratio": round(ours_its / bare_its, 4),
        "diffusers_first_image_s": round(bare_first, 3), "sdhub_first_image_s": round(ours_first, 3),
        "first_image_ratio": round(ours_first / bare_first, 4),
        "runs": {"diffusers": [asdict(bare1), asdict(bare2)], "sdhub": [asdict(ours1), asdict(ours2)]},
        "flux_files": files_row,
    }


def write_flux_files(folder: Path, out: Path) -> dict[str, Path]:
    """The folder's Flux as the files users download: BFL transformer, clip_l, t5xxl (HF layout), ae (LDM layout)."""
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tinymodels import flux_transformer_to_bfl, vae_to_original  # the writers the tests use

    def weights(sub: str) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for f in sorted((folder / sub).glob("*.safetensors")):
            state.update(load_file(str(f)))
        return state

    files = {"transformer": out / "flux1-dev.safetensors", "clip_l": out / "clip_l.safetensors",
             "t5": out / "t5xxl.safetensors", "vae": out / "ae.safetensors"}
    save_file(flux_transformer_to_bfl(weights("transformer")), str(files["transformer"]))
    save_file({k: v.contiguous() for k, v in weights("text_encoder").items()}, str(files["clip_l"]))
    t5 = weights("text_encoder_2")
    t5.setdefault("encoder.embed_tokens.weight", t5["shared.weight"].clone())
    save_file({k: v.contiguous() for k, v in t5.items()}, str(files["t5"]))
    n_blocks = len(json.loads((folder / "vae" / "config.json").read_text())["block_out_channels"])
    vae = {k.removeprefix("first_stage_model."): v.contiguous() for k, v in vae_to_original(weights("vae"), n_blocks).items()}
    save_file(vae, str(files["vae"]))
    return files


def _flux_files_row(folder: Path, spec: dict[str, Any], device: str, dtype: Any, dtype_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time to first image from the downloaded files: sdhub vs diffusers' from_single_file (transformer)."""
    files = write_flux_files(folder, folder.parent / "flux-files")
    _free(device)
    ours = run_sdhub(folder, "flux", spec, device, dtype_name, args.steps, 1, files=files)
    _free(device)
    try:
        bare = run_bare(folder, spec, device, dtype, args.steps, 1, "flux", transformer_file=files["transformer"])
        bare_first: float | None = bare.first_image_s
    except Exception as exc:  # tiny widths: diffusers' converter hard-codes Flux's 3072
        print(f"[flux] diffusers from_single_file cannot load this transformer: {type(exc).__name__}: {str(exc)[:120]}",
              file=sys.stderr)
        bare_first = None
    _free(device)
    shutil.rmtree(files["transformer"].parent, ignore_errors=True)
    return {"sdhub_first_image_s": round(ours.first_image_s, 3),
            "diffusers_single_file_first_image_s": None if bare_first is None else round(bare_first, 3),
            "first_image_ratio": None if bare_first is None else round(ours.first_image_s / bare_first, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("sd1", "sdxl", "sd3", "flux", "all"), default="all")
    parser.add_argument("--no-flux-files", dest="flux_files", action="store_false",
                        help="skip timing Flux from the downloaded-files layout")
    parser.add_argument("--tiny", action="store_true", help="tiny models at 64x64 (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side after the first image")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "gpu_generate.json"))
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not args.tiny:
        print("no GPU: full-size models on the CPU would take hours; use --tiny for a smoke test", file=sys.stderr)
        return 2
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    for log in (dlog, tlog):  # the same quiet loading for both sides
        log.set_verbosity_error()
        log.disable_progress_bar()
    if args.tiny and device == "cpu":
        torch.set_num_threads(1)  # tiny tensors gain nothing from threads; OpenMP spin-waits on a busy machine
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.ones(1, device=device).sum().item()  # CUDA context before any timing
    families = ("sd1", "sdxl", "sd3", "flux") if args.family == "all" else (args.family,)
    results = []
    work = Path(tempfile.mkdtemp(prefix="sdhub-bench-"))
    try:
        for family in families:
            print(f"[{family}] building random-weight model and timing…", file=sys.stderr, flush=True)
            results.append(bench_family(family, args, device, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    print(f"device: {gpu}, torch {torch.__version__}, steps {args.steps}, repeats {args.repeats}{' (tiny)' if args.tiny else ''}")
    header = f"{'family':6} {'size':>5} {'dtype':5} {'diffusers it/s':>14} {'sdhub it/s':>10} {'ratio':>6} {'diffusers TTFI s':>16} {'sdhub TTFI s':>12} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['family']:6} {r['size']:>5} {r['dtype']:5} {r['diffusers_its']:>14.3f} {r['sdhub_its']:>10.3f} {r['its_ratio']:>6.3f} "
              f"{r['diffusers_first_image_s']:>16.3f} {r['sdhub_first_image_s']:>12.3f} {r['first_image_ratio']:>6.3f}")
    for r in results:
        row = r.get("flux_files")
        if row:
            theirs = row["diffusers_single_file_first_image_s"]
            print(f"flux from files (transformer + clip_l + t5xxl + ae): sdhub TTFI {row['sdhub_first_image_s']:.3f} s, "
                  + (f"diffusers from_single_file {theirs:.3f} s, ratio {row['first_image_ratio']:.3f}" if theirs is not None
                     else "diffusers from_single_file: n/a (its converter needs the full-width model)"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": gpu, "tiny": args.tiny, "results": results}, indent=2), encoding="utf-8")
    print(f"(ratios are sdhub / diffusers: it/s above 0.97 and TTFI below 1.03 meet the 3 % target; JSON in {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

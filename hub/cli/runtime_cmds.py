"""``sdhub generate``, ``sdhub samplers`` and ``sdhub pipelines``: running models from the command line.

Thin wrappers over :mod:`hub.running.runtime`; torch and diffusers load only when ``generate`` runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .base import cli, emit_json, json_option, print_table, progress_enabled, quiet_option

FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux")  # hub.running.runtime.FAMILY_CHOICES, without importing the runtime here


def _unused_path(path: Path) -> Path:
    """``path`` itself, or ``stem-1.png``, ``stem-2.png``… so a default name never overwrites an image."""
    if not path.exists():
        return path
    n = 1
    while True:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _output_paths(out: str | None, model_name: str, seeds: list[int]) -> list[Path]:
    if out:
        base = Path(out)
        if base.suffix.lower() != ".png":
            base = base.with_suffix(base.suffix + ".png") if base.suffix else base.with_suffix(".png")
        if len(seeds) == 1:
            return [base]
        return [base.with_name(f"{base.stem}-{i + 1}{base.suffix}") for i in range(len(seeds))]
    stem = Path(model_name).stem or "sdhub"
    return [_unused_path(Path(f"{stem}-{seed}.png")) for seed in seeds]


@cli.command()
@click.argument("ref")
@click.option("-p", "--prompt", required=True, help="What to draw.")
@click.option("-n", "--negative", default="", help="Negative prompt.")
@click.option("-s", "--sampler", default=None, help="Sampler name or alias (see `sdhub samplers`); default per family.")
@click.option("--steps", type=click.IntRange(1, 1000), default=None, help="Denoising steps (default per family).")
@click.option("--cfg", type=float, default=None, help="Classifier-free guidance scale (default per family; Flux: 1 = off).")
@click.option("--guidance", type=click.FloatRange(0.0, 100.0), default=None,
              help="Flux dev's distilled guidance (default 3.5; Forge's 'Distilled CFG Scale').")
@click.option("-W", "--width", type=click.IntRange(8, 8192), default=None, help="Image width, a multiple of 8.")
@click.option("-H", "--height", type=click.IntRange(8, 8192), default=None, help="Image height, a multiple of 8.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed (drawn and printed if unset).")
@click.option("--init-image", type=click.Path(exists=True, dir_okay=False), default=None,
              help="img2img: start from this image (its size unless --width/--height are given).")
@click.option("--strength", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.75, show_default=True,
              help="img2img/inpaint: how much of the init image is repainted (1 = all of it).")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Inpaint: a black-and-white image, white where --init-image is repainted.")
@click.option("--text-encoders", default=None, metavar="REF[,REF]",
              help="Flux: the CLIP-L and T5-XXL files (paths or references, any order); default: from the catalogue.")
@click.option("--vae", default=None, metavar="REF", help="Flux: the VAE file (ae.safetensors); default: from the catalogue.")
@click.option("--lora", "loras", multiple=True, metavar="REF[:WEIGHT]", help="A LoRA (path or reference) and its weight; repeatable.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="PNG file to write (default: <model>-<seed>.png here).")
@click.option("--batch", "num_images", type=click.IntRange(1, 64), default=1, help="Images to make (seeds seed, seed+1, …).")
@click.option("--config-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder with diffusers configs for single-file models (offline use).")
@click.option("--family", type=click.Choice(FAMILIES), default=None,
              help="Override identification (tiny test models, odd merges).")
@click.option("--device", default=None, help="auto (default), cuda, cuda:N, mps or cpu.")
@click.option("--dtype", type=click.Choice(("auto", "fp32", "fp16", "bf16")), default=None, help="Weights precision (default: fp16/bf16 on GPU, fp32 on CPU).")
@click.option("--refiner", default=None, metavar="REF", help="SDXL refiner to hand the last steps to.")
@click.option("--refiner-switch", type=click.FloatRange(0.05, 0.95), default=0.8, show_default=True,
              help="Fraction of the steps done by the base model before the refiner.")
@click.option("--cpu-offload", type=click.Choice(("model", "sequential")), is_flag=False, flag_value="model", default=None,
              help="Keep models in RAM and move each whole model (model, the default) or each layer (sequential: least "
                   "memory, slowest) to the GPU when used.")
@click.option("--vae-tiling", is_flag=True, help="Decode the image in tiles (large sizes on small GPUs).")
@click.option("--vae-slicing", is_flag=True, help="Decode a batch one image at a time.")
@click.option("--attention-slicing", is_flag=True, help="Compute attention in slices: less peak memory, slower.")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the denoiser (slow first image, faster after).")
@click.option("--offline", is_flag=True, help="Never fetch configs; use --config-dir or the cache.")
@json_option
@quiet_option
def generate(
    ref: str,
    prompt: str,
    negative: str,
    sampler: str | None,
    steps: int | None,
    cfg: float | None,
    guidance: float | None,
    width: int | None,
    height: int | None,
    seed: int | None,
    init_image: str | None,
    strength: float,
    mask: str | None,
    text_encoders: str | None,
    vae: str | None,
    loras: tuple[str, ...],
    out: str | None,
    num_images: int,
    config_dir: str | None,
    family: str | None,
    device: str | None,
    dtype: str | None,
    refiner: str | None,
    refiner_switch: float,
    cpu_offload: str | None,
    vae_tiling: bool,
    vae_slicing: bool,
    attention_slicing: bool,
    compile_model: bool,
    offline: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Generate an image from REF (a file, a diffusers folder, or a catalogue/source reference).

    The PNG carries A1111-style parameters (prompt, sampler, seed, Model hash, Lora hashes).
    """
    from .. import check_size, pipeline

    check_size(width, height)  # before loading gigabytes, not after
    if mask is not None and init_image is None:
        raise click.BadParameter("a mask needs an image to paint into: give --init-image too", param_hint="--mask")
    chatty = not (as_json or quiet)
    t0 = time.perf_counter()
    if chatty:
        click.echo(f"Loading {ref}…", err=True)
    runtime = pipeline(
        ref, sampler=sampler, loras=list(loras), device=device, dtype=dtype, family=family, config_dir=config_dir,
        cpu_offload=cpu_offload, vae_tiling=vae_tiling, vae_slicing=vae_slicing, attention_slicing=attention_slicing, compile=compile_model, refiner=refiner,
        refiner_switch=refiner_switch, offline=offline,
        text_encoders=[t.strip() for t in (text_encoders or "").split(",") if t.strip()], vae=vae,
    )
    load_s = time.perf_counter() - t0
    if not as_json:
        for warning in runtime.warnings:
            click.echo(f"Warning: {warning}", err=True)
    if chatty:
        for part in runtime.parts:
            click.echo(f"Using {part.describe()}", err=True)
    if chatty:
        lora_text = "".join(f", LoRA {lora.name}×{lora.weight:g}" for lora in runtime.loras)
        click.echo(
            f"Loaded {runtime.model.name} as {runtime.family} ({runtime.pipeline.name}) on {runtime.device} "
            f"{runtime.dtype}{lora_text} in {load_s:.1f} s",
            err=True,
        )
    bar: Any = None
    on_step = None
    if progress_enabled(as_json, quiet):
        from tqdm import tqdm

        def on_step(step: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="step", desc="Generating", leave=False)
            bar.update(step - bar.n)

    t1 = time.perf_counter()
    try:
        result = runtime.generate(
            prompt, negative_prompt=negative, steps=steps, cfg=cfg, width=width, height=height, seed=seed,
            num_images=num_images, on_step=on_step, init_image=init_image, strength=strength, mask=mask,
            guidance=guidance,
        )
    finally:
        if bar is not None:
            bar.close()
    gen_s = time.perf_counter() - t1
    paths = _output_paths(out, runtime.model.name, result.seeds)
    for i, path in enumerate(paths):
        result.save(path, i)
    params = result.parameters
    if as_json:
        emit_json({
            "images": [{"path": str(p.resolve()), "seed": s} for p, s in zip(paths, result.seeds)],
            "model": str(runtime.model.path),
            "family": runtime.family,
            "pipeline": runtime.pipeline.name,
            "sampler": params["sampler"],
            "steps": params["steps"],
            "cfg": params["cfg"],
            "guidance": params["guidance"],
            "parts": {part.role: {"path": str(part.path), "from": part.origin} for part in runtime.parts},
            "width": params["width"],
            "height": params["height"],
            "device": runtime.device,
            "dtype": runtime.dtype,
            "loras": params["loras"],
            "infotext": result.infotext,
            "warnings": runtime.warnings,
            "timings": {"load_s": round(load_s, 3), "generate_s": round(gen_s, 3)},
        })
        return
    for path, s in zip(paths, result.seeds):
        if quiet:
            click.echo(str(path))
        else:
            click.echo(f"Saved {path} (seed {s}, {params['steps']} steps, {params['sampler_label']}, {gen_s:.1f} s)")


@cli.command()
@click.option("--family", type=str, default=None, help="Only samplers that can run this family (sd1, sdxl, sd3…).")
@json_option
def samplers(family: str | None, as_json: bool) -> None:
    """List registered samplers, their aliases and the families they serve."""
    from .. import all_samplers

    items = sorted(all_samplers(), key=lambda s: s.name)
    if family:
        items = [s for s in items if s.serves(family)]
    if as_json:
        emit_json([s.to_dict() for s in items])
        return
    rows = [(s.name, s.display_name, ", ".join(s.families), ", ".join(a for a in s.aliases if a != s.display_name))
            for s in items]
    print_table(rows, ("NAME", "LABEL", "FAMILIES", "ALIASES"), empty=f"(no sampler serves {family})" if family else "(none)")


@cli.command()
@json_option
def pipelines(as_json: bool) -> None:
    """List registered pipelines and the model families/kinds each runs."""
    from .. import all_pipelines

    items = sorted(all_pipelines(), key=lambda p: p.name)
    if as_json:
        emit_json([p.to_dict() for p in items])
        return
    rows = []
    for p in items:
        for fam in p.families:
            d = p.defaults_for(fam)
            rows.append((p.name, fam, ", ".join(p.kinds), f"{d.width}x{d.height}", d.steps, f"{d.cfg:g}", d.sampler))
    print_table(rows, ("PIPELINE", "FAMILY", "KINDS", "SIZE", "STEPS", "CFG", "SAMPLER"))

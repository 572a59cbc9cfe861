"""Flux on a tiny random model built offline: the files users download (BFL transformer, clip_l, t5xxl, ae), an
all-in-one checkpoint and a diffusers folder; parts from the catalogue; guidance; samplers; LoRAs in every format
identification knows; img2img and inpainting; determinism by seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hub  # noqa: E402
from hub.errors import PipelineError, SamplerError  # noqa: E402
from tinymodels import (  # noqa: E402
    apply_lora_factors,
    clone_pipeline,
    flux_lora_groups,
    flux_te_factors,
    tiny_flux,
    tiny_pipeline,
    write_flux_lora,
)

SIZE = {"width": 64, "height": 64}


def pixels(generation: Any) -> np.ndarray:
    return np.asarray(generation.images[0]).astype(np.int16)


def from_files(name: str = "flux", **kwargs: Any) -> Any:
    m = tiny_flux(name)
    return hub.pipeline(m.transformer, family="flux", config_dir=m.config_dir, text_encoders=[m.clip_l, m.t5xxl],
                        vae=m.vae, **kwargs)


def bare(name: str = "flux", cls: str = "FluxPipeline", pipe: Any = None, **call: Any) -> np.ndarray:
    """What diffusers alone draws from the saved folder with the same seed."""
    import diffusers

    base = pipe if pipe is not None else clone_pipeline(name)
    runner = getattr(diffusers, cls).from_pipe(base) if cls != "FluxPipeline" else base
    runner.set_progress_bar_config(disable=True)
    guidance = {"guidance_scale": call.pop("guidance_scale", 3.5)} if name == "flux" else {}
    out = runner("a red fox", num_inference_steps=call.pop("steps", 2), generator=torch.Generator().manual_seed(call.pop("seed", 3)),
                 max_sequence_length=512 if name == "flux" else 256, **guidance, **SIZE, **call)
    return np.asarray(out.images[0]).astype(np.int16)


# -- loading ------------------------------------------------------------------------------------------------------


def test_the_downloaded_files_load_every_tensor_and_draw_what_bare_diffusers_draws() -> None:
    runtime = from_files()
    assert runtime.pipeline.name == "flux" and runtime.family == "flux"
    loaded = runtime.runner.pipe
    checked = 0
    for name, component in tiny_pipeline("flux").components.items():
        if not isinstance(component, torch.nn.Module):
            continue
        theirs = getattr(loaded, name).state_dict()
        assert not getattr(loaded, name).training
        for key, value in component.state_dict().items():
            assert torch.equal(theirs[key], value), f"{name}.{key} differs"
            checked += 1
    assert checked > 100
    got = runtime.generate("a red fox", steps=2, seed=3, **SIZE)
    assert pixels(got).std() > 1
    assert np.array_equal(pixels(got), bare())
    assert np.array_equal(pixels(runtime.generate("a red fox", steps=2, seed=3, **SIZE)), pixels(got))
    assert not np.array_equal(pixels(runtime.generate("a red fox", steps=2, seed=4, **SIZE)), pixels(got))
    assert [p.role for p in runtime.parts] == ["clip_l", "t5", "vae"]  # placed by what they are
    assert "Distilled CFG Scale: 3.5" in got.infotext and "CFG scale: 1," in got.infotext


@pytest.mark.parametrize("form", ["diffusers_dir", "all_in_one"])
def test_a_diffusers_folder_and_an_all_in_one_checkpoint_draw_the_same_image(form: str) -> None:
    m = tiny_flux()
    runtime = hub.pipeline(getattr(m, form), family="flux", config_dir=m.config_dir)
    assert runtime.parts == []  # nothing looked up: the model carries its parts
    assert np.array_equal(pixels(runtime.generate("a red fox", steps=2, seed=3, **SIZE)), bare())


def test_text_encoders_in_any_order_and_a_comfyui_prefixed_transformer(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    m = tiny_flux()
    prefixed = tmp_path / "flux1-comfy.safetensors"
    save_file({"model.diffusion_model." + k: v for k, v in load_file(str(m.transformer)).items()}, str(prefixed))
    runtime = hub.pipeline(prefixed, family="flux", config_dir=m.config_dir, text_encoders=[m.t5xxl, m.clip_l], vae=m.vae)
    assert np.array_equal(pixels(runtime.generate("a red fox", steps=2, seed=3, **SIZE)), bare())


def test_schnell_takes_its_own_defaults_and_refuses_guidance() -> None:
    runtime = from_files("flux_schnell")
    assert runtime.defaults.steps == 4 and runtime.defaults.guidance is None
    got = runtime.generate("a red fox", seed=3, **SIZE)
    assert got.parameters["steps"] == 4 and "Distilled CFG Scale" not in got.infotext
    assert np.array_equal(pixels(got), bare("flux_schnell", steps=4))
    with pytest.raises(PipelineError, match="--guidance is the distilled guidance of Flux dev"):
        runtime.generate("a red fox", steps=1, guidance=2.0, **SIZE)


def test_guidance_is_the_distilled_guidance_and_cfg_turns_on_true_cfg() -> None:
    runtime = from_files()
    plain = pixels(runtime.generate("a red fox", steps=2, seed=3, **SIZE))
    lower = runtime.generate("a red fox", steps=2, seed=3, guidance=1.5, **SIZE)
    assert "Distilled CFG Scale: 1.5" in lower.infotext and not np.array_equal(pixels(lower), plain)
    assert np.array_equal(pixels(lower), bare(guidance_scale=1.5))
    true_cfg = runtime.generate("a red fox", negative_prompt="blurry", cfg=3.0, steps=2, seed=3, **SIZE)
    assert np.array_equal(pixels(true_cfg), bare(negative_prompt="blurry", true_cfg_scale=3.0))
    assert "CFG scale: 3," in true_cfg.infotext


def test_guidance_on_a_model_without_it_is_a_clear_error() -> None:
    from tinymodels import tiny_model

    runtime = hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1")
    with pytest.raises(PipelineError, match="this sd1 model has none"):
        runtime.generate("x", steps=1, guidance=3.5, width=64, height=64)


def test_parts_for_a_model_that_has_its_own_are_refused() -> None:
    from tinymodels import tiny_model

    with pytest.raises(PipelineError, match="--text-encoders and --vae are for models shipped in parts"):
        hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", vae=tiny_flux().vae)


def test_a_part_given_in_the_wrong_place_is_named() -> None:
    m = tiny_flux()
    with pytest.raises(PipelineError, match="--vae .*clip_l.safetensors is not a VAE .*CLIP-L"):
        hub.pipeline(m.transformer, family="flux", config_dir=m.config_dir, vae=m.clip_l)
    with pytest.raises(PipelineError, match="names two T5-XXL text encoders"):
        hub.pipeline(m.transformer, family="flux", config_dir=m.config_dir, text_encoders=[m.t5xxl, m.t5xxl])


# -- parts from the catalogue ----------------------------------------------------------------------------------------


def test_missing_parts_are_named_with_how_to_get_them() -> None:
    m = tiny_flux()
    with pytest.raises(PipelineError) as err:
        hub.pipeline(m.transformer, family="flux", config_dir=m.config_dir, text_encoders=[m.clip_l])
    message = str(err.value)
    assert "without a T5-XXL text encoder and the Flux VAE" in message
    assert "hf:comfyanonymous/flux_text_encoders/t5xxl_fp16.safetensors" in message and "ae.safetensors" in message


def test_parts_not_given_are_picked_from_the_catalogue_and_said(tmp_path: Path, run_cli: Any) -> None:
    m = tiny_flux()
    shelf = tmp_path / "models"
    shelf.mkdir()
    for part in (m.clip_l, m.t5xxl, m.vae):
        shutil.copy(part, shelf / part.name)
    with hub.Hub() as h:
        h.scan([shelf])
    runtime = hub.pipeline(m.transformer, family="flux", config_dir=m.config_dir)
    assert {p.role: (p.path.name, p.origin) for p in runtime.parts} == {
        "clip_l": ("clip_l.safetensors", "catalogue"), "t5": ("t5xxl_tiny.safetensors", "catalogue"),
        "vae": ("ae.safetensors", "catalogue")}
    assert np.array_equal(pixels(runtime.generate("a red fox", steps=2, seed=3, **SIZE)), bare())
    out = tmp_path / "fox.png"
    result = run_cli("generate", str(m.transformer), "--family", "flux", "--config-dir", str(m.config_dir), "-p", "a red fox",
                     "--steps", "2", "--seed", "3", "-W", "64", "-H", "64", "-o", str(out), "--guidance", "2.5")
    assert result.exit_code == 0, result.stderr
    assert f"Using T5-XXL text encoder: {(shelf / 't5xxl_tiny.safetensors').resolve()} (from the catalogue)" in result.stderr
    from PIL import Image

    assert "Distilled CFG Scale: 2.5" in Image.open(out).info["parameters"]
    as_json = run_cli("generate", str(m.transformer), "--family", "flux", "--config-dir", str(m.config_dir), "-p", "x",
                      "--steps", "1", "-W", "64", "-H", "64", "-o", str(tmp_path / "x.png"), "--json",
                      "--vae", str(m.vae))
    assert as_json.exit_code == 0, as_json.stderr
    parts = json.loads(as_json.stdout)["parts"]
    assert parts["vae"] == {"path": str(m.vae), "from": "given"} and parts["clip_l"]["from"] == "catalogue"


# -- samplers -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sampler", "scheduler_cls", "options"), [
    ("euler", "FlowMatchEulerDiscreteScheduler", {}),
    ("Euler", "FlowMatchEulerDiscreteScheduler", {}),
    ("dpmpp_2m", "DPMSolverMultistepScheduler",
     {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0, "algorithm_type": "dpmsolver++"}),
    ("unipc", "UniPCMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0}),
])
def test_flow_match_samplers_by_the_names_users_know(sampler: str, scheduler_cls: str, options: dict[str, Any]) -> None:
    import diffusers

    runtime = from_files(sampler=sampler)
    got = runtime.generate("a red fox", steps=3, seed=3, **SIZE)
    pipe = clone_pipeline("flux")
    pipe.scheduler = getattr(diffusers, scheduler_cls).from_config(pipe.scheduler.config, **options)
    assert np.array_equal(pixels(got), bare(pipe=pipe, steps=3))


def test_samplers_flux_cannot_take_are_refused_with_the_list() -> None:
    with pytest.raises(SamplerError, match="cannot run a flux model.*samplers for flux: .*euler"):
        hub.pipeline(tiny_flux().transformer, family="flux", sampler="heun")
    with pytest.raises(SamplerError, match="cannot run a flux model"):
        hub.pipeline(tiny_flux().transformer, family="flux", sampler="euler_a")


# -- LoRAs ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["kohya", "peft", "aitoolkit", "xlabs", "onetrainer", "bfl"])
def test_flux_loras_in_every_format_merge_to_the_reference_weights(fmt: str, tmp_path: Path) -> None:
    unscaled = fmt in ("aitoolkit", "xlabs")  # no alpha in the file: up @ down as it is
    groups = flux_lora_groups(alpha=4.0 if unscaled else 2.0, double_attention_only=fmt == "xlabs", final_layer=fmt == "bfl")
    te = flux_te_factors() if fmt in ("kohya", "peft", "onetrainer") else []
    path = write_flux_lora(tmp_path / f"{fmt}.safetensors", fmt, groups, te)
    runtime = from_files(loras=[f"{path}:0.7"])
    reference = clone_pipeline("flux")
    apply_lora_factors(reference, [f for g in groups for f in g.factors()] + te, 0.7)
    changed = 0
    for component in ("transformer", "text_encoder", "text_encoder_2"):
        ours = getattr(runtime.runner.pipe, component).state_dict()
        for key, value in getattr(reference, component).state_dict().items():
            assert torch.allclose(ours[key], value, atol=1e-5), f"{component}.{key}"
        base = tiny_pipeline("flux").components[component].state_dict()
        changed += sum(not torch.equal(base[k], v) for k, v in ours.items())
    assert changed >= len([f for g in groups for f in g.factors()]) + len(te)
    if fmt == "kohya":
        got = runtime.generate("a red fox", steps=2, seed=3, **SIZE)
        assert np.array_equal(pixels(got), bare(pipe=reference)) and 'Lora hashes: "kohya: ' in got.infotext


def test_a_lora_for_another_model_is_refused_naming_the_layers(tmp_path: Path) -> None:
    from hub.errors import IncompatibleError

    groups = flux_lora_groups("flux")
    for g in groups:  # rows that no tiny-Flux layer has
        g.ups = [torch.cat([u, u], 0) for u in g.ups]
    path = write_flux_lora(tmp_path / "wide.safetensors", "kohya", groups)
    with pytest.raises(IncompatibleError, match="does not fit this model"):
        from_files(loras=[path])


# -- img2img and inpainting ---------------------------------------------------------------------------------------


def _init(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "init.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_flux_img2img_and_inpainting_are_what_bare_diffusers_draws(tmp_path: Path) -> None:
    from PIL import Image

    init = _init(tmp_path)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    runtime = from_files()
    got = runtime.generate("a red fox", steps=4, seed=3, init_image=init, strength=0.5, **SIZE)
    assert got.parameters["mode"] == "img2img" and "Denoising strength: 0.5" in got.infotext
    image = Image.open(init).convert("RGB")
    assert np.array_equal(pixels(got), bare(cls="FluxImg2ImgPipeline", steps=4, image=image, strength=0.5))
    painted = runtime.generate("a red fox", steps=4, seed=3, init_image=init, mask=mask_path, strength=0.9, **SIZE)
    assert painted.parameters["mode"] == "inpaint" and "Mask blur: 0" in painted.infotext
    assert np.array_equal(pixels(painted), bare(cls="FluxInpaintPipeline", steps=4, image=image,
                                                mask_image=Image.open(mask_path).convert("L"), strength=0.9))

"""hub.pipeline / generate on tiny random SD1.5, SDXL and SD3 models (CPU, 64x64, 2-3 steps)."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hub  # noqa: E402
from hub.errors import IncompatibleError, PipelineError, SamplerError  # noqa: E402
from hub.running.pipelines import GenerateRequest  # noqa: E402
from hub.running.runtime import pick_device, pick_dtype  # noqa: E402
from hub.running.samplers import Sampler, get_sampler  # noqa: E402
from tests.fake_hf import fake_hub  # noqa: E402,F401
from tinymodels import (  # noqa: E402
    apply_lora_factors,
    clone_pipeline,
    random_lora,
    random_lycoris,
    sd3_without_t5,
    tiny_model,
    tiny_pipeline,
    write_kohya_lora,
    write_kohya_sd3_lora,
    write_lycoris_lora,
    write_peft_lora,
)

FAMILY_SAMPLER = [("sd1", "euler_a"), ("sdxl", "dpmpp_2m_karras"), ("sd3", "euler")]
SIZE = {"width": 64, "height": 64}


def pixels(generation: Any, index: int = 0) -> np.ndarray:
    return np.asarray(generation.images[index]).astype(np.int16)


def bare_diffusers_image(pipe: Any, scheduler_cls: str, seed: int, steps: int, cfg: float, **scheduler_options: Any) -> np.ndarray:
    """What diffusers alone draws with the given scheduler: the baseline sdhub must reproduce."""
    import diffusers

    pipe.scheduler = getattr(diffusers, scheduler_cls).from_config(pipe.scheduler.config, **scheduler_options)
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a red fox", num_inference_steps=steps, guidance_scale=cfg, generator=torch.Generator().manual_seed(seed), **SIZE)
    return np.asarray(out.images[0]).astype(np.int16)


# -- loading --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["sd1", "sdxl", "sd3"])
def test_single_file_loads_every_tensor_of_every_component(family: str) -> None:
    """from_single_file loads CLIP/UNet/VAE non-strictly: compare tensors, not just 'it loaded'."""
    m = tiny_model(family)
    runtime = hub.pipeline(m.single_file, family=family, config_dir=m.config_dir)
    loaded = runtime.runner.pipe
    checked = 0
    for name, component in tiny_pipeline(family).components.items():
        if not isinstance(component, torch.nn.Module):
            continue
        got = getattr(loaded, name)
        assert not got.training, f"{name} left in train mode"
        theirs = got.state_dict()
        for key, value in component.state_dict().items():
            assert key in theirs, f"{name}.{key} missing"
            assert torch.equal(theirs[key], value), f"{name}.{key} differs"
            checked += 1
    assert checked > 200
    assert runtime.pipeline.name == {"sd1": "stable-diffusion", "sdxl": "stable-diffusion-xl", "sd3": "stable-diffusion-3"}[family]


@pytest.mark.parametrize(("family", "sampler"), FAMILY_SAMPLER)
def test_same_seed_same_image_from_single_file_and_from_folder(family: str, sampler: str) -> None:
    m = tiny_model(family)
    from_file = hub.pipeline(m.single_file, family=family, config_dir=m.config_dir, sampler=sampler)
    first = pixels(from_file.generate("a red fox", steps=2, seed=7, **SIZE))
    again = pixels(from_file.generate("a red fox", steps=2, seed=7, **SIZE))
    other_seed = pixels(from_file.generate("a red fox", steps=2, seed=8, **SIZE))
    from_folder = hub.pipeline(m.diffusers_dir, family=family, sampler=sampler)
    folder_img = pixels(from_folder.generate("a red fox", steps=2, seed=7, **SIZE))
    assert first.shape == (64, 64, 3)
    assert first.std() > 1, "a flat image says nothing"
    assert np.array_equal(first, again)
    assert np.array_equal(first, folder_img)
    assert not np.array_equal(first, other_seed)


def test_same_seed_same_image_with_the_brownian_tree_sampler() -> None:
    """DPM++ SDE's noise comes from a Brownian tree seeded apart from the pipeline's generator."""
    pytest.importorskip("torchsde")
    m = tiny_model("sd1")
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", sampler="dpmpp_sde")
    first = pixels(runtime.generate("a red fox", steps=2, seed=7, **SIZE))
    torch.manual_seed(12345)  # whatever the global RNG holds, the seed decides
    again = pixels(runtime.generate("a red fox", steps=2, seed=7, **SIZE))
    other_seed = pixels(runtime.generate("a red fox", steps=2, seed=8, **SIZE))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_seed)


@pytest.mark.parametrize(
    ("family", "sampler", "scheduler_cls", "options"),
    [("sd1", "dpmpp_2m_karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"}),
     ("sd3", "dpmpp_2m", "DPMSolverMultistepScheduler",
      {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0, "algorithm_type": "dpmsolver++"})],
)
def test_image_is_what_bare_diffusers_draws_with_that_scheduler(family: str, sampler: str, scheduler_cls: str, options: dict[str, Any]) -> None:
    m = tiny_model(family)
    runtime = hub.pipeline(m.diffusers_dir, family=family, sampler=sampler)
    ours = pixels(runtime.generate("a red fox", steps=3, seed=11, cfg=5.0, **SIZE))
    theirs = bare_diffusers_image(clone_pipeline(family), scheduler_cls, seed=11, steps=3, cfg=5.0, **options)
    assert np.array_equal(ours, theirs)


def test_sd3_file_without_t5_runs_without_it() -> None:
    m = tiny_model("sd3")
    runtime = hub.pipeline(sd3_without_t5(), family="sd3", config_dir=m.config_dir)
    assert runtime.runner.pipe.text_encoder_3 is None
    with_t5 = hub.pipeline(m.single_file, family="sd3", config_dir=m.config_dir)
    a = pixels(runtime.generate("a red fox", steps=2, seed=3, **SIZE))
    b = pixels(with_t5.generate("a red fox", steps=2, seed=3, **SIZE))
    assert a.shape == b.shape and not np.array_equal(a, b)  # T5 embeddings are zeros without it


def test_refiner_hand_off_changes_the_last_steps(tmp_path: Path) -> None:
    base = tiny_model("sdxl")
    refiner = tiny_model("sdxl_refiner")
    plain = hub.pipeline(base.diffusers_dir, family="sdxl", sampler="euler")
    refined = hub.pipeline(base.diffusers_dir, family="sdxl", sampler="euler", refiner=refiner.diffusers_dir, refiner_switch=0.5)
    steps: list[tuple[int, int]] = []
    a = pixels(refined.generate("a red fox", steps=4, seed=5, on_step=lambda s, t: steps.append((s, t)), **SIZE))
    b = pixels(refined.generate("a red fox", steps=4, seed=5, **SIZE))
    c = pixels(plain.generate("a red fox", steps=4, seed=5, **SIZE))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert steps[-1] == (4, 4) and len(steps) == 4
    # The refiner as an original-layout single file (configs from --config-dir/<family>) gives the same image.
    configs = tmp_path / "configs"
    shutil.copytree(refiner.config_dir, configs / "sdxl_refiner")
    shutil.copytree(base.config_dir, configs / "sdxl")
    from_files = hub.pipeline(base.single_file, family="sdxl", sampler="euler", config_dir=configs,
                              refiner=refiner.single_file, refiner_switch=0.5)
    assert from_files.runner.refiner.unet.state_dict().keys() == refined.runner.refiner.unet.state_dict().keys()
    for key, value in refined.runner.refiner.unet.state_dict().items():
        assert torch.equal(from_files.runner.refiner.unet.state_dict()[key], value), key
    assert np.array_equal(a, pixels(from_files.generate("a red fox", steps=4, seed=5, **SIZE)))


def test_an_sdxl_base_single_file_can_refine_with_its_own_configs(tmp_path: Path) -> None:
    """The refiner slot accepts an SDXL base (identified as sdxl): it loads with the SDXL configs, not the refiner's."""
    from hub.running.pipelines import ModelToRun, RunOptions
    from hub_plugins.pipelines import SDXL

    base = tiny_model("sdxl")
    configs = tmp_path / "configs"
    shutil.copytree(base.config_dir, configs / "sdxl")  # no sdxl_refiner configs at all
    model = ModelToRun(path=base.diffusers_dir, family="sdxl", format="diffusers")
    as_refiner = ModelToRun(path=base.single_file, family="sdxl")
    runner = SDXL.load(model, [], "cpu", "fp32", RunOptions(config_dir=configs, refiner=as_refiner, refiner_switch=0.5))
    assert type(runner.refiner).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert len(runner.generate(GenerateRequest("a red fox", steps=2, seed=1, **SIZE))) == 1


# -- LoRAs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "writer"),
    [("sd1", write_kohya_lora), ("sdxl", write_kohya_lora), ("sd1", write_peft_lora), ("sd3", write_peft_lora)],
)
def test_lora_changes_the_image_exactly_as_merged_weights_would(family: str, writer: Any, tmp_path: Path) -> None:
    factors = random_lora(family, magnitude=0.3)
    lora = writer(tmp_path / f"style_{family}.safetensors", family, factors)
    m = tiny_model(family)
    with_lora = hub.pipeline(m.single_file, family=family, config_dir=m.config_dir, sampler="euler", loras=[f"{lora}:0.7"])
    without = hub.pipeline(m.single_file, family=family, config_dir=m.config_dir, sampler="euler")
    a = pixels(with_lora.generate("a red fox", steps=2, seed=1, cfg=5.0, **SIZE))
    b = pixels(without.generate("a red fox", steps=2, seed=1, cfg=5.0, **SIZE))
    assert np.abs(a - b).mean() > 0.2, "the LoRA made no visible difference"
    reference = clone_pipeline(family)
    apply_lora_factors(reference, factors, 0.7)
    expected = bare_diffusers_image(reference, "EulerDiscreteScheduler" if family != "sd3" else "FlowMatchEulerDiscreteScheduler",
                                    seed=1, steps=2, cfg=5.0)
    assert np.array_equal(a, expected)
    report = with_lora.runner.loras[0]
    assert report.format == ("kohya" if writer is write_kohya_lora else "peft")
    assert report.merged == len(factors)


def test_peft_alpha_pattern_scales_each_module_by_its_own_alpha(tmp_path: Path) -> None:
    factors = random_lora("sd1", magnitude=0.3)
    for f in factors[1::2]:
        f.alpha = 8.0  # four times the lora_alpha of the rest: only alpha_pattern says so
    lora = write_peft_lora(tmp_path / "patterned.safetensors", "sd1", factors)
    from safetensors import safe_open

    with safe_open(str(lora), framework="pt") as f:
        packed = json.loads(f.metadata()["lora_adapter_metadata"])
    patterned = sum(len(v) for k, v in packed.items() if k.endswith(".alpha_pattern"))
    assert patterned == len(factors[1::2]) and "unet.alpha_pattern" in packed
    m = tiny_model("sd1")
    run = hub.pipeline(m.single_file, family="sd1", config_dir=m.config_dir, sampler="euler", loras=[f"{lora}:0.7"])
    got = pixels(run.generate("a red fox", steps=2, seed=1, cfg=5.0, **SIZE))
    reference = clone_pipeline("sd1")
    apply_lora_factors(reference, factors, 0.7)
    assert np.array_equal(got, bare_diffusers_image(reference, "EulerDiscreteScheduler", seed=1, steps=2, cfg=5.0))


def test_kohya_sd3_lora_with_fused_qkv_is_split_onto_the_projections(tmp_path: Path) -> None:
    lora, factors = write_kohya_sd3_lora(tmp_path / "sd3_kohya.safetensors")
    m = tiny_model("sd3")
    runtime = hub.pipeline(m.diffusers_dir, family="sd3", sampler="euler", loras=[(lora, 0.9)])
    got = pixels(runtime.generate("a red fox", steps=2, seed=6, cfg=5.0, **SIZE))
    reference = clone_pipeline("sd3")
    apply_lora_factors(reference, factors, 0.9)
    assert np.array_equal(got, bare_diffusers_image(reference, "FlowMatchEulerDiscreteScheduler", seed=6, steps=2, cfg=5.0))
    assert runtime.runner.loras[0].format == "kohya" and runtime.runner.loras[0].merged == len(factors)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_locon_conv_layers_map_to_resnets(family: str, tmp_path: Path) -> None:
    """kohya LoCon: SD1 names the resnets in diffusers terms, SDXL in original (in_layers/out_layers) terms."""
    factors = random_lora(family, convs=True, seed=5, magnitude=0.3)
    assert any(f.down.ndim == 4 for f in factors)
    lora = write_kohya_lora(tmp_path / f"locon_{family}.safetensors", family, factors)
    m = tiny_model(family)
    runtime = hub.pipeline(m.single_file, family=family, config_dir=m.config_dir, sampler="euler", loras=[lora])
    got = pixels(runtime.generate("a red fox", steps=2, seed=8, cfg=5.0, **SIZE))
    reference = clone_pipeline(family)
    apply_lora_factors(reference, factors, 1.0)
    assert np.array_equal(got, bare_diffusers_image(reference, "EulerDiscreteScheduler", seed=8, steps=2, cfg=5.0))


def test_two_loras_and_weights_add_up(tmp_path: Path) -> None:
    f1, f2 = random_lora("sd1", seed=1, magnitude=0.3), random_lora("sd1", seed=2, magnitude=0.3)
    l1 = write_kohya_lora(tmp_path / "one.safetensors", "sd1", f1)
    l2 = write_peft_lora(tmp_path / "two.safetensors", "sd1", f2)
    m = tiny_model("sd1")
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", sampler="euler", loras=[(l1, 0.5), f"{l2}:-0.8"])
    got = pixels(runtime.generate("a red fox", steps=2, seed=4, cfg=5.0, **SIZE))
    reference = clone_pipeline("sd1")
    apply_lora_factors(reference, f1, 0.5)
    apply_lora_factors(reference, f2, -0.8)
    assert np.array_equal(got, bare_diffusers_image(reference, "EulerDiscreteScheduler", seed=4, steps=2, cfg=5.0))


def test_lora_for_another_family_is_refused_with_the_reason(tmp_path: Path) -> None:
    sdxl_lora = write_kohya_lora(tmp_path / "xl_style.safetensors", "sdxl", random_lora("sdxl"))
    m = tiny_model("sd1")
    with pytest.raises(IncompatibleError) as err:
        hub.pipeline(m.single_file, family="sd1", config_dir=m.config_dir, loras=[sdxl_lora])
    assert "xl_style" in str(err.value)


@pytest.mark.parametrize("naming", ["kohya", "simpletuner"])
def test_lycoris_locon_loha_and_lokr_merge_as_the_trainers_define_them(tmp_path: Path, naming: str) -> None:
    modules = random_lycoris("sd1")
    if naming == "simpletuner":
        modules = [m for m in modules if m.component == "unet"]
    assert {m.kind for m in modules} == {"locon_cp", "loha", "loha_tucker", "lokr", "lokr_whole", "lokr_tucker"}
    lora = write_lycoris_lora(tmp_path / "lyco.safetensors", "sd1", modules, naming)
    m = tiny_model("sd1")
    run = hub.pipeline(m.diffusers_dir, family="sd1", sampler="euler", loras=[f"{lora}:0.5"])
    got = pixels(run.generate("a red fox", steps=2, seed=3, cfg=5.0, **SIZE))
    plain = pixels(hub.pipeline(m.diffusers_dir, family="sd1", sampler="euler").generate(
        "a red fox", steps=2, seed=3, cfg=5.0, **SIZE))
    reference = clone_pipeline("sd1")
    apply_lora_factors(reference, modules, 0.5)
    expected = bare_diffusers_image(reference, "EulerDiscreteScheduler", seed=3, steps=2, cfg=5.0)
    assert np.abs(got - plain).mean() > 0.2, "the LyCORIS network made no visible difference"
    # the same sums in another order: at most a rounding step of one pixel value apart
    assert np.abs(got - expected).max() <= 1 and np.abs(got - expected).mean() < 0.05
    report = run.runner.loras[0]
    assert report.format == "lycoris_loha+lokr" and report.merged == len(modules)


@pytest.mark.parametrize(("drop", "words"), [("hada_w2_b", "lacks hada_w2_b"), ("lokr_w2_b", "lacks lokr_w2_b")])
def test_lycoris_module_missing_a_factor_is_refused(tmp_path: Path, drop: str, words: str) -> None:
    modules = random_lycoris("sd1")
    broken = next(m for m in modules if drop in m.tensors)
    del broken.tensors[drop]
    lora = write_lycoris_lora(tmp_path / "broken.safetensors", "sd1", modules)
    with pytest.raises(IncompatibleError, match=words) as err:
        hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", loras=[lora])
    assert "broken.safetensors" in str(err.value)


@pytest.mark.parametrize(("extra_leaf", "words"), [("dora_scale", "DoRA"), ("lora_extra.weight", "lora_extra")])
def test_lora_the_merge_cannot_apply_exactly_is_refused(tmp_path: Path, extra_leaf: str, words: str) -> None:
    """DoRA magnitudes or a tensor the merge does not know change the update: up @ down alone would be silently wrong."""
    from safetensors.torch import load_file, save_file

    plain = write_kohya_lora(tmp_path / "plain.safetensors", "sd1", random_lora("sd1"))
    tensors = load_file(str(plain))
    for key in [k for k in tensors if k.endswith(".lora_down.weight")]:
        rank = tensors[key].shape[0]
        module = key.removesuffix(".lora_down.weight")
        up_rows = tensors[f"{module}.lora_up.weight"].shape[0]
        tensors[f"{module}.{extra_leaf}"] = torch.ones(1, up_rows) if extra_leaf == "dora_scale" else torch.eye(rank)
    odd = tmp_path / "odd.safetensors"
    save_file(tensors, str(odd))
    m = tiny_model("sd1")
    with pytest.raises(IncompatibleError, match=words) as err:
        hub.pipeline(m.diffusers_dir, family="sd1", loras=[odd])
    assert "odd.safetensors" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("civitai:12345", ("civitai:12345", 1.0)), ("civitai:12345:0.7", ("civitai:12345", 0.7)),
     ("sha256:1234567890", ("sha256:1234567890", 1.0)), ("autov2:0123456789:-0.5", ("autov2:0123456789", -0.5)),
     ("urn:air:sdxl:lora:civitai:12345", ("urn:air:sdxl:lora:civitai:12345", 1.0)),
     ("hf:org/repo/style.safetensors:0.5", ("hf:org/repo/style.safetensors", 0.5)),
     ("style.safetensors:0.8", ("style.safetensors", 0.8)), ("my_style:0.5", ("my_style", 0.5))],
)
def test_lora_weight_is_not_read_out_of_a_reference(text: str, expected: tuple[str, float]) -> None:
    from hub.running.runtime import parse_lora_arg

    assert parse_lora_arg(text) == expected


def test_a_checkpoint_passed_as_lora_is_refused() -> None:
    m = tiny_model("sd1")
    with pytest.raises(IncompatibleError) as err:
        hub.pipeline(m.diffusers_dir, family="sd1", loras=[tiny_model("sd3").single_file])
    assert "tiny_sd3" in str(err.value)


# -- samplers from plugins ----------------------------------------------------------------------------------------


@dataclass
class CountingEuler(Sampler):
    """A test plugin's sampler: Euler that records every step it takes."""

    calls: list[float] | None = None

    def build(self, base: Any, family: str | None = None) -> Any:
        import diffusers

        calls = self.calls

        class Recording(diffusers.EulerDiscreteScheduler):
            def step(self, model_output: Any, timestep: Any, sample: Any, *args: Any, **kwargs: Any) -> Any:
                assert calls is not None
                calls.append(float(timestep))
                return super().step(model_output, timestep, sample, *args, **kwargs)

        return Recording.from_config(dict(base))


def test_sampler_from_a_test_plugin_is_really_used(plugin_registration: Any) -> None:
    calls: list[float] = []

    class Plugin:
        @hub.hookimpl
        def register_samplers(self, register: Any) -> None:
            register(CountingEuler(name="counting_euler", families=("sd1", "sdxl"), aliases=("Counting Euler",), calls=calls))

    plugin_registration(Plugin(), "counting-sampler-plugin")
    m = tiny_model("sd1")
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", sampler="Counting Euler")
    got = runtime.generate("a red fox", steps=3, seed=9, cfg=5.0, **SIZE)
    assert len(calls) == 3 and calls == sorted(calls, reverse=True)
    default = pixels(hub.pipeline(m.diffusers_dir, family="sd1").generate("a red fox", steps=3, seed=9, cfg=5.0, **SIZE))
    euler = bare_diffusers_image(clone_pipeline("sd1"), "EulerDiscreteScheduler", seed=9, steps=3, cfg=5.0)
    assert np.array_equal(pixels(got), euler)
    assert not np.array_equal(pixels(got), default)
    assert "Sampler: counting_euler" in got.infotext


def test_sampler_the_family_cannot_use_is_a_clear_error() -> None:
    m = tiny_model("sd3")
    with pytest.raises(SamplerError) as err:
        hub.pipeline(m.diffusers_dir, family="sd3", sampler="euler_a")
    assert "samplers for sd3:" in str(err.value) and "euler" in str(err.value).split("samplers for sd3:")[1]
    runtime = hub.pipeline(m.diffusers_dir, family="sd3")
    with pytest.raises(SamplerError, match="cannot run a sd3 model"):
        runtime.generate("x", sampler="dpmpp_2m_karras", steps=1, **SIZE)


# -- infotext and outputs ---------------------------------------------------------------------------------------


def _autov3(path: Path) -> str:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + n:]).hexdigest()


def test_png_carries_a1111_infotext_with_model_and_lora_hashes(tmp_path: Path) -> None:
    from PIL import Image

    m = tiny_model("sd1")
    lora = write_kohya_lora(tmp_path / "fox_style.safetensors", "sd1", random_lora("sd1"))
    runtime = hub.pipeline(m.single_file, family="sd1", config_dir=m.config_dir, sampler="dpmpp_2m_karras", loras=[f"{lora}:0.6"])
    gen = runtime.generate("a red fox, forest", negative_prompt="blurry", steps=2, cfg=6.5, seed=1234, **SIZE)
    out = gen.save(tmp_path / "out" / "fox.png")
    text = Image.open(out).text["parameters"]
    lines = text.split("\n")
    assert lines[0] == "a red fox, forest"
    assert lines[1] == "Negative prompt: blurry"
    params = lines[2]
    model_hash = hashlib.sha256(m.single_file.read_bytes()).hexdigest()[:10]
    for expected in ("Steps: 2", "Sampler: DPM++ 2M Karras", "CFG scale: 6.5", "Seed: 1234", "Size: 64x64",
                     f"Model hash: {model_hash}", f'Lora hashes: "fox_style: {_autov3(lora)[:12]}"'):
        assert expected in params, expected
    assert not list(out.parent.glob("*.part")), "temporary file left behind"


def test_batch_uses_consecutive_seeds_and_progress_is_reported_per_step() -> None:
    m = tiny_model("sd1")
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", sampler="euler")
    seen: list[tuple[int, int]] = []
    gen = runtime.generate("a red fox", steps=3, seed=40, num_images=2, on_step=lambda s, t: seen.append((s, t)), **SIZE)
    assert gen.seeds == [40, 41] and len(gen.images) == 2
    assert "Seed: 41" in gen.infotexts[1]
    assert not np.array_equal(pixels(gen, 0), pixels(gen, 1))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    drawn = runtime.generate("a red fox", steps=1, **SIZE)
    assert 0 <= drawn.seed < 2**32 and f"Seed: {drawn.seed}" in drawn.infotext


# -- configs, families, devices -----------------------------------------------------------------------------------


def test_single_file_without_configs_offline_says_what_to_do() -> None:
    m = tiny_model("sd1")
    with pytest.raises(PipelineError, match="not cached.*--config-dir"):
        hub.pipeline(m.single_file, family="sd1", offline=True)


def test_configs_are_fetched_through_the_hf_source_then_work_offline(fake_hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from tests.fake_hf import HFRepo

    m = tiny_model("sd1")
    files = {p.relative_to(m.config_dir).as_posix(): p.read_bytes() for p in m.config_dir.rglob("*") if p.is_file()}
    fake_hub.app.add(HFRepo("stable-diffusion-v1-5/stable-diffusion-v1-5", files))
    monkeypatch.setenv("SDHUB_HF_ENDPOINTS", ",".join(fake_hub.endpoints))
    monkeypatch.setenv("SDHUB_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("SDHUB_RETRY_MAX_WAIT", "0.01")
    fake_hub.primary.go_down()  # the mirror fallback of the HF source applies to configs too
    fetched = hub.pipeline(m.single_file, family="sd1", sampler="euler")
    got = pixels(fetched.generate("a red fox", steps=2, seed=2, **SIZE))
    assert fake_hub.mirror.api.requests("/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/")
    expected = hub.pipeline(m.single_file, family="sd1", sampler="euler", config_dir=m.config_dir)
    assert np.array_equal(got, pixels(expected.generate("a red fox", steps=2, seed=2, **SIZE)))
    fake_hub.mirror.go_down()  # no endpoint at all now: the cache must do
    offline = hub.pipeline(m.single_file, family="sd1", sampler="euler", offline=True)
    assert np.array_equal(got, pixels(offline.generate("a red fox", steps=2, seed=2, **SIZE)))


def test_config_dir_may_hold_one_folder_per_family(tmp_path: Path) -> None:
    m = tiny_model("sdxl")
    shutil.copytree(m.config_dir, tmp_path / "configs" / "sdxl")
    runtime = hub.pipeline(m.single_file, family="sdxl", config_dir=tmp_path / "configs")
    assert pixels(runtime.generate("a red fox", steps=1, seed=1, **SIZE)).shape == (64, 64, 3)
    with pytest.raises(PipelineError, match="has no diffusers config for sd1"):
        hub.pipeline(tiny_model("sd1").single_file, family="sd1", config_dir=tmp_path / "configs")


def test_pipeline_follows_the_family_not_the_file_name(tmp_path: Path) -> None:
    misleading = tmp_path / "sdxl_base_1.0_sd3_medium.safetensors"
    shutil.copy(tiny_model("sd1").single_file, misleading)
    runtime = hub.pipeline(misleading, family="sd1", config_dir=tiny_model("sd1").config_dir)
    assert runtime.pipeline.name == "stable-diffusion"
    assert type(runtime.runner.pipe).__name__ == "StableDiffusionPipeline"


def test_unplaceable_model_needs_family(tmp_path: Path) -> None:
    m = tiny_model("sd1")
    try:
        from hub import identify_path

        family = identify_path(m.single_file).family
    except ImportError:
        family = None
    if family in ("sd1", "sd2", "sdxl", "sd3"):
        # identification places it: no --family needed, and its answer picks the pipeline
        assert hub.pipeline(m.single_file, config_dir=m.config_dir).family == family
    else:
        with pytest.raises(PipelineError, match="pass --family"):
            hub.pipeline(m.single_file, config_dir=m.config_dir)


def test_unknown_family_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="unknown family 'flux2'"):
        hub.pipeline(tiny_model("sd1").diffusers_dir, family="flux2")
    with pytest.raises(hub.SdhubError, match="nowhere.safetensors"):
        hub.pipeline(tmp_path / "nowhere.safetensors", family="sd1")


def test_device_and_dtype_selection() -> None:
    assert pick_device("cpu") == "cpu"
    assert pick_dtype("cpu") == "fp32"
    assert pick_dtype("cpu", "bfloat16") == "bf16"
    assert pick_dtype("mps") == "fp16"
    with pytest.raises(PipelineError, match="fp16 is not supported on the CPU"):
        pick_dtype("cpu", "fp16")
    with pytest.raises(PipelineError, match="unknown dtype"):
        pick_dtype("cpu", "int3")
    if not torch.cuda.is_available():
        with pytest.raises(PipelineError, match="CUDA is not available"):
            pick_device("cuda")
        assert pick_device(None) in ("cpu", "mps")
    else:
        with pytest.raises(PipelineError, match="does not exist"):
            pick_device(f"cuda:{torch.cuda.device_count()}")
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        with pytest.raises(PipelineError, match="no Intel XPU"):  # not torch's AssertionError at .to()
            pick_device("xpu")
    with pytest.raises(PipelineError, match="unknown device"):
        pick_device("tpu")


def test_bf16_weights_vae_tiling_and_compile_are_applied() -> None:
    m = tiny_model("sd1")
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", device="cpu", dtype="bf16", vae_tiling=True, compile=True)
    pipe = runtime.runner.pipe
    assert runtime.dtype == "bf16" and pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.vae.use_tiling
    assert type(pipe.unet).__name__ == "OptimizedModule"  # torch.compile wraps lazily; compiling runs on first call


def test_without_torch_the_run_extra_is_named_before_anything_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hub.errors import RuntimeMissingError

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(RuntimeMissingError, match=r"sdhub\[run\]"):
        hub.pipeline("civitai:1", family="sd1")  # refused before the reference is looked up


HIDE_ACCELERATE = """
import sys
sys.modules["accelerate"] = None  # what an environment without it looks like: find_spec is None, import fails
import hub
try:
    hub.pipeline(sys.argv[1], family="sd1", cpu_offload=True)
except hub.SdhubError as exc:
    print("ERROR", exc)
else:
    print("LOADED")
"""


def test_cpu_offload_without_accelerate_names_the_package() -> None:
    """accelerate is in the run extra, so it is hidden from a fresh interpreter rather than uninstalled."""
    import subprocess
    import sys

    folder = tiny_model("sd1").diffusers_dir
    done = subprocess.run([sys.executable, "-c", HIDE_ACCELERATE, str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ERROR CPU offload needs the accelerate package: pip install accelerate" in done.stdout, done.stdout


def test_catalogue_reference_resolves_through_hub_resolve(tmp_path: Path) -> None:
    m = tiny_model("sd1")
    models = tmp_path / "models"
    models.mkdir()
    local = models / "my_tiny_sd1.safetensors"
    shutil.copy(m.single_file, local)
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    with hub.Hub() as h:
        h.scan([models])
    runtime = hub.pipeline(f"sha256:{sha}", family="sd1", config_dir=m.config_dir, sampler="euler")
    assert runtime.model.path == local.resolve()
    assert runtime.model.sha256 == sha  # known from the catalogue: no re-hashing for the infotext
    gen = runtime.generate("a red fox", steps=1, seed=1, **SIZE)
    assert f"Model hash: {sha[:10]}" in gen.infotext and "Model: my_tiny_sd1" in gen.infotext


def test_identified_family_picks_the_pipeline_whatever_the_name(tmp_path: Path) -> None:
    misleading = tmp_path / "sdxl-base-1.0-sd15-pruned"
    shutil.copytree(tiny_model("sd3").diffusers_dir, misleading)
    assert hub.identify_path(misleading).family == "sd3"  # read from the folder's configs
    runtime = hub.pipeline(misleading)  # no --family
    assert runtime.family == "sd3" and runtime.pipeline.name == "stable-diffusion-3"
    assert pixels(runtime.generate("a red fox", steps=1, seed=1, **SIZE)).shape == (64, 64, 3)


# -- what identification tells the pipeline ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "variant", "details", "repo"),
    [
        ("sd1", None, {}, "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        ("sd2", "v-prediction", {"prediction": "v"}, "stabilityai/stable-diffusion-2-1"),
        ("sd2", None, {"prediction": "eps"}, "stabilityai/stable-diffusion-2-1-base"),
        ("sdxl", None, {}, "stabilityai/stable-diffusion-xl-base-1.0"),
        ("sd3", "medium", {"generation": "3"}, "stabilityai/stable-diffusion-3-medium-diffusers"),
        ("sd3", "medium", {"generation": "3.5"}, "stabilityai/stable-diffusion-3.5-medium"),
        ("sd3", "large", {"generation": "3.5"}, "stabilityai/stable-diffusion-3.5-large"),
    ],
)
def test_config_repository_follows_the_identification(family: str, variant: str | None, details: dict[str, Any], repo: str) -> None:
    from hub_plugins.pipelines import CONFIG_REPOS, config_repo_for

    assert config_repo_for(family, variant, details) == repo
    assert "model_index.json" in CONFIG_REPOS[repo]


def _identified(family: str, **fields: Any) -> Any:
    from hub.identify import Identification

    return Identification(family=family, kind="checkpoint", **fields)


def test_v_prediction_finetune_gets_a_v_prediction_scheduler() -> None:
    from hub.running.pipelines import ModelToRun, RunOptions
    from hub_plugins.pipelines import SD1

    m = tiny_model("sd1")
    model = ModelToRun(path=m.diffusers_dir, family="sd1", format="diffusers",
                       identification=_identified("sd1", details={"prediction": "v"}))
    runner = SD1.load(model, [], "cpu", "fp32", RunOptions())
    assert runner.pipe.scheduler.config.prediction_type == "v_prediction"
    sampler = get_sampler("dpmpp_2m_karras", "sd1")
    assert sampler.build(runner.base_scheduler_config, "sd1").config.prediction_type == "v_prediction"


def test_depth_and_pix2pix_models_are_refused_clearly() -> None:
    from hub.running.pipelines import ModelToRun, RunOptions
    from hub_plugins.pipelines import SD1

    m = tiny_model("sd1")
    model = ModelToRun(path=m.single_file, family="sd1", variant="depth", identification=_identified("sd1", variant="depth"))
    with pytest.raises(PipelineError, match="sd1 depth model.*needs another kind of input"):
        SD1.load(model, [], "cpu", "fp32", RunOptions(config_dir=m.config_dir))


def _mask(tmp_path: Path) -> Path:
    from PIL import Image

    mask = np.zeros((SIZE["height"], SIZE["width"]), dtype=np.uint8)
    mask[:, SIZE["width"] // 2:] = 255  # repaint the right half only
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    return path


def _bare_inpaint(family: str, **kwargs: Any) -> np.ndarray:
    import diffusers

    bare = clone_pipeline(family)
    bare.scheduler = diffusers.EulerDiscreteScheduler.from_config(bare.scheduler.config)
    bare.set_progress_bar_config(disable=True)
    out = bare("a red fox", num_inference_steps=3, guidance_scale=5.0, generator=torch.Generator().manual_seed(4),
               **SIZE, **kwargs)
    return np.asarray(out.images[0]).astype(np.int16)


@pytest.mark.parametrize("form", ["single_file", "diffusers_dir"])
def test_an_inpainting_checkpoint_draws_from_text_with_an_all_white_mask(form: str) -> None:
    """No init image: as A1111 does, the 9-channel UNet is told to paint everything (white mask, black image)."""
    from PIL import Image

    m = tiny_model("sd1_inpaint")
    runtime = hub.pipeline(getattr(m, form), family="sd1", config_dir=m.config_dir, sampler="euler")
    assert runtime.runner.inpaint_model and type(runtime.runner.pipe).__name__ == "StableDiffusionInpaintPipeline"
    got = runtime.generate("a red fox", steps=3, seed=4, cfg=5.0, **SIZE)
    want = _bare_inpaint("sd1_inpaint", image=Image.new("RGB", (64, 64)), mask_image=Image.new("L", (64, 64), 255),
                         strength=1.0)
    assert np.array_equal(pixels(got), want)
    assert "Denoising strength" not in got.infotext


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_an_inpainting_checkpoint_repaints_under_the_mask_as_bare_diffusers(family: str, tmp_path: Path) -> None:
    from PIL import Image

    m = tiny_model(f"{family}_inpaint")
    init, mask = _init_image(tmp_path), _mask(tmp_path)
    runtime = hub.pipeline(m.single_file, family=family, config_dir=m.config_dir, sampler="euler")
    got = runtime.generate("a red fox", steps=3, seed=4, cfg=5.0, init_image=init, mask=mask, strength=0.8)
    want = _bare_inpaint(f"{family}_inpaint", image=Image.open(init).convert("RGB"), mask_image=Image.open(mask).convert("L"),
                         strength=0.8)
    assert np.array_equal(pixels(got), want)
    assert "Denoising strength: 0.8" in got.infotext and "Mask blur: 0" in got.infotext
    again = runtime.generate("a red fox", steps=3, seed=4, cfg=5.0, init_image=init, mask=mask, strength=0.8)
    other = runtime.generate("a red fox", steps=3, seed=5, cfg=5.0, init_image=init, mask=mask, strength=0.8)
    assert np.array_equal(pixels(again), pixels(got)) and not np.array_equal(pixels(other), pixels(got))


def test_an_inpainting_checkpoint_without_a_mask_repaints_the_whole_image(tmp_path: Path) -> None:
    from PIL import Image

    m = tiny_model("sd1_inpaint")
    init = _init_image(tmp_path)
    runtime = hub.pipeline(m.single_file, family="sd1", config_dir=m.config_dir, sampler="euler")
    got = runtime.generate("a red fox", steps=3, seed=4, cfg=5.0, init_image=init, strength=0.6)
    want = _bare_inpaint("sd1_inpaint", image=Image.open(init).convert("RGB"), mask_image=Image.new("L", (64, 64), 255),
                         strength=0.6)
    assert np.array_equal(pixels(got), want) and got.parameters["mode"] == "img2img"


# -- memory options --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["model", "sequential"])
def test_cpu_offload_modes_draw_the_same_image(mode: str) -> None:
    pytest.importorskip("accelerate")  # in the run extra
    m = tiny_model("sd1")
    plain = pixels(hub.pipeline(m.diffusers_dir, family="sd1", device="cpu").generate("a fox", steps=2, seed=3, **SIZE))
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", device="cpu", cpu_offload=mode)
    if mode == "model":
        assert runtime.options.cpu_offload == "model"
        assert hasattr(runtime.runner.pipe.unet, "_hf_hook")  # accelerate's hook really moves the weights
    else:  # layer by layer needs an accelerator: said, not silently ignored
        assert runtime.options.cpu_offload is None
        assert runtime.warnings == ["--cpu-offload sequential does nothing on the CPU; running without it"]
    assert np.array_equal(pixels(runtime.generate("a fox", steps=2, seed=3, **SIZE)), plain)


def test_unknown_offload_mode_is_refused_before_loading() -> None:
    with pytest.raises(PipelineError, match="unknown cpu_offload mode 'layers'"):
        hub.pipeline("civitai:1", family="sd1", cpu_offload="layers")


def test_vae_and_attention_slicing_are_applied_and_keep_the_image() -> None:
    m = tiny_model("sd1")
    plain = pixels(hub.pipeline(m.diffusers_dir, family="sd1", device="cpu").generate("a fox", steps=2, seed=4, **SIZE))
    runtime = hub.pipeline(m.diffusers_dir, family="sd1", device="cpu", vae_slicing=True, attention_slicing=True)
    assert runtime.runner.pipe.vae.use_slicing
    got = pixels(runtime.generate("a fox", steps=2, seed=4, **SIZE))
    assert np.abs(got.astype(int) - plain.astype(int)).max() <= 1  # sliced attention sums in another order


def test_out_of_memory_names_the_options_that_would_make_it_fit(plugin_registration: Any) -> None:
    from diffusers import EulerDiscreteScheduler

    from hub.errors import OutOfMemoryError
    from hub.running.samplers import Sampler

    class Exhausting(EulerDiscreteScheduler):
        def step(self, *args: Any, **kwargs: Any) -> Any:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 8.00 GiB total)")

    class ExhaustingSampler(Sampler):
        def build(self, base: Any, family: str | None = None) -> Any:
            return Exhausting.from_config(dict(base))

    class Plugin:
        @hub.hookimpl
        def register_samplers(self, register: Any) -> None:
            register(ExhaustingSampler(name="exhausting", families=("sd1",)))

    plugin_registration(Plugin(), "oom-sampler-plugin")
    runtime = hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", device="cpu", sampler="exhausting",
                           vae_tiling=True)
    with pytest.raises(OutOfMemoryError) as err:
        runtime.generate("a fox", steps=2, seed=1, **SIZE)
    message = str(err.value)
    assert message.startswith("out of memory on cpu while generating: try --cpu-offload, --attention-slicing")
    assert "--vae-tiling" not in message  # already on
    assert "Tried to allocate 20.00 MiB" in message


# -- img2img and inpainting ------------------------------------------------------------------------------------------


def _init_image(tmp_path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(5)
    path = tmp_path / "init.png"
    Image.fromarray(rng.integers(0, 255, (SIZE["height"], SIZE["width"], 3), dtype=np.uint8)).save(path)
    return path


def test_img2img_is_what_bare_diffusers_draws_from_the_same_image(tmp_path: Path) -> None:
    import diffusers
    from PIL import Image

    init = _init_image(tmp_path)
    runtime = hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", device="cpu", sampler="euler")
    got = runtime.generate("a red fox", steps=4, seed=7, cfg=5.0, init_image=init, strength=0.5)
    bare = diffusers.StableDiffusionImg2ImgPipeline(**clone_pipeline("sd1").components)
    bare.scheduler = diffusers.EulerDiscreteScheduler.from_config(bare.scheduler.config)
    bare.set_progress_bar_config(disable=True)
    want = bare("a red fox", image=Image.open(init).convert("RGB"), strength=0.5, num_inference_steps=4, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(7)).images[0]
    assert np.array_equal(pixels(got), np.asarray(want).astype(np.int16))
    assert "Denoising strength: 0.5" in got.infotext and got.parameters["mode"] == "img2img"
    again = runtime.generate("a red fox", steps=4, seed=7, cfg=5.0, init_image=init, strength=0.5)
    assert np.array_equal(pixels(again), pixels(got))  # deterministic by seed
    stronger = runtime.generate("a red fox", steps=4, seed=7, cfg=5.0, init_image=init, strength=0.9)
    assert not np.array_equal(pixels(stronger), pixels(got))


def test_inpainting_keeps_what_the_mask_leaves_black(tmp_path: Path) -> None:
    from PIL import Image

    init = _init_image(tmp_path)
    mask = np.zeros((SIZE["height"], SIZE["width"]), dtype=np.uint8)
    mask[:, SIZE["width"] // 2:] = 255  # repaint the right half only
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    runtime = hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", device="cpu")
    got = runtime.generate("a red fox", steps=3, seed=2, init_image=init, mask=mask_path, strength=1.0)
    assert got.parameters["mode"] == "inpaint" and "Mask blur: 0" in got.infotext
    out, source = pixels(got), np.asarray(Image.open(init).convert("RGB")).astype(np.int16)
    left, right = slice(0, SIZE["width"] // 2 - 8), slice(SIZE["width"] // 2 + 8, None)
    # The kept half survives the VAE round trip closely; the repainted half does not resemble the source.
    assert np.abs(out[:, left] - source[:, left]).mean() < np.abs(out[:, right] - source[:, right]).mean()


def test_bad_img2img_inputs_are_clear_errors(tmp_path: Path) -> None:
    runtime = hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", device="cpu")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    with pytest.raises(PipelineError, match="is not an image Pillow can read"):
        runtime.generate("x", steps=1, init_image=not_image)
    with pytest.raises(PipelineError, match="a mask needs an init image"):
        runtime.generate("x", steps=1, mask=not_image)
    with pytest.raises(PipelineError, match="strength must be above 0"):
        runtime.generate("x", steps=1, init_image=_init_image(tmp_path), strength=0)

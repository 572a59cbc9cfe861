"""`sdhub generate` end to end on tiny models: 2 steps at 64x64 on the CPU, PNG with infotext."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import hub  # noqa: E402
from hub.running.samplers import Sampler, get_sampler  # noqa: E402
from tinymodels import random_lora, tiny_model, write_kohya_lora, write_peft_lora  # noqa: E402

CASES = [
    # family, layout, sampler (eps samplers for SD1/SDXL, flow samplers for SD3), LoRA writer
    ("sd1", "single", "euler_a", write_kohya_lora),
    ("sd1", "folder", "DPM++ 2M Karras", write_peft_lora),
    ("sdxl", "single", "dpmpp_2m_karras", write_kohya_lora),
    ("sdxl", "folder", "Euler a", write_peft_lora),
    ("sd3", "single", "euler", write_peft_lora),
    ("sd3", "folder", "dpmpp_2m", write_peft_lora),
]


def _model_args(family: str, layout: str) -> list[str]:
    m = tiny_model(family)
    if layout == "single":
        return [str(m.single_file), "--config-dir", str(m.config_dir)]
    return [str(m.diffusers_dir)]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


@pytest.mark.parametrize(("family", "layout", "sampler", "writer"), CASES)
def test_generate_with_sampler_and_lora(run_cli: Any, tmp_path: Path, family: str, layout: str, sampler: str, writer: Any) -> None:
    lora = writer(tmp_path / f"{family}_lora.safetensors", family, random_lora(family, magnitude=0.3))
    common = [*_model_args(family, layout), "--family", family, "-p", "a red fox", "--negative", "blurry",
              "--sampler", sampler, "--steps", "2", "--width", "64", "--height", "64", "--seed", "42"]
    out1, out2, plain = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "plain.png"
    r1 = run_cli("generate", *common, "--lora", f"{lora}:0.8", "--out", str(out1))
    assert r1.exit_code == 0, r1.output
    assert f"Saved {out1}" in r1.output and "seed 42" in r1.output
    r2 = run_cli("generate", *common, "--lora", f"{lora}:0.8", "--out", str(out2), "--json")
    assert r2.exit_code == 0, r2.output
    info = json.loads(r2.stdout)
    assert info["family"] == family and info["images"][0] == {"path": str(out2.resolve()), "seed": 42}
    assert info["loras"] == [{"name": f"{family}_lora", "weight": 0.8}]
    run_cli("generate", *common, "--out", str(plain), "-q")

    image = Image.open(out1)
    assert image.size == (64, 64)
    params = image.text["parameters"]
    assert params.startswith("a red fox\nNegative prompt: blurry\n")
    label = get_sampler(sampler).display_name
    for expected in ("Steps: 2", f"Sampler: {label}", "Seed: 42", "Size: 64x64", "Lora hashes: "):
        assert expected in params, expected
    assert ("Model hash: " in params) == (layout == "single")  # folders have no single-file hash
    a, b, c = _pixels(out1), _pixels(out2), _pixels(plain)
    assert np.array_equal(a, b), "same seed, same settings, different image"
    assert np.abs(a - c).mean() > 0.2, "the LoRA did not change the image"


def test_default_output_name_never_overwrites(run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*_model_args("sd1", "folder"), "--family", "sd1", "-p", "x", "--steps", "1", "-W", "64", "-H", "64", "--seed", "3", "-q"]
    first = run_cli("generate", *args)
    second = run_cli("generate", *args)
    assert first.output.strip() == "diffusers-3.png"
    assert second.output.strip() == "diffusers-3-1.png"
    assert (tmp_path / "diffusers-3.png").is_file() and (tmp_path / "diffusers-3-1.png").is_file()


def test_batch_writes_one_file_per_seed(run_cli: Any, tmp_path: Path) -> None:
    result = run_cli("generate", *_model_args("sd1", "folder"), "--family", "sd1", "-p", "x", "--steps", "1",
                     "-W", "64", "-H", "64", "--seed", "10", "--batch", "2", "--out", str(tmp_path / "fox.png"), "--json")
    data = json.loads(result.stdout)
    assert [i["seed"] for i in data["images"]] == [10, 11]
    assert [Path(i["path"]).name for i in data["images"]] == ["fox-1.png", "fox-2.png"]
    assert "Seed: 11" in Image.open(tmp_path / "fox-2.png").text["parameters"]


@dataclass
class Inverting(Sampler):
    """A plugin sampler with a visible effect: Euler whose every step returns the negated sample."""

    def build(self, base: Any, family: str | None = None) -> Any:
        import diffusers

        class Negating(diffusers.EulerDiscreteScheduler):
            def step(self, *args: Any, **kwargs: Any) -> Any:
                out = super().step(*args, **kwargs)
                if isinstance(out, tuple):
                    return (-out[0], *out[1:])
                out.prev_sample = -out.prev_sample
                return out

        return Negating.from_config(dict(base))


def test_plugin_sampler_is_used_by_generate(run_cli: Any, plugin_registration: Any, tmp_path: Path) -> None:
    class Plugin:
        @hub.hookimpl
        def register_samplers(self, register: Any) -> None:
            register(Inverting(name="negating_euler", families=("sd1",), label="Negating Euler"))

    plugin_registration(Plugin(), "negating-sampler-plugin")
    common = [*_model_args("sd1", "folder"), "--family", "sd1", "-p", "a red fox", "--steps", "1",
              "-W", "64", "-H", "64", "--seed", "5", "--cfg", "5"]
    assert run_cli("generate", *common, "--sampler", "negating_euler", "--out", str(tmp_path / "neg.png")).exit_code == 0
    assert run_cli("generate", *common, "--sampler", "euler", "--out", str(tmp_path / "pos.png")).exit_code == 0
    # One Euler step that is negated gives the latents -x; the VAE decodes a visibly different picture.
    neg, pos = _pixels(tmp_path / "neg.png"), _pixels(tmp_path / "pos.png")
    assert np.abs(neg - pos).mean() > 5
    assert "Sampler: Negating Euler" in Image.open(tmp_path / "neg.png").text["parameters"]
    # The Python API with the same plugin sampler reproduces the CLI's image exactly.
    runtime = hub.pipeline(tiny_model("sd1").diffusers_dir, family="sd1", sampler="negating_euler")
    again = np.asarray(runtime.generate("a red fox", steps=1, width=64, height=64, seed=5, cfg=5).image).astype(np.int16)
    assert np.array_equal(again, neg)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "euler_a"], "cannot run a sd3 model"),
        (["--sampler", "nonsense"], "unknown sampler 'nonsense'"),
        (["--width", "60"], "multiples of 8"),
    ],
)
def test_bad_runs_fail_with_one_clear_line(run_cli: Any, args: list[str], message: str) -> None:
    result = run_cli("generate", *_model_args("sd3", "folder"), "--family", "sd3", "-p", "x", "--steps", "1",
                     "-W", "64", "-H", "64", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_size_not_a_multiple_of_8_is_refused_before_the_model_loads(run_cli: Any) -> None:
    result = run_cli("generate", *_model_args("sd1", "folder"), "--family", "sd1", "-p", "x", "--width", "60")
    assert result.exit_code != 0
    assert "multiples of 8 (got 60xdefault)" in result.stderr
    assert "Loaded" not in result.stderr and "Traceback" not in result.stderr


def test_lora_or_mismatched_model_given_as_the_model_is_one_line(run_cli: Any, tmp_path: Path) -> None:
    """--family places files identification cannot; it does not turn a LoRA into a model, and a file
    that does not load as the family given fails with one line, not a library traceback."""
    lora = write_kohya_lora(tmp_path / "style.safetensors", "sd1", random_lora("sd1"))
    m = tiny_model("sd1")
    result = run_cli("generate", str(lora), "--config-dir", str(m.config_dir), "--family", "sd1", "-p", "x",
                     "-W", "64", "-H", "64")
    assert result.exit_code != 0
    assert "is a LoRA, not a model" in result.stderr and "Traceback" not in result.stderr
    sd3_as_sd1 = run_cli("generate", str(tiny_model("sd3").single_file), "--config-dir", str(m.config_dir),
                         "--family", "sd1", "-p", "x", "-W", "64", "-H", "64")
    assert sd3_as_sd1.exit_code != 0
    error_lines = [line for line in sd3_as_sd1.stderr.splitlines() if line.strip()]
    assert error_lines[-1].startswith("Error: ") and "cannot load as a sd1" in error_lines[-1]
    assert "Traceback" not in sd3_as_sd1.stderr and len(error_lines) <= 2  # "Loading …" and the error
    sd1_folder_as_sdxl = run_cli("generate", str(m.diffusers_dir), "--family", "sdxl", "-p", "x", "--steps", "1",
                                 "-W", "64", "-H", "64", "-q")
    assert sd1_folder_as_sdxl.exit_code != 0
    assert sd1_folder_as_sdxl.stderr.startswith("Error: ") and len(sd1_folder_as_sdxl.stderr.splitlines()) == 1
    assert "is a StableDiffusionPipeline folder" in sd1_folder_as_sdxl.stderr
    assert "--family sd1 or sd2" in sd1_folder_as_sdxl.stderr


def test_incompatible_lora_is_refused_and_nothing_written(run_cli: Any, tmp_path: Path) -> None:
    xl_lora = write_kohya_lora(tmp_path / "xl_only.safetensors", "sdxl", random_lora("sdxl"))
    out = tmp_path / "never.png"
    result = run_cli("generate", *_model_args("sd1", "single"), "--family", "sd1", "-p", "x", "--steps", "1",
                     "-W", "64", "-H", "64", "--lora", f"{xl_lora}:1", "--out", str(out))
    assert result.exit_code != 0
    assert "xl_only" in result.stderr and "Error:" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("name", ["absent.safetensors", "absent.pth", "absent.bin", "absent.sft"])
def test_missing_model_file_is_one_line(run_cli: Any, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # a bare file name, as a user types it: no source is asked about it
    result = run_cli("generate", name, "--family", "sd1", "-p", "x")
    assert result.exit_code != 0
    assert f"{name}: no such file or folder" in result.stderr and "Traceback" not in result.stderr


def test_pipelines_command(run_cli: Any) -> None:
    data = json.loads(run_cli("pipelines", "--json").output)
    by_name = {p["name"]: p for p in data}
    assert by_name["stable-diffusion-3"]["families"] == ["sd3"]
    assert by_name["stable-diffusion-xl"]["defaults"]["width"] == 1024
    table = run_cli("pipelines").output
    assert "stable-diffusion" in table and "sd1" in table and "dpmpp_2m_karras" in table


def test_family_choices_of_the_cli_are_the_runtimes() -> None:
    from hub.cli import runtime_cmds
    from hub.running.runtime import FAMILY_CHOICES

    assert runtime_cmds.FAMILIES == FAMILY_CHOICES


def test_img2img_from_the_command_line_keeps_the_init_size_and_records_the_strength(run_cli: Any, tmp_path: Path) -> None:
    init = tmp_path / "init.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (72, 64, 3), dtype=np.uint8)).save(init)
    out = tmp_path / "out.png"
    result = run_cli("generate", *_model_args("sd1", "folder"), "--family", "sd1", "-p", "a red fox", "--steps", "2",
                     "--seed", "3", "--init-image", str(init), "--strength", "0.6", "--out", str(out))
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.size == (64, 72)  # the init image's size, not the family's default
    assert "Denoising strength: 0.6" in image.text["parameters"]


def test_mask_without_init_image_is_refused_before_loading(run_cli: Any, tmp_path: Path) -> None:
    mask = tmp_path / "mask.png"
    Image.new("L", (64, 64), 255).save(mask)
    result = run_cli("generate", "civitai:1", "-p", "x", "--mask", str(mask))
    assert result.exit_code != 0 and "a mask needs an image to paint into" in result.stderr
    assert "Traceback" not in result.output + result.stderr

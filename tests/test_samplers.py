"""Samplers: names users type resolve, each builds the right diffusers scheduler, families are enforced."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from hub import hookimpl, plugins
from hub.errors import SamplerError
from hub.running.samplers import Sampler, SchedulerRecipe, SchedulerSampler, get_sampler, samplers_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ISSUE_NAMES = ["euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "lms", "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_sde",
               "dpmpp_2m_sde", "ddim", "unipc", "lcm"]


def test_every_name_from_the_issue_is_registered() -> None:
    for name in ISSUE_NAMES:
        assert get_sampler(name).name == name


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("Euler a", "euler_a"), ("euler_ancestral", "euler_a"), ("DPM++ 2M Karras", "dpmpp_2m_karras"),
     ("dpm++ 2m karras", "dpmpp_2m_karras"), ("dpm_2_ancestral", "dpm_2_a"), ("UniPC", "unipc"), ("uni_pc", "unipc"),
     ("DPM++ 2M SDE Karras", "dpmpp_2m_sde_karras"), ("PLMS", "plms")],
)
def test_a1111_and_comfy_aliases(typed: str, expected: str) -> None:
    assert get_sampler(typed).name == expected


def test_sampler_a_family_cannot_use_lists_the_ones_it_can() -> None:
    with pytest.raises(SamplerError) as err:
        get_sampler("euler_a", "sd3")
    message = str(err.value)
    assert "'euler_a' cannot run a sd3 model" in message
    for flow_name in ("euler", "heun", "dpmpp_2m", "unipc"):
        assert flow_name in message.split("samplers for sd3:")[1]
    assert "euler_a" not in message.split("samplers for sd3:")[1]


def test_unknown_sampler_lists_known_ones() -> None:
    with pytest.raises(SamplerError, match="unknown sampler 'nope'.*dpmpp_2m_karras"):
        get_sampler("nope", "sd1")


def test_flow_family_gets_only_flow_capable_samplers() -> None:
    sd3 = {s.name for s in samplers_for("sd3")}
    assert {"euler", "heun", "dpmpp_2m", "unipc"} <= sd3
    assert not {"euler_a", "dpmpp_2m_karras", "ddim", "lcm"} & sd3
    assert {"euler_a", "dpmpp_2m_karras", "ddim", "lcm"} <= {s.name for s in samplers_for("sdxl")}


def test_sampler_base_class_is_abstract_and_registry_checks_type(plugin_registration: Any) -> None:
    with pytest.raises(TypeError):
        Sampler(name="x")  # type: ignore[abstract]

    class NotASampler:
        name = "impostor"

    class BadPlugin:
        @hookimpl
        def register_samplers(self, register: Any) -> None:
            register(NotASampler())

    plugin_registration(BadPlugin(), "bad-sampler-plugin")
    assert plugins.get_registry("samplers").get("impostor") is None
    assert any("impostor" in p or "NotASampler" in p for p in plugins.problems())


# -- building schedulers (needs diffusers) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_configs() -> dict[str, dict[str, Any]]:
    diffusers = pytest.importorskip("diffusers")
    sd15 = diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    sdxl = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            steps_offset=1, timestep_spacing="leading")
    sd2v = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   prediction_type="v_prediction")
    sd3 = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)

    def cfg(s: Any) -> dict[str, Any]:
        return {**dict(s.config), "_class_name": type(s).__name__}

    return {"sd1": cfg(sd15), "sdxl": cfg(sdxl), "sd2": cfg(sd2v), "sd3": cfg(sd3)}


@pytest.mark.parametrize(
    ("name", "family", "cls", "options"),
    [
        ("euler", "sd1", "EulerDiscreteScheduler", {"use_karras_sigmas": False}),
        ("euler_a", "sdxl", "EulerAncestralDiscreteScheduler", {}),
        ("dpmpp_2m", "sd1", "DPMSolverMultistepScheduler", {"use_karras_sigmas": False, "algorithm_type": "dpmsolver++"}),
        ("dpmpp_2m_karras", "sdxl", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"}),
        ("dpmpp_2m_sde_karras", "sd1", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}),
        ("dpm_2_a_karras", "sd1", "KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
        ("ddim", "sd2", "DDIMScheduler", {"prediction_type": "v_prediction"}),
        ("euler", "sd3", "FlowMatchEulerDiscreteScheduler", {"shift": 3.0}),
        ("heun", "sd3", "FlowMatchHeunDiscreteScheduler", {"shift": 3.0}),
        ("dpmpp_2m", "sd3", "DPMSolverMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0}),
        ("unipc", "sd3", "UniPCMultistepScheduler", {"use_flow_sigmas": True, "flow_shift": 3.0}),
    ],
)
def test_sampler_builds_the_right_scheduler(base_configs: dict[str, Any], name: str, family: str, cls: str, options: dict[str, Any]) -> None:
    scheduler = get_sampler(name, family).build(base_configs[family], family)
    assert type(scheduler).__name__ == cls
    for key, value in options.items():
        assert scheduler.config[key] == value, key
    if family != "sd3":  # the model's betas survive (from_config)
        assert scheduler.config["beta_schedule"] == "scaled_linear"
        assert scheduler.config["beta_end"] == pytest.approx(0.012)
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) >= 4


def test_the_sampler_not_the_models_saved_scheduler_picks_the_schedule() -> None:
    """Many models ship "DPM++ 2M SDE Karras" as their scheduler: "Euler" on them is still plain Euler."""
    diffusers = pytest.importorskip("diffusers")
    shipped = diffusers.DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                    use_karras_sigmas=True, algorithm_type="sde-dpmsolver++",
                                                    timestep_spacing="leading", prediction_type="v_prediction")
    base = {**dict(shipped.config), "_class_name": type(shipped).__name__}
    expected = {"euler": (False, None), "dpmpp_2m": (False, "dpmsolver++"), "dpmpp_2m_karras": (True, "dpmsolver++"),
                "dpmpp_2m_sde": (False, "sde-dpmsolver++"), "deis": (False, "deis"), "heun": (False, None)}
    for name, (karras, algorithm) in expected.items():
        scheduler = get_sampler(name, "sdxl").build(base, "sdxl")
        assert bool(getattr(scheduler.config, "use_karras_sigmas", False)) is karras, name
        assert scheduler.config.get("algorithm_type") == algorithm, name
        assert scheduler.config.prediction_type == "v_prediction", name  # the model's own options survive
        assert scheduler.config.timestep_spacing == "leading", name


def test_every_builtin_sampler_builds_for_every_family_it_serves(base_configs: dict[str, Any]) -> None:
    import importlib.util

    built = 0
    for sampler in plugins.get_registry("samplers"):
        for family in ("sd1", "sdxl", "sd3"):
            if not sampler.serves(family):
                continue
            recipe = sampler.recipe_for(family, base_configs[family]) if isinstance(sampler, SchedulerSampler) else None
            if recipe and any(importlib.util.find_spec(m) is None for m in recipe.requires):
                with pytest.raises(SamplerError, match="pip install"):
                    sampler.build(base_configs[family], family)
                continue
            scheduler = sampler.build(base_configs[family], family)
            scheduler.set_timesteps(3)
            built += 1
    assert built > 40


def test_recipe_option_the_class_does_not_take_is_a_clear_error(base_configs: dict[str, Any]) -> None:
    bad = SchedulerSampler(name="bad", recipes={"eps": SchedulerRecipe("DDIMScheduler", {"use_karras_sigmas": True})})
    with pytest.raises(SamplerError, match="DDIMScheduler does not accept option 'use_karras_sigmas'"):
        bad.build(base_configs["sd1"], "sd1")


# -- CLI ------------------------------------------------------------------------------------------------------


def test_samplers_command_lists_aliases_and_families(run_cli: Any) -> None:
    result = run_cli("samplers")
    assert result.exit_code == 0
    line = next(l for l in result.output.splitlines() if l.startswith("euler_a "))
    assert "Euler a" in line and "sdxl" in line and "euler_ancestral" in line


def test_samplers_command_json_filtered_by_family(run_cli: Any) -> None:
    result = run_cli("samplers", "--family", "sd3", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    names = {d["name"] for d in data}
    assert "euler" in names and "euler_a" not in names
    assert all("sd3" in d["families"] for d in data)
    euler = next(d for d in data if d["name"] == "euler")
    assert euler["label"] == "Euler" and "k_euler" in euler["aliases"]


def test_a_plugin_sampler_shows_up_in_the_listing(run_cli: Any, plugin_registration: Any) -> None:
    @dataclass
    class Mine(Sampler):
        def build(self, base: Any, family: str | None = None) -> Any:
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def register_samplers(self, register: Any) -> None:
            register(Mine(name="my_sampler", families=("sd1",), aliases=("My Sampler",)))

    plugin_registration(Plugin(), "my-sampler-plugin")
    data = json.loads(run_cli("samplers", "--json").output)
    mine = next(d for d in data if d["name"] == "my_sampler")
    assert mine["families"] == ["sd1"] and mine["aliases"] == ["My Sampler"]
    assert get_sampler("My Sampler", "sd1").name == "my_sampler"


def test_runtime_modules_and_listing_do_not_import_torch() -> None:
    """`import hub` and listing samplers/pipelines stay light: torch/diffusers load only for a run."""
    import subprocess
    import sys

    code = (
        "import sys, hub, hub.samplers, hub.pipelines, hub.running.samplers, hub.running.runtime, hub.cli.runtime_cmds\n"
        "from hub import plugins\n"
        "assert len(plugins.get_registry('samplers')) > 20 and len(plugins.get_registry('pipelines')) >= 3\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""

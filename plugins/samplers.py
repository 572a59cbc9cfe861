"""Built-in samplers: the names A1111 and ComfyUI users know, mapped to diffusers schedulers.

The table follows diffusers' own A1111/k-diffusion correspondence: "Karras" variants set
``use_karras_sigmas``, SDE variants pick the SDE algorithm. Flow-matching models (SD3) get their own
recipes under the same names where a flow equivalent exists ("euler" = FlowMatchEuler, the "Euler"
Forge and ComfyUI run Flux with), and the multistep solvers run in flow mode (``use_flow_sigmas``, ``flow_prediction``, the model's shift).
Every scheduler is built with ``from_config(model scheduler config, **options)`` so the model's
betas / prediction type / shift are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub import hookimpl
from hub.running.samplers import FromBase, SchedulerRecipe, SchedulerSampler, families_of_kinds

KARRAS = {"use_karras_sigmas": True}
# Flow mode of the multistep solvers; flow_shift comes from the model's own scheduler (SD3: 3.0).
FLOW_SOLVER = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": FromBase("shift", 3.0)}


def _recipe(class_name: str, *options: Mapping[str, Any], requires: tuple[str, ...] = ()) -> SchedulerRecipe:
    merged: dict[str, Any] = {}
    for opt in options:
        merged.update(opt)
    return SchedulerRecipe(class_name, merged, requires)


def _sampler(
    name: str,
    label: str,
    eps: SchedulerRecipe | None,
    flow: SchedulerRecipe | None = None,
    aliases: tuple[str, ...] = (),
    description: str = "",
    not_for: tuple[str, ...] = (),
) -> SchedulerSampler:
    recipes = {k: r for k, r in (("eps", eps), ("flow", flow)) if r is not None}
    families = tuple(f for f in families_of_kinds(recipes) if f not in not_for)
    return SchedulerSampler(
        name=name, label=label, aliases=(label, *aliases), recipes=recipes, description=description, families=families
    )


DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
DPMPP_2M_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}


def builtin_samplers() -> list[SchedulerSampler]:
    """The built-in table; a function so tests and docs can list it without the plugin manager."""
    return [
        _sampler(
            "euler", "Euler",
            _recipe("EulerDiscreteScheduler"),
            _recipe("FlowMatchEulerDiscreteScheduler"),
            aliases=("k_euler",),
        ),
        _sampler(
            "euler_karras", "Euler Karras",
            _recipe("EulerDiscreteScheduler", KARRAS),
            _recipe("FlowMatchEulerDiscreteScheduler", KARRAS),
        ),
        _sampler(
            "euler_a", "Euler a",
            _recipe("EulerAncestralDiscreteScheduler"),
            aliases=("euler_ancestral", "k_euler_a", "k_euler_ancestral"),
        ),
        _sampler(
            "heun", "Heun",
            _recipe("HeunDiscreteScheduler"),
            _recipe("FlowMatchHeunDiscreteScheduler"),
            aliases=("k_heun",),
            # FluxPipeline hands the scheduler its own sigmas and shift (mu); FlowMatchHeun takes neither
            not_for=("flux",),
        ),
        _sampler("heun_karras", "Heun Karras", _recipe("HeunDiscreteScheduler", KARRAS)),
        _sampler("dpm_2", "DPM2", _recipe("KDPM2DiscreteScheduler"), aliases=("k_dpm_2",)),
        _sampler("dpm_2_karras", "DPM2 Karras", _recipe("KDPM2DiscreteScheduler", KARRAS)),
        _sampler(
            "dpm_2_a", "DPM2 a",
            _recipe("KDPM2AncestralDiscreteScheduler"),
            aliases=("dpm_2_ancestral", "k_dpm_2_a"),
        ),
        _sampler(
            "dpm_2_a_karras", "DPM2 a Karras",
            _recipe("KDPM2AncestralDiscreteScheduler", KARRAS),
            aliases=("dpm_2_ancestral_karras",),
        ),
        _sampler("lms", "LMS", _recipe("LMSDiscreteScheduler", requires=("scipy",)), aliases=("k_lms",)),
        _sampler("lms_karras", "LMS Karras", _recipe("LMSDiscreteScheduler", KARRAS, requires=("scipy",))),
        _sampler(
            "dpmpp_2m", "DPM++ 2M",
            _recipe("DPMSolverMultistepScheduler", DPMPP_2M),
            _recipe("DPMSolverMultistepScheduler", DPMPP_2M, FLOW_SOLVER),
            aliases=("k_dpmpp_2m",),
        ),
        _sampler(
            "dpmpp_2m_karras", "DPM++ 2M Karras",
            _recipe("DPMSolverMultistepScheduler", DPMPP_2M, KARRAS),
            aliases=("dpmpp_2m_k", "k_dpmpp_2m_ka"),
        ),
        _sampler(
            "dpmpp_2m_sde", "DPM++ 2M SDE",
            _recipe("DPMSolverMultistepScheduler", DPMPP_2M_SDE),
        ),
        _sampler(
            "dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras",
            _recipe("DPMSolverMultistepScheduler", DPMPP_2M_SDE, KARRAS),
            aliases=("dpmpp_2m_sde_k",),
        ),
        _sampler(
            "dpmpp_3m", "DPM++ 3M",
            _recipe("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}),
        ),
        # A1111's DPM++ SDE is k-diffusion's Brownian-tree sampler: diffusers' DPMSolverSDEScheduler,
        # which needs torchsde. Without it the sampler says so instead of silently running another one.
        _sampler(
            "dpmpp_sde", "DPM++ SDE",
            _recipe("DPMSolverSDEScheduler", requires=("torchsde",)),
        ),
        _sampler(
            "dpmpp_sde_karras", "DPM++ SDE Karras",
            _recipe("DPMSolverSDEScheduler", KARRAS, requires=("torchsde",)),
        ),
        _sampler(
            "dpmpp_2s_a", "DPM++ 2S a",
            _recipe("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
            aliases=("dpmpp_2s_ancestral",),
            description="closest diffusers equivalent (single-step DPM++), not ancestral",
        ),
        _sampler("ddim", "DDIM", _recipe("DDIMScheduler")),
        _sampler("ddpm", "DDPM", _recipe("DDPMScheduler")),
        _sampler("plms", "PLMS", _recipe("PNDMScheduler", {"skip_prk_steps": True}), aliases=("pndm",)),
        _sampler(
            "unipc", "UniPC",
            _recipe("UniPCMultistepScheduler"),
            _recipe("UniPCMultistepScheduler", FLOW_SOLVER),
            aliases=("uni_pc", "uni_pc_bh2"),
        ),
        _sampler(
            "deis", "DEIS",
            _recipe("DEISMultistepScheduler"),
            _recipe("DEISMultistepScheduler", FLOW_SOLVER),
        ),
        _sampler("lcm", "LCM", _recipe("LCMScheduler"), description="needs LCM-distilled weights or an LCM LoRA"),
        _sampler("tcd", "TCD", _recipe("TCDScheduler"), description="needs TCD weights or a TCD LoRA"),
    ]


@hookimpl
def register_samplers(register: Any) -> None:
    for sampler in builtin_samplers():
        register(sampler)

"""An sdhub plugin that adds A1111's "DPM++ 3M SDE Karras" sampler.

Install it next to sdhub (``pip install -e examples/sdhub-sampler-example``), then::

    sdhub samplers --family sdxl          # lists dpmpp_3m_sde_karras
    sdhub generate MODEL --prompt "a cat" --sampler "DPM++ 3M SDE Karras"
"""

from __future__ import annotations

from typing import Any

from hub import hookimpl
from hub.running.samplers import SchedulerRecipe, SchedulerSampler


@hookimpl
def register_samplers(register: Any) -> None:
    register(
        SchedulerSampler(
            name="dpmpp_3m_sde_karras",
            label="DPM++ 3M SDE Karras",
            aliases=("DPM++ 3M SDE Karras", "dpmpp_3m_sde_k"),
            description="third-order SDE DPM-Solver++ with Karras sigmas",
            recipes={
                # "eps" = models trained to predict noise (SD1.x, SD2.x, SDXL). No "flow" recipe,
                # so sdhub refuses it for SD3/Flux with a list of the samplers they can use.
                "eps": SchedulerRecipe(
                    "DPMSolverMultistepScheduler",
                    {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_karras_sigmas": True},
                ),
            },
        )
    )

"""Pipelines: what loads a model of a given family and kind and turns prompts into images.

A :class:`Pipeline` is registered by a plugin (``register_pipelines``) and chosen by
:mod:`hub.running.runtime` from the model's *identified* family, never from its file name. ``load`` returns
a :class:`Runner`, the loaded model ready to ``generate``. The data classes here are what the
runtime hands a pipeline, so a third-party pipeline needs nothing else from sdhub.

No torch or diffusers at import time: these are plain classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PipelineError

#: Called after each denoising step with (step number starting at 1, total steps).
StepCallback = Callable[[int, int], None]


@dataclass
class ModelToRun:
    """A resolved, identified model file (or diffusers folder)."""

    path: Path
    family: str
    kind: str = "checkpoint"
    variant: str | None = None
    format: str = "safetensors"  # "safetensors", "ckpt" or "diffusers"
    name: str = ""
    identification: Any = None  # hub.identify.Identification when identification ran
    sha256: str | None = None  # when already known (catalogue), saves hashing for the infotext

    @property
    def is_diffusers_folder(self) -> bool:
        return self.format == "diffusers" or self.path.is_dir()


@dataclass
class LoraToApply:
    """A LoRA file checked compatible with the model, and the weight to apply it with."""

    path: Path
    weight: float = 1.0
    name: str = ""
    identification: Any = None
    autov3: str | None = None


@dataclass
class RunOptions:
    """How to load: where single-file configs come from, memory and speed options."""

    config_dir: Path | None = None
    cpu_offload: str | None = None  # None, "model" (one whole model on the GPU at a time) or "sequential" (layer by layer)
    vae_tiling: bool = False
    vae_slicing: bool = False  # decode a batch one image at a time
    attention_slicing: bool = False  # attention in slices: less peak memory, slower
    compile: bool = False
    refiner: ModelToRun | None = None
    refiner_switch: float = 0.8  # fraction of the steps the base model takes before the refiner
    offline: bool = False  # never fetch configs, only use --config-dir or the cache
    #: Separately downloaded parts by role ("clip_l", "t5", "vae"): from --text-encoders/--vae or the catalogue.
    parts: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerateRequest:
    """One generation call. ``sampler`` is a :class:`hub.samplers.Sampler` or None for the default.

    With ``init_image`` (a PIL image already at ``width`` x ``height``) it is img2img, denoising ``strength`` of the
    way from the image; with a ``mask`` too (white = repaint) it is inpainting.
    """

    prompt: str
    negative_prompt: str = ""
    steps: int = 25
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = 0
    num_images: int = 1
    sampler: Any = None
    on_step: StepCallback | None = None
    init_image: Any = None
    strength: float = 0.75
    mask: Any = None
    guidance: float | None = None  # Flux dev's distilled guidance (None: the family has none)


@dataclass(frozen=True)
class Defaults:
    """What a family runs best with when the user does not say."""

    width: int = 512
    height: int = 512
    steps: int = 25
    cfg: float = 7.0
    sampler: str = "euler"
    guidance: float | None = None  # distilled guidance (Flux dev); None where the model has none


class Runner(ABC):
    """A loaded model: call :meth:`generate` as often as needed."""

    family: str = ""
    defaults: Defaults = Defaults()

    @abstractmethod
    def generate(self, request: GenerateRequest) -> list[Any]:
        """Run txt2img and return PIL images (one per ``request.num_images``)."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract on purpose
        """Free memory held by the model (optional)."""


@dataclass
class Pipeline(ABC):
    """A registered pipeline: which families/kinds it runs, and how to load them."""

    name: str
    families: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("checkpoint",)
    aliases: tuple[str, ...] = ()
    description: str = ""
    defaults: Defaults = field(default_factory=Defaults)
    #: Parts a model file may leave out, by role ("clip_l", "t5", "vae"): the runtime takes them from
    #: --text-encoders/--vae, else finds them in the catalogue, and hands them over in ``RunOptions.parts``.
    parts: tuple[str, ...] = ()

    def runs(self, family: str, kind: str) -> bool:
        return family in self.families and kind in self.kinds

    def defaults_for(self, family: str, variant: str | None = None) -> Defaults:
        """Size, steps, CFG and sampler to use for ``family`` (and ``variant``) when the user does not say."""
        return self.defaults

    @abstractmethod
    def load(
        self,
        model: ModelToRun,
        loras: list[LoraToApply],
        device: str,
        dtype: str,
        options: RunOptions,
    ) -> Runner:
        """Load ``model`` with ``loras`` merged in, on ``device`` in ``dtype`` ("fp32", "fp16", "bf16")."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "families": list(self.families),
            "kinds": list(self.kinds),
            "aliases": list(self.aliases),
            "description": self.description,
            "defaults": {
                "width": self.defaults.width,
                "height": self.defaults.height,
                "steps": self.defaults.steps,
                "cfg": self.defaults.cfg,
                "sampler": self.defaults.sampler,
            },
        }


def _registry() -> Any:
    from .. import plugins

    return plugins.get_registry("pipelines")


def all_pipelines() -> list[Pipeline]:
    return list(_registry())


def pipeline_for(family: str, kind: str = "checkpoint") -> Pipeline:
    """The pipeline that runs ``family``/``kind``; the error lists what can be run instead."""
    candidates = list(_registry())
    for pipe in candidates:
        if pipe.runs(family, kind):
            return pipe
    runnable = sorted({f"{f}/{k}" for p in candidates for f in p.families for k in p.kinds})
    raise PipelineError(
        f"no pipeline runs a {family} {kind}; pipelines run: {', '.join(runnable) or '(none registered)'}"
        + ("" if family not in ("unknown", "") else " (pass --family to say what the model is)")
    )


__all__ = [
    "Defaults",
    "GenerateRequest",
    "LoraToApply",
    "ModelToRun",
    "Pipeline",
    "RunOptions",
    "Runner",
    "StepCallback",
    "all_pipelines",
    "pipeline_for",
]

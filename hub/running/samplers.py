"""Samplers: a name users know ("Euler a", "DPM++ 2M Karras") mapped to a diffusers scheduler.

A sampler is keyed by name, but what a name means depends on how the model was trained: "euler" on
SD1.5 is ``EulerDiscreteScheduler`` (noise prediction), on SD3 it is
``FlowMatchEulerDiscreteScheduler`` (rectified flow). So one :class:`SchedulerSampler` carries a
recipe per *schedule kind* ("eps" for SD1/SD2/SDXL, "flow" for SD3) and serves the families of the
kinds it has recipes for. A sampler asked for a family it does not serve raises
:class:`~hub.errors.SamplerError` listing the samplers that family can use.

torch and diffusers are imported only inside :meth:`Sampler.build`, so listing samplers is cheap.
"""

from __future__ import annotations

import importlib.util
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SamplerError

#: Which noise schedule each family was trained with. Samplers declare recipes per schedule kind.
FAMILY_SCHEDULE: dict[str, str] = {
    "sd1": "eps",
    "sd2": "eps",  # v-prediction models keep prediction_type through from_config
    "sdxl": "eps",
    "sdxl_refiner": "eps",
    "sd3": "flow",
    "flux": "flow",
}

ANY_FAMILY = "*"

#: Base-config options that belong to the sampler, not the model: the sigma schedule (Karras,
#: exponential, beta) and the DPM-Solver algorithm. A model saved with "DPM++ 2M SDE Karras" as its
#: scheduler must not turn "Euler" into Euler Karras, nor make DEIS refuse the SDE algorithm; recipes
#: that want one of these set it themselves. Betas, prediction type, spacing and shift stay.
SAMPLER_OWNED_OPTIONS = frozenset({"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                   "algorithm_type"})


def schedule_kind(family: str) -> str | None:
    """"eps" or "flow" for a known family, None otherwise."""
    return FAMILY_SCHEDULE.get(family)


def families_of_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    wanted = set(kinds)
    return tuple(f for f, k in FAMILY_SCHEDULE.items() if k in wanted)


@dataclass
class Sampler(ABC):
    """A registered sampler. Subclass it and implement :meth:`build` (see :class:`SchedulerSampler`).

    ``families`` lists the model families it serves ("*" for any); ``label`` is the name written
    to the PNG infotext (A1111's display name, so Civitai and the UIs recognise it).
    """

    name: str
    families: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    label: str = ""
    description: str = ""

    def serves(self, family: str) -> bool:
        return ANY_FAMILY in self.families or family in self.families

    @property
    def display_name(self) -> str:
        return self.label or self.name

    @abstractmethod
    def build(self, base: Any, family: str | None = None) -> Any:
        """Return a diffusers scheduler for a pipeline whose own scheduler (or its config) is ``base``.

        Build from ``base``'s config so that the model's betas, prediction type and shift survive.
        """

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.display_name,
            "aliases": list(self.aliases),
            "families": list(self.families),
            "description": self.description,
        }


@dataclass(frozen=True)
class FromBase:
    """A recipe option whose value is read from the base scheduler's config (e.g. SD3's ``shift``)."""

    key: str
    default: Any = None


@dataclass(frozen=True)
class SchedulerRecipe:
    """One diffusers scheduler class, the options to build it with, and modules it needs."""

    class_name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()


@dataclass
class SchedulerSampler(Sampler):
    """A sampler defined by data: a diffusers scheduler recipe per schedule kind ("eps", "flow")."""

    recipes: Mapping[str, SchedulerRecipe] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.families:
            self.families = families_of_kinds(self.recipes)

    def recipe_for(self, family: str | None, base_config: Mapping[str, Any]) -> SchedulerRecipe:
        kind = schedule_kind(family) if family else None
        if kind is None:  # unknown family: judge by the base scheduler itself
            kind = "flow" if _is_flow_config(base_config) else "eps"
        recipe = self.recipes.get(kind)
        if recipe is None:
            raise SamplerError(
                f"sampler {self.name!r} has no {kind} variant, so it cannot run a {family or kind} model"
            )
        return recipe

    def build(self, base: Any, family: str | None = None) -> Any:
        config = scheduler_config(base)
        recipe = self.recipe_for(family, config)
        missing = [m for m in recipe.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise SamplerError(
                f"sampler {self.name!r} needs the Python package(s) {', '.join(missing)}: "
                f"pip install {' '.join(missing)}"
            )
        import diffusers

        cls = getattr(diffusers, recipe.class_name, None)
        if cls is None:
            raise SamplerError(
                f"sampler {self.name!r} needs diffusers.{recipe.class_name}, which this diffusers "
                f"({diffusers.__version__}) does not have"
            )
        params = inspect.signature(cls.__init__).parameters
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        options: dict[str, Any] = {}
        for key, value in recipe.options.items():
            if not open_ended and key not in params:
                raise SamplerError(
                    f"sampler {self.name!r}: {recipe.class_name} does not accept option {key!r} "
                    f"in diffusers {diffusers.__version__}"
                )
            options[key] = config.get(value.key, value.default) if isinstance(value, FromBase) else value
        # Keys of the base config that this class does not know are ignored by from_config.
        model_config = {k: v for k, v in config.items() if k not in SAMPLER_OWNED_OPTIONS}
        try:
            return cls.from_config(model_config, **options)
        except ImportError as exc:  # diffusers' optional backends (scipy, torchsde)
            raise SamplerError(f"sampler {self.name!r} cannot be built: {str(exc).strip()}") from exc
        except (ValueError, TypeError, NotImplementedError) as exc:  # options this model's config cannot take
            raise SamplerError(f"sampler {self.name!r} cannot be built for this model: {exc}") from exc


def _is_flow_config(config: Mapping[str, Any]) -> bool:
    cls_name = str(config.get("_class_name", ""))
    return cls_name.startswith("FlowMatch") or config.get("prediction_type") == "flow_prediction"


def scheduler_config(base: Any) -> dict[str, Any]:
    """The config dict of a scheduler, a pipeline, or a config mapping."""
    if hasattr(base, "scheduler") and hasattr(base.scheduler, "config"):
        base = base.scheduler
    config = getattr(base, "config", base)
    if not isinstance(config, Mapping):
        raise SamplerError(f"cannot read a scheduler config from {type(base).__name__}")
    out = dict(config)
    if "_class_name" not in out and hasattr(base, "__class__") and not isinstance(base, Mapping):
        out["_class_name"] = type(base).__name__
    return out


# -- lookup through the plugin registry ------------------------------------------------------------


def _registry() -> Any:
    from .. import plugins

    return plugins.get_registry("samplers")


def all_samplers() -> list[Sampler]:
    return list(_registry())


def samplers_for(family: str) -> list[Sampler]:
    """Every registered sampler that can run a model of ``family``."""
    return [s for s in _registry() if s.serves(family)]


def get_sampler(name: str, family: str | None = None) -> Sampler:
    """The sampler called ``name`` (or an alias), checked against ``family``; clear errors otherwise."""
    registry = _registry()
    sampler = registry.get(name)
    usable = sorted(s.name for s in registry if family is None or s.serves(family))
    if sampler is None:
        where = f" for {family}" if family else ""
        raise SamplerError(
            f"unknown sampler {name!r}; samplers{where}: {', '.join(usable) or '(none registered)'}"
        )
    if family is not None:
        require_serves(sampler, family)
    return sampler


def require_serves(sampler: Sampler, family: str) -> None:
    """Raise a SamplerError listing the samplers ``family`` can use when ``sampler`` cannot run it."""
    if sampler.serves(family):
        return
    usable = sorted(s.name for s in _registry() if s.serves(family))
    raise SamplerError(
        f"sampler {sampler.name!r} cannot run a {family} model (it serves "
        f"{', '.join(sampler.families) or 'no family'}); samplers for {family}: "
        f"{', '.join(usable) or '(none registered)'}"
    )


__all__ = [
    "ANY_FAMILY",
    "FAMILY_SCHEDULE",
    "SAMPLER_OWNED_OPTIONS",
    "FromBase",
    "Sampler",
    "SchedulerRecipe",
    "SchedulerSampler",
    "all_samplers",
    "get_sampler",
    "require_serves",
    "samplers_for",
    "schedule_kind",
    "scheduler_config",
]

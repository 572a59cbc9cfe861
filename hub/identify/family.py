"""The family table's item type, and small helpers family matchers share.

A :class:`Family` is data plus up to three matchers, one per kind of input:

- ``match(view)``: a model's tensors (checkpoint, bare UNet/DiT) -> :class:`FamilyMatch` or None;
- ``match_lora(lora_view)``: a LoRA's adapted layers -> the family it targets, or None;
- ``match_config(configs)``: a diffusers folder's ``model_index.json`` and component configs.

and optionally ``refute_lora(lora_view)``: why a LoRA's measured layers rule this family out (a
cross-attention width no variant of it has), or None; and ``lora_fits(lora_view)``: why the layers
could be this family's when no matcher singles one out (a CLIP-G-only LoRA fits SDXL and SD3), which
makes the family one of an unknown LoRA's ``candidates``. A LoRA no matcher places takes its family
from metadata only when the named family's ``refute_lora`` has nothing against it: a Kolors LoRA
trained with an SDXL script says ``sdxl_base_v1-0`` but its 4096-wide cross-attention does not fit.

Built-in families live in ``hub_plugins.families`` and arrive through the plugin manager like any
third-party family (``register_families`` hook), so a plugin can add an architecture or, with a
higher ``priority`` or ``override=True``, refine an existing one. Matchers must be cheap (they run
for every file): look keys up with :class:`~hub.identify.view.HeaderView` rather than looping over
names, and return evidence naming the key, shape or metadata value that decided.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import Evidence

if TYPE_CHECKING:  # pragma: no cover
    from .lora import LoraView
    from .view import HeaderView

DiffusersConfigs = dict[str, dict[str, Any]]


@dataclass
class FamilyMatch:
    """A matcher's answer: the variant (None when there is none or it cannot be told), the
    diffusion-model component it recognised (``unet`` / ``dit``), facts measured, and the evidence."""

    variant: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


MatchFn = Callable[["HeaderView"], "FamilyMatch | None"]
LoraMatchFn = Callable[["LoraView"], "FamilyMatch | None"]
ConfigMatchFn = Callable[[DiffusersConfigs], "FamilyMatch | None"]
LoraRefuteFn = Callable[["LoraView"], "str | None"]


@dataclass(frozen=True, eq=False)
class Family:
    """One model family (architecture) identification knows.

    ``latent_channels``, ``text_encoders`` (``clip_l`` ``clip_h`` ``clip_g`` ``t5``) and
    ``embedding_widths`` (the token-vector widths its textual-inversion embeddings have, e.g.
    ``(768, 1280)`` for SDXL's clip_l + clip_g pair) say which standalone VAEs, text encoders and
    embeddings fit it. ``metadata_ids`` are regular expressions (case-insensitive, full match) for
    the base-model names training tools write in ``ss_base_model_version`` and
    ``modelspec.architecture`` (without its ``/lora`` suffix); they are supporting evidence, and
    decide only when the shapes cannot. Higher ``priority`` matchers run first. ``runnable`` is
    False for families sdhub identifies but has no pipeline for (FLUX.2, Qwen-Image, Wan...): files
    of them are named for what they are, and ``Identification.runnable`` says sdhub cannot run them.
    """

    name: str
    match: MatchFn
    match_lora: LoraMatchFn | None = None
    match_config: ConfigMatchFn | None = None
    aliases: tuple[str, ...] = ()
    priority: int = 0
    title: str = ""
    latent_channels: int | None = None
    text_encoders: tuple[str, ...] = ()
    embedding_widths: tuple[int, ...] = ()
    metadata_ids: tuple[str, ...] = ()
    refute_lora: LoraRefuteFn | None = None
    runnable: bool = True
    lora_fits: LoraRefuteFn | None = None

    def claimed_by(self, metadata: dict[str, str]) -> str | None:
        """The metadata entry that names this family (``key=value``), or None."""
        for key, value in base_model_claims(metadata):
            for pattern in self.metadata_ids:
                if re.fullmatch(pattern, value, flags=re.IGNORECASE):
                    return f"{key}={metadata[key]}"
        return None

    def __repr__(self) -> str:
        return f"Family({self.name!r}, priority={self.priority})"


_ARCH_SUFFIX = re.compile(r"/(lora|lycoris|textual-inversion|vae|controlnet|control-lora|ip-adapter).*$", re.IGNORECASE)


def base_model_claims(metadata: dict[str, str]) -> list[tuple[str, str]]:
    """(key, normalised value) of the metadata entries that name a base model."""
    out = []
    arch = metadata.get("modelspec.architecture")
    if arch:
        out.append(("modelspec.architecture", _ARCH_SUFFIX.sub("", arch.strip()).lower()))
    base = metadata.get("ss_base_model_version")
    if base:
        out.append(("ss_base_model_version", base.strip().lower()))
    return out


# -- helpers for matchers ------------------------------------------------------------------------
def shape_evidence(view: HeaderView, key: str, what: str, value: Any, note: str = "") -> Evidence:
    """Evidence citing ``key`` and its shape as written in the file."""
    shape = view.shape(key)
    text = f"{view.full(key)} shape {list(shape) if shape is not None else None}"
    return Evidence(what, value, f"{text}{': ' + note if note else ''}")


def in_channels_variant(in_channels: int | None) -> str | None:
    """The UNet input-channel convention: 9 = inpaint, 8 = instruct-pix2pix, 5 = depth, 4 = plain."""
    return {9: "inpaint", 8: "instruct-pix2pix", 5: "depth"}.get(in_channels or 4)


def prediction_from_metadata(metadata: dict[str, str]) -> tuple[str, str] | None:
    """("v" | "eps", because) when the metadata states the prediction type, else None.

    ModelSpec ``prediction_type``, ``modelspec.architecture`` ``*-768-v``, kohya's
    ``ss_base_model_version`` ``sd_v2_v``/``sd_v2_768_v``/``sd_v1_v`` and ``ss_v_parameterization``.
    """
    pred = metadata.get("modelspec.prediction_type", "").strip().lower()
    if pred in ("v", "v_prediction", "v-prediction", "vpred", "v_pred"):
        return "v", f"modelspec.prediction_type={metadata['modelspec.prediction_type']}"
    if pred in ("epsilon", "eps"):
        return "eps", f"modelspec.prediction_type={metadata['modelspec.prediction_type']}"
    arch = metadata.get("modelspec.architecture", "").strip().lower()
    if re.search(r"-v2-768-v(/|$)|-v(/|$)", arch) and arch.startswith("stable-diffusion-v"):
        return "v", f"modelspec.architecture={metadata['modelspec.architecture']}"
    base = metadata.get("ss_base_model_version", "").strip().lower()
    if re.fullmatch(r"sd_v[12](_768)?_v", base):
        return "v", f"ss_base_model_version={metadata['ss_base_model_version']}"
    if metadata.get("ss_v_parameterization", "").strip().lower() == "true":
        return "v", "ss_v_parameterization=True"
    return None

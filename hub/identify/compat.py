"""Does an add-on fit a base model? Decided from two Identifications (no registry, no files).

Rules, each from the shapes identification measured:

- LoRA: its target family must be the base's family (an SD1.5 LoRA's layers have 768-wide
  cross-attention inputs; an SDXL UNet's have 2048). When the family's LoRA matcher found that the
  layer widths need one variant (``details.requires_variant``: SD3 Medium vs Large, hidden 1536 vs
  2432) the base must be that variant. Flux dev and schnell share shapes, so Flux LoRAs fit both.
- VAE / text encoder / embedding: the base's family must be among the add-on's ``candidates``
  (a 4-channel VAE fits SD1, SD2 and SDXL; a 16-channel one SD3 and Flux).
- A checkpoint is not an add-on; an unknown family on either side gives ``ok=False, certain=False``.
"""

from __future__ import annotations

from .model import UNKNOWN, Compatibility, Identification

BASE_KINDS = ("checkpoint", "diffusion_model")
ADDON_KINDS = ("lora", "vae", "embedding", "text_encoder")


def _name(ident: Identification) -> str:
    text = ident.family
    if ident.variant:
        text += f" {ident.variant}"
    return text


def check_compatible(base: Identification, addon: Identification) -> Compatibility:
    """Whether ``addon`` fits ``base``, with the reason either way."""
    if base.kind not in BASE_KINDS:
        return Compatibility(False, f"the base is a {base.kind.replace('_', ' ')}, not a checkpoint or diffusion model")
    if addon.kind not in ADDON_KINDS:
        return Compatibility(False, f"the add-on is a {addon.kind.replace('_', ' ')}, not a LoRA, VAE, embedding "
                                    "or text encoder")
    if base.family == UNKNOWN:
        return Compatibility(False, "the base model's family could not be identified", certain=False)

    if addon.kind == "lora":
        target = addon.lora.target if addon.lora else addon.family
        if target == UNKNOWN:
            return Compatibility(False, "the LoRA's target family could not be identified from its layers or "
                                        "metadata", certain=False)
        if target != base.family:
            return Compatibility(False, f"the LoRA targets {_name(addon)}, the base is {_name(base)}: its layer "
                                        "shapes do not fit")
        required = addon.details.get("requires_variant")
        if required and base.variant != required:
            if base.variant is None:
                return Compatibility(False, f"the LoRA needs {base.family} {required}; the base's variant could "
                                            "not be told", certain=False)
            return Compatibility(False, f"the LoRA targets {_name(addon)} but the base is {_name(base)}: the layer "
                                        "widths differ")
        note = ""
        parts = addon.lora.parts if addon.lora else []
        missing = [p for p in parts if p != "unet" and not _has_text_encoder(base, p)]
        if missing and base.kind == "diffusion_model":
            note = f" (its {', '.join(missing)} part needs the text encoder loaded separately)"
        return Compatibility(True, f"{addon.lora.format if addon.lora else 'LoRA'} for {_name(addon)} on a "
                                   f"{_name(base)} model{note}")

    fits = addon.candidates or ([addon.family] if addon.family != UNKNOWN else [])
    what = addon.kind.replace("_", " ")
    if not fits:
        return Compatibility(False, f"the {what}'s family could not be identified", certain=False)
    if base.family in fits:
        if addon.kind == "vae":
            channels = addon.details.get("latent_channels")
            return Compatibility(True, f"{channels}-channel VAE fits {base.family}" if channels
                                 else f"VAE fits {base.family}")
        return Compatibility(True, f"{what} fits {base.family} (fits: {', '.join(fits)})")
    if addon.kind == "vae":
        return Compatibility(False, f"{addon.details.get('latent_channels', '?')}-channel VAE fits "
                                    f"{', '.join(fits)}, not {base.family}")
    return Compatibility(False, f"the {what} fits {', '.join(fits)}, not {base.family}")


_TE_OF_PART = {"te1": ("clip_l", "clip_h"), "te2": ("clip_g",), "t5": ("t5", "t5xl")}


def _has_text_encoder(base: Identification, part: str) -> bool:
    return any(c in base.components for c in _TE_OF_PART.get(part, ()))

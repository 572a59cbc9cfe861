"""The values identification returns: what a file is, and the evidence for every decision.

``Identification.to_dict()`` is what the catalogue stores (JSON) and what ``sdhub info --json``
prints; ``from_dict`` reads it back. The top-level words are stable so scripts can rely on them:

- ``family``: ``sd1`` ``sd2`` ``sdxl`` ``sdxl_refiner`` ``sd3`` ``flux`` (or a plugin's family), or
  ``unknown``. For a LoRA it is the family the LoRA targets.
- ``kind``: ``checkpoint`` ``diffusion_model`` ``vae`` ``text_encoder`` ``lora`` ``embedding`` ``controlnet``
  ``t2i_adapter`` ``ip_adapter`` ``clip_vision`` ``upscaler`` ``style_model`` ``unknown``.
- ``variant``: ``inpaint`` ``instruct-pix2pix`` ``v-prediction`` ``depth`` ``unclip`` (SD1/SD2/SDXL),
  ``medium`` ``large`` (SD3; SD3.5 Medium is ``medium`` too, with ``details.generation == "3.5"``),
  ``dev`` ``schnell`` ``fill`` ``control`` (Flux), or ``None`` when there is none or the header cannot
  tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Bumped when the classifier's answers change, so stored identifications can be refreshed.
IDENTIFY_VERSION = 16

KINDS = ("checkpoint", "diffusion_model", "vae", "text_encoder", "lora", "embedding", "controlnet", "t2i_adapter",
         "ip_adapter", "clip_vision", "upscaler", "style_model", "unknown")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    """One decision and the key, shape or metadata value that made it."""

    what: str
    value: Any
    because: str

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "value": self.value, "because": self.because}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        return cls(what=str(d.get("what", "")), value=d.get("value"), because=str(d.get("because", "")))

    def __str__(self) -> str:
        return f"{self.what}={self.value}: {self.because}"


@dataclass
class LoraInfo:
    """What a LoRA/LyCORIS file adapts and how.

    ``format``: ``kohya``, ``diffusers`` (PEFT ``lora_A``/``lora_B``), ``comfyui``, ``lycoris_locon``,
    ``lycoris_loha``, ``lycoris_lokr`` (other LyCORIS algorithms: ``lycoris_oft``, ``lycoris_glora``,
    ``lycoris_full``), ``xlabs``, ``onetrainer`` or ``unknown``.
    ``parts``: ``unet`` (the diffusion model, UNet or DiT), ``te1`` (CLIP-L, or the only text
    encoder), ``te2`` (CLIP-G/bigG), ``t5``. ``rank``: the most common rank; ``ranks`` all seen.
    """

    format: str
    rank: int | None = None
    parts: list[str] = field(default_factory=list)
    target: str = UNKNOWN
    modules: int = 0
    ranks: list[int] = field(default_factory=list)
    alpha: float | None = None
    network_module: str | None = None
    dora: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "rank": self.rank, "parts": list(self.parts), "target": self.target,
                "modules": self.modules, "ranks": list(self.ranks), "alpha": self.alpha,
                "network_module": self.network_module, "dora": self.dora}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoraInfo:
        return cls(format=str(d.get("format", UNKNOWN)), rank=d.get("rank"), parts=list(d.get("parts") or []),
                   target=str(d.get("target", UNKNOWN)), modules=int(d.get("modules") or 0),
                   ranks=list(d.get("ranks") or []), alpha=d.get("alpha"), network_module=d.get("network_module"),
                   dora=bool(d.get("dora", False)))


@dataclass
class Identification:
    """What a model file or folder is, decided from its header/configs alone.

    ``candidates`` lists every family the file fits when the header cannot single one out (an SD1
    and an SDXL VAE have identical tensors): ``family`` is then ``unknown``, or the candidate the
    metadata names, and compatibility checks use ``candidates``. When the tensors decide the family,
    ``candidates == [family]``.
    ``details`` holds measured facts (``in_channels``, ``context_dim``, ``hidden_size``,
    ``latent_channels``, ``prediction`` = eps/v/flow/edm or None when unknown, ``generation``...).
    """

    family: str = UNKNOWN
    kind: str = UNKNOWN
    variant: str | None = None
    format: str = "safetensors"
    components: list[str] = field(default_factory=list)
    precision: str | None = None
    lora: LoraInfo | None = None
    candidates: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    tensors: int | None = None
    warnings: list[str] = field(default_factory=list)
    version: int = IDENTIFY_VERSION
    #: Whether sdhub has a pipeline for this family (False for identified-only families such as
    #: FLUX.2 or Wan); None when the family is unknown.
    runnable: bool | None = None

    def because(self, what: str) -> list[Evidence]:
        """The evidence behind one decision (``"family"``, ``"variant"``, ``"kind"``...)."""
        return [e for e in self.evidence if e.what == what]

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "kind": self.kind,
            "variant": self.variant,
            "format": self.format,
            "components": list(self.components),
            "precision": self.precision,
            "lora": self.lora.to_dict() if self.lora else None,
            "candidates": list(self.candidates),
            "details": dict(self.details),
            "evidence": [e.to_dict() for e in self.evidence],
            "metadata": dict(self.metadata),
            "tensors": self.tensors,
            "warnings": list(self.warnings),
            "version": self.version,
            "runnable": self.runnable,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Identification:
        lora = d.get("lora")
        return cls(
            family=str(d.get("family") or UNKNOWN),
            kind=str(d.get("kind") or UNKNOWN),
            variant=d.get("variant"),
            format=str(d.get("format") or "safetensors"),
            components=list(d.get("components") or []),
            precision=d.get("precision"),
            lora=LoraInfo.from_dict(lora) if isinstance(lora, dict) else None,
            candidates=list(d.get("candidates") or []),
            details=dict(d.get("details") or {}),
            evidence=[Evidence.from_dict(e) for e in d.get("evidence") or [] if isinstance(e, dict)],
            metadata=dict(d.get("metadata") or {}),
            tensors=d.get("tensors"),
            warnings=list(d.get("warnings") or []),
            version=int(d.get("version") or 0),
            runnable=d.get("runnable"),
        )

    def summary(self) -> str:
        """One line for people: ``sdxl checkpoint (inpaint), fp16``."""
        parts = [self.family if self.family != UNKNOWN else "unknown family", self.kind.replace("_", " ")]
        text = " ".join(parts)
        if self.variant:
            text += f" ({self.variant})"
        if self.kind == "lora" and self.lora:
            text += f", {self.lora.format}"
            if self.lora.rank:
                text += f" rank {self.lora.rank}"
        if self.precision:
            text += f", {self.precision}"
        return text


@dataclass
class Compatibility:
    """Whether an add-on (LoRA, VAE, embedding, text encoder) fits a base model, and why (not).

    ``ok`` is True only when the headers show it fits; ``certain`` is False when one side's family
    could not be determined, in which case ``ok`` is False and ``reason`` says what is unknown.
    """

    ok: bool
    reason: str
    certain: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "certain": self.certain}

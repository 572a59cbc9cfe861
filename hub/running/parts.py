"""The separately downloaded parts of a model (Flux: CLIP-L, T5-XXL, the VAE): what a file is, and where to find one.

Flux is shipped as a transformer file, with the text encoders and the VAE in files of their own that
several families share. A part given by the user (``--text-encoders``, ``--vae``) is placed by its
role, never by its position or file name; a part not given is taken from the catalogue, among the
files identification named as that component and as fitting the family. No torch here: headers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PipelineError

#: Roles and how users call them.
ROLE_NAMES = {"clip_l": "CLIP-L text encoder", "t5": "T5-XXL text encoder", "vae": "VAE"}

#: Key markers (any prefix) of each role, for files identification could not size (tiny or unusual ones).
_ROLE_MARKERS = {
    "t5": ("encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight"),
    "clip_l": ("embeddings.token_embedding.weight", "token_embedding.weight"),
    "vae": ("decoder.conv_in.weight",),
}
_PRECISION_RANK = {"fp16": 0, "bf16": 0, "fp32": 1}


@dataclass
class Part:
    """One part to load: its role, its file, and where it came from (said to the user)."""

    role: str
    path: Path
    origin: str  # "given" or "catalogue"

    def describe(self) -> str:
        where = "from the catalogue" if self.origin == "catalogue" else "given"
        return f"{ROLE_NAMES.get(self.role, self.role)}: {self.path} ({where})"


def role_of(path: Path, identification: Any = None) -> str | None:
    """"clip_l", "t5" or "vae" for a standalone part file, from identification, else from its keys."""
    kind = getattr(identification, "kind", None)
    components = list(getattr(identification, "components", None) or [])
    if kind == "vae":
        return "vae"
    if kind == "text_encoder":
        for role in ("clip_l", "t5"):
            if role in components:
                return role
    try:
        from ..files.safetensors_header import read_header

        names = list(read_header(path).tensors)
    except Exception:  # not a safetensors file or unreadable: identification was the only chance
        return None
    for role, markers in _ROLE_MARKERS.items():
        if any(name == m or name.endswith("." + m) for name in names for m in markers):
            return role
    return None


def _fits(record: Any, role: str, family: str) -> bool:
    ident = record.identification or {}
    if role == "vae":
        if record.kind != "vae":
            return False
    elif record.kind != "text_encoder" or role not in (ident.get("components") or []):
        return False
    return record.family == family or family in (ident.get("candidates") or [])


def _preference(record: Any, family: str) -> tuple[int, int, str]:
    return (0 if record.family == family else 1, _PRECISION_RANK.get(record.precision or "", 2), record.name or "")


def from_catalogue(roles: list[str], family: str) -> dict[str, Part]:
    """The best catalogued file for each role: identified as that part and as fitting ``family`` (the family's
    own before shared ones, half precision before full, then fp8), and still on disk."""
    if not roles:
        return {}
    try:
        from ..api import Hub

        hub = Hub()
    except Exception:  # no catalogue here: the pipeline says what is missing
        return {}
    found: dict[str, Part] = {}
    try:
        for kind in sorted({"vae" if r == "vae" else "text_encoder" for r in roles}):
            records = hub.list(kind=kind)
            for role in roles:
                if role in found or ("vae" if role == "vae" else "text_encoder") != kind:
                    continue
                fitting = sorted((r for r in records if _fits(r, role, family) and Path(r.path).is_file()),
                                 key=lambda r: _preference(r, family))
                if fitting:
                    found[role] = Part(role, Path(fitting[0].path), "catalogue")
    finally:
        hub.close()
    return found


def assign_given(text_encoders: list[tuple[Path, Any]], vae: tuple[Path, Any] | None, wanted: tuple[str, ...]) -> dict[str, Part]:
    """Place the user's --text-encoders and --vae files by what they are; one clear error per misfit."""
    parts: dict[str, Part] = {}
    for path, ident in text_encoders:
        role = role_of(path, ident)
        if role not in ("clip_l", "t5"):
            raise PipelineError(f"--text-encoders {path} is not a CLIP-L or T5 text encoder"
                                + (f" (it looks like a {ROLE_NAMES[role]})" if role else ""))
        if role in parts:
            raise PipelineError(f"--text-encoders names two {ROLE_NAMES[role]}s: {parts[role].path} and {path}")
        parts[role] = Part(role, path, "given")
    if vae is not None:
        path, ident = vae
        role = role_of(path, ident)
        if role != "vae":
            raise PipelineError(f"--vae {path} is not a VAE" + (f" (it looks like a {ROLE_NAMES[role]})" if role else ""))
        parts["vae"] = Part("vae", path, "given")
    extra = [p for r, p in parts.items() if r not in wanted]
    if extra:
        raise PipelineError(f"this model does not take a {ROLE_NAMES[extra[0].role]} ({extra[0].path})")
    return parts


__all__ = ["ROLE_NAMES", "Part", "assign_given", "from_catalogue", "role_of"]

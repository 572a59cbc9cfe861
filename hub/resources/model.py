"""The resource record and the kind → UI folder tables (interop.md §1.1, §2.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SdhubError


class ResourceError(SdhubError):
    """A file whose metadata cannot be read (no metadata, corrupt, not JSON, over the size cap)."""


#: kind → ComfyUI ``models/`` folder key (folder_paths.py names).
KIND_FOLDERS: dict[str, str] = {
    "checkpoint": "checkpoints",
    "lora": "loras",
    "vae": "vae",
    "embedding": "embeddings",
    "hypernetwork": "hypernetworks",
    "controlnet": "controlnet",
    "upscaler": "upscale_models",
    "diffusion_model": "diffusion_models",
    "text_encoder": "text_encoders",
    "clip_vision": "clip_vision",
    "style_model": "style_models",
    "gligen": "gligen",
    "photomaker": "photomaker",
}

#: kind → folder under an A1111/Forge install (interop.md §2.1).
A1111_FOLDERS: dict[str, str] = {
    "checkpoint": "models/Stable-diffusion",
    "diffusion_model": "models/Stable-diffusion",
    "lora": "models/Lora",
    "vae": "models/VAE",
    "embedding": "embeddings",
    "hypernetwork": "models/hypernetworks",
    "controlnet": "models/ControlNet",
    "upscaler": "models/ESRGAN",
    "text_encoder": "models/text_encoder",
}

#: ComfyUI folder key (or legacy alias) → kind, for ``properties.models[].directory``.
FOLDER_KINDS: dict[str, str] = {v: k for k, v in KIND_FOLDERS.items()}
FOLDER_KINDS.update({"unet": "diffusion_model", "clip": "text_encoder", "t2i_adapter": "controlnet",
                     "checkpoint": "checkpoint", "lora": "lora"})

#: Civitai resource ``type`` values → our kind.
CIVITAI_TYPES: dict[str, str] = {
    "checkpoint": "checkpoint", "model": "checkpoint", "lora": "lora", "locon": "lora", "lycoris": "lora",
    "dora": "lora", "embed": "embedding", "embedding": "embedding", "textualinversion": "embedding",
    "vae": "vae", "hypernet": "hypernetwork", "hypernetwork": "hypernetwork", "controlnet": "controlnet",
    "upscaler": "upscaler",
}


@dataclass
class Resource:
    """One model a file names: what it is, how it was named, where the name was found."""

    kind: str
    name: str | None = None
    hash: str | None = None  # lower-case hex as written (short A1111 hashes are prefixes)
    hash_kind: str | None = None  # autov2, autov3, sha256, ... when the writer says or the length tells
    ref: str | None = None  # an AIR, civitai:@<version id> or a URL, when the file gives one
    weight: float | None = None
    folder: str | None = None  # the ComfyUI folder it belongs in (a workflow's ``directory`` wins)
    found_in: list[str] = field(default_factory=list)  # "<file>: <where>"
    files: list[str] = field(default_factory=list)  # the input files that name it

    def __post_init__(self) -> None:
        if self.folder is None:
            self.folder = KIND_FOLDERS.get(self.kind)
        if self.hash:
            self.hash = self.hash.strip().lower().removeprefix("0x")

    def key(self) -> tuple[str, str]:
        """Identity for merging duplicates: the hash, else the ref, else the file name."""
        if self.hash:
            return ("hash", self.hash)
        if self.ref:
            return ("ref", self.ref)
        return ("name", f"{self.kind}:{_stem(self.name or '')}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "folder": self.folder, "hash": self.hash,
                "hash_kind": self.hash_kind, "ref": self.ref, "weight": self.weight, "found_in": list(self.found_in),
                "files": list(self.files)}


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf", ".pt2"):
        if base.lower().endswith(ext):
            return base[: -len(ext)].lower()
    return base.lower()


def merge_resources(items: list[Resource]) -> list[Resource]:
    """One record per model: the same LoRA named by a tag, a hash list and a weight list is one resource.

    Records are merged by hash, ref or name; a name-only record joins a hashed/ref'd one of the same
    kind and file stem, so ``<lora:x:0.7>`` and ``Lora hashes: "x: ab12…"`` become one LoRA with both.
    """
    out: list[Resource] = []
    by_key: dict[tuple[str, str], Resource] = {}
    for item in items:
        target = by_key.get(item.key())
        if target is None and item.name:
            stem = _stem(item.name)
            target = next((r for r in out if r.name and _stem(r.name) == stem and _same_kind(r.kind, item.kind)
                           and (not (r.hash and item.hash) or r.hash.startswith(item.hash)
                                or item.hash.startswith(r.hash))), None)
        if target is None:
            out.append(item)
            by_key[item.key()] = item
            continue
        _absorb(target, item)
        by_key.setdefault(target.key(), target)
    return out


def _same_kind(a: str, b: str) -> bool:
    return a == b or "unknown" in (a, b)


def _absorb(target: Resource, item: Resource) -> None:
    if target.kind == "unknown":
        target.kind, target.folder = item.kind, item.folder
    if item.hash and (not target.hash or len(item.hash) > len(target.hash)):
        target.hash, target.hash_kind = item.hash, item.hash_kind
    for name in ("ref", "weight", "name"):
        if getattr(target, name) is None and getattr(item, name) is not None:
            setattr(target, name, getattr(item, name))
    if item.name and target.name and "." not in target.name and "." in item.name:
        target.name = item.name  # a file name beats an alias
    if item.folder and item.folder != KIND_FOLDERS.get(item.kind):  # a workflow's own directory
        target.folder = item.folder
    for where in item.found_in:
        if where not in target.found_in:
            target.found_in.append(where)
    for name in item.files:
        if name not in target.files:
            target.files.append(name)

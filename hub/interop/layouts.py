"""Each UI's own folder names for each kind of model (../shared/reference/interop.md §1.1, §2.1, §3.1, §4.1).

Pure data plus two helpers: ``folder_for(layout, kind)`` and ``looks_like(layout, root)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    folders: dict[str, str]  # sdhub kind -> folder relative to the UI root (POSIX)
    markers: tuple[str, ...]  # any one of these under the root says "this is that UI"
    expected: str  # what the error names when none is there


_A1111 = {
    "checkpoint": "models/Stable-diffusion",
    "vae": "models/VAE",
    "lora": "models/Lora",
    "embedding": "embeddings",  # <data-dir>/embeddings, not under models/
    "hypernetwork": "models/hypernetworks",
    "controlnet": "models/ControlNet",
    "upscaler": "models/ESRGAN",
}

LAYOUTS: dict[str, Layout] = {
    "comfyui": Layout(
        "comfyui", "ComfyUI",
        {
            "checkpoint": "models/checkpoints",
            "diffusion_model": "models/diffusion_models",
            "vae": "models/vae",
            "text_encoder": "models/text_encoders",
            "lora": "models/loras",
            "embedding": "models/embeddings",
            "controlnet": "models/controlnet",
            "upscaler": "models/upscale_models",
            "clip_vision": "models/clip_vision",
            "hypernetwork": "models/hypernetworks",
        },
        ("folder_paths.py", "comfy", "extra_model_paths.yaml.example", "models/checkpoints"),
        "a ComfyUI folder (with folder_paths.py, comfy/ or models/checkpoints/)",
    ),
    "a1111": Layout(
        "a1111", "AUTOMATIC1111",
        dict(_A1111),
        ("webui.py", "launch.py", "models/Stable-diffusion"),
        "a stable-diffusion-webui folder (with webui.py, launch.py or models/Stable-diffusion/)",
    ),
    "forge": Layout(
        "forge", "Forge",
        # Forge loads Flux/SD3 diffusion models from Stable-diffusion and text encoders from models/text_encoder.
        {**_A1111, "diffusion_model": "models/Stable-diffusion", "text_encoder": "models/text_encoder"},
        ("webui.py", "launch.py", "modules_forge", "models/Stable-diffusion"),
        "a Forge folder (with webui.py, launch.py, modules_forge/ or models/Stable-diffusion/)",
    ),
    "swarmui": Layout(
        "swarmui", "SwarmUI",
        {
            "checkpoint": "Models/Stable-Diffusion",
            "diffusion_model": "Models/diffusion_models",
            "vae": "Models/VAE",
            "text_encoder": "Models/text_encoders",
            "lora": "Models/Lora",
            "embedding": "Models/Embeddings",
            "controlnet": "Models/controlnet",
            "clip_vision": "Models/clip_vision",
            "upscaler": "Models/upscale_models",
        },
        ("src/SwarmUI.csproj", "launch-linux.sh", "launch-windows.bat", "Models/Stable-Diffusion"),
        "a SwarmUI folder (with src/SwarmUI.csproj, launch-linux.sh or Models/Stable-Diffusion/)",
    ),
    "stability-matrix": Layout(
        "stability-matrix", "Stability Matrix",
        {
            "checkpoint": "Models/StableDiffusion",
            "diffusion_model": "Models/DiffusionModels",
            "vae": "Models/VAE",
            "text_encoder": "Models/TextEncoders",
            "lora": "Models/Lora",
            "embedding": "Models/Embeddings",
            "controlnet": "Models/ControlNet",
            "upscaler": "Models/ESRGAN",
            "clip_vision": "Models/ClipVision",
            "hypernetwork": "Models/Hypernetwork",
        },
        ("Packages", "settings.json", "Models/StableDiffusion"),
        "a Stability Matrix data folder (with Packages/, settings.json or Models/StableDiffusion/)",
    ),
}


def get_layout(name: str) -> Layout:
    key = name.strip().lower().replace("_", "-")
    key = {"automatic1111": "a1111", "stabilitymatrix": "stability-matrix", "sm": "stability-matrix",
           "swarm": "swarmui", "comfy": "comfyui"}.get(key, key)
    try:
        return LAYOUTS[key]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; expected one of {', '.join(LAYOUTS)}") from None


def looks_like(layout: Layout, root: Path) -> bool:
    return any((root / m).exists() for m in layout.markers)


def safe_part(text: str) -> str:
    """A folder or file name that cannot climb out of its parent."""
    cleaned = "".join("_" if ch in "/\\:\0" else ch for ch in text).strip()
    return cleaned if cleaned not in ("", ".", "..") else "_"

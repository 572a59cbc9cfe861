"""Images and workflows written the way the UIs write them (chunk names, infotext layout, graph shapes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

A1111_INFOTEXT = (
    "masterpiece, <lora:pixel-art-xl:0.8>, castle\n"
    "Negative prompt: blurry\n"
    'Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 1024x1024, '
    'Model hash: {model_hash}, Model: sd_xl_base_1.0, VAE hash: 235745af8d, VAE: sdxl_vae.safetensors, '
    'Lora hashes: "pixel-art-xl: {lora_hash}", TI hashes: "easynegative: c74b4e810b03", Version: v1.10.1'
)


def png(path: Path, **chunks: str) -> Path:
    """A small PNG with tEXt chunks, written by Pillow as A1111 (``parameters``) and ComfyUI (``prompt``/``workflow``) do."""
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, pnginfo=info)
    return path


def exif_image(path: Path, text: str, fmt: str) -> Path:
    """JPEG/WebP with the infotext in EXIF UserComment, as A1111 writes it (piexif: ``UNICODE\\0`` + UTF-16BE)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, format=fmt, exif=exif.tobytes())
    return path


def comfy_api(ckpt: str = "sd_xl_base_1.0.safetensors", lora: str = "pixel-art-xl.safetensors") -> dict[str, Any]:
    """The ``prompt`` chunk: ComfyUI's API-format graph."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": lora, "strength_model": 0.75, "strength_clip": 1,
                                                       "model": ["4", 0], "clip": ["4", 1]}},
        "11": {"class_type": "VAELoader", "inputs": {"vae_name": "sdxl_vae.safetensors"}},
        "12": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                          "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"}},
        "13": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "14": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}},
        "15": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "model": ["10", 0]}},
        "20": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["10", 1]}},
    }


def comfy_ui(models: list[dict[str, Any]] | None = None, top_models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ``workflow`` chunk / a saved workflow: the UI (litegraph) format."""
    data: dict[str, Any] = {
        "last_node_id": 15, "last_link_id": 9, "version": 0.4,
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "pos": [0, 0], "size": [315, 98], "flags": {}, "order": 0,
             "mode": 0, "outputs": [], "properties": {"Node name for S&R": "CheckpointLoaderSimple",
                                                     **({"models": models} if models else {})},
             "widgets_values": ["sd_xl_base_1.0.safetensors"]},
            {"id": 10, "type": "LoraLoader", "properties": {"Node name for S&R": "LoraLoader"},
             "widgets_values": ["pixel-art-xl.safetensors", 0.75, 1]},
            {"id": 11, "type": "VAELoader", "properties": {}, "widgets_values": ["sdxl_vae.safetensors"]},
            {"id": 12, "type": "DualCLIPLoader", "properties": {},
             "widgets_values": ["clip_l.safetensors", "t5xxl_fp16.safetensors", "flux", "default"]},
            {"id": 3, "type": "KSampler", "properties": {}, "widgets_values": [1, "fixed", 20, 8, "euler", "normal", 1]},
            {"id": 20, "type": "Note", "properties": {}, "widgets_values": ["see model.safetensors"]},
        ],
        "links": [], "groups": [], "config": {}, "extra": {},
    }
    if top_models is not None:
        data["models"] = top_models
    return data


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path

"""ComfyUI graphs: the API format (``prompt`` chunk) and the UI format (``workflow`` chunk, saved .json).

Only data is read: node types and their file-name inputs, ``properties.models`` and the top-level
``models`` list (interop.md §7). Nothing in a workflow is executed or imported.
"""

from __future__ import annotations

from typing import Any

from .model import FOLDER_KINDS, Resource

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".sft", ".gguf", ".pkl", ".onnx")

#: node type → [(input name, kind)] for ComfyUI's built-in loaders (and common GGUF ones).
LOADERS: dict[str, list[tuple[str, str]]] = {
    "CheckpointLoaderSimple": [("ckpt_name", "checkpoint")],
    "CheckpointLoader": [("ckpt_name", "checkpoint")],
    "ImageOnlyCheckpointLoader": [("ckpt_name", "checkpoint")],
    "unCLIPCheckpointLoader": [("ckpt_name", "checkpoint")],
    "LoraLoader": [("lora_name", "lora")],
    "LoraLoaderModelOnly": [("lora_name", "lora")],
    "VAELoader": [("vae_name", "vae")],
    "UNETLoader": [("unet_name", "diffusion_model")],
    "UnetLoaderGGUF": [("unet_name", "diffusion_model")],
    "CLIPLoader": [("clip_name", "text_encoder")],
    "CLIPLoaderGGUF": [("clip_name", "text_encoder")],
    "DualCLIPLoader": [("clip_name1", "text_encoder"), ("clip_name2", "text_encoder")],
    "DualCLIPLoaderGGUF": [("clip_name1", "text_encoder"), ("clip_name2", "text_encoder")],
    "TripleCLIPLoader": [(f"clip_name{i}", "text_encoder") for i in (1, 2, 3)],
    "QuadrupleCLIPLoader": [(f"clip_name{i}", "text_encoder") for i in (1, 2, 3, 4)],
    "ControlNetLoader": [("control_net_name", "controlnet")],
    "DiffControlNetLoader": [("control_net_name", "controlnet")],
    "UpscaleModelLoader": [("model_name", "upscaler")],
    "CLIPVisionLoader": [("clip_name", "clip_vision")],
    "StyleModelLoader": [("style_model_name", "style_model")],
    "GLIGENLoader": [("gligen_name", "gligen")],
    "HypernetworkLoader": [("hypernetwork_name", "hypernetwork")],
    "PhotoMakerLoader": [("photomaker_model_name", "photomaker")],
}
#: The weight input of nodes that carry one.
WEIGHT_INPUTS = {"LoraLoader": "strength_model", "LoraLoaderModelOnly": "strength_model",
                 "HypernetworkLoader": "strength"}
#: Input names custom loaders share with the built-ins: a model file there is that kind.
GENERIC_INPUTS = {"ckpt_name": "checkpoint", "lora_name": "lora", "vae_name": "vae", "unet_name": "diffusion_model",
                  "control_net_name": "controlnet", "clip_name": "text_encoder"}


def is_api_format(data: Any) -> bool:
    """``{node_id: {"class_type": …, "inputs": {…}}}``, as in the ``prompt`` chunk and "Export (API)"."""
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "class_type" in v for v in data.values())


def is_ui_format(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def _model_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_api(data: dict[str, Any], where: str) -> list[Resource]:
    out: list[Resource] = []
    for node_id, node in data.items():
        ctype = str(node.get("class_type"))
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        out.extend(_from_inputs(ctype, inputs, f"{where}: node {node_id} ({ctype})"))
    return out


def _from_inputs(ctype: str, inputs: dict[str, Any], where: str) -> list[Resource]:
    out = []
    wanted = LOADERS.get(ctype) or [(k, kind) for k, kind in GENERIC_INPUTS.items() if k in inputs]
    for key, kind in wanted:
        value = inputs.get(key)
        if _model_file(value):
            weight = _float(inputs.get(WEIGHT_INPUTS.get(ctype, "")))
            out.append(Resource(kind, name=value, weight=weight, found_in=[where]))
    return out


def parse_ui(data: dict[str, Any], where: str) -> list[Resource]:
    out: list[Resource] = []
    nodes = list(data.get("nodes") or [])
    definitions = data.get("definitions")
    for sub in (definitions.get("subgraphs") or []) if isinstance(definitions, dict) else []:
        if isinstance(sub, dict) and isinstance(sub.get("nodes"), list):
            nodes.extend(sub["nodes"])
    for node in nodes:
        if not isinstance(node, dict):
            continue
        ntype = str(node.get("type") or node.get("class_type") or "")
        here = f"{where}: node {node.get('id')} ({ntype})"
        widgets = node.get("widgets_values")
        if isinstance(widgets, dict):
            out.extend(_from_inputs(ntype, widgets, here))
        elif isinstance(widgets, list) and ntype in LOADERS:
            kinds = [kind for _key, kind in LOADERS[ntype]]
            files = [w for w in widgets if _model_file(w)]
            weight = _float(widgets[1]) if ntype in WEIGHT_INPUTS and len(widgets) > 1 else None
            for value, kind in zip(files, kinds + [kinds[-1]] * len(files)):
                out.append(Resource(kind, name=value, weight=weight, found_in=[here]))
        props = node.get("properties")
        if isinstance(props, dict) and isinstance(props.get("models"), list):
            kind_hint = LOADERS.get(ntype, [("", "unknown")])[0][1]
            for i, entry in enumerate(props["models"]):
                res = model_entry(entry, f"{here} properties.models[{i}]", kind_hint)
                if res is not None:
                    out.append(res)
    for i, entry in enumerate(data.get("models") or [] if isinstance(data.get("models"), list) else []):
        res = model_entry(entry, f"{where}: models[{i}]", "unknown")
        if res is not None:
            out.append(res)
    return out


def model_entry(entry: Any, where: str, kind_hint: str) -> Resource | None:
    """``{name, url, directory, hash?, hash_type?}`` as the ComfyUI frontend reads it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return None
    directory = entry.get("directory") if isinstance(entry.get("directory"), str) else None
    kind = FOLDER_KINDS.get((directory or "").split("/")[0], kind_hint)
    digest = next((entry[k] for k in ("sha256", "hash", "SHA256") if isinstance(entry.get(k), str)), None)
    hash_kind = str(entry.get("hash_type") or ("sha256" if digest and len(digest) == 64 else "")).lower() or None
    url = entry.get("url") if isinstance(entry.get("url"), str) else None
    return Resource(kind, name=entry["name"], hash=digest, hash_kind=hash_kind, ref=url, folder=directory,
                    found_in=[where])

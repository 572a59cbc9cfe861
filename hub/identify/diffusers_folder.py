"""Diffusers-format folders: ``model_index.json`` plus one folder per component.

The family comes from the component configs (each family's ``match_config``: UNet
``cross_attention_dim``/``in_channels``, transformer class and ``num_layers``...), the prediction type
from ``scheduler/scheduler_config.json``, components from ``model_index.json``. Precision is read
from the diffusion model's weight header (no tensor data). A folder holding a single component
(``config.json`` + ``diffusion_pytorch_model.safetensors``, e.g. a ``unet/`` or ``vae/`` folder) is
identified from its weights header.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SdhubError, UnsupportedFormatError
from .classify import ordered, precision_of
from .family import DiffusersConfigs, Family
from .model import UNKNOWN, Evidence, Identification

COMPONENT_FOLDERS = ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "scheduler",
                     "prior", "decoder")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors")


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnsupportedFormatError(folder, f"cannot read {path.name}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UnsupportedFormatError(folder, f"{path.relative_to(folder)} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnsupportedFormatError(folder, f"{path.relative_to(folder)} is not a JSON object")
    return data


def load_configs(folder: Path) -> DiffusersConfigs:
    configs: DiffusersConfigs = {"model_index": _read_json(folder / "model_index.json", folder)}
    for name in COMPONENT_FOLDERS:
        for cfg_name in ("config.json", "scheduler_config.json"):
            cfg = folder / name / cfg_name
            if cfg.is_file():
                configs[name] = _read_json(cfg, folder)
                break
    return configs


def _te_component(name: str, cfg: dict[str, Any] | None, class_name: str) -> str:
    if "T5" in class_name or (cfg and cfg.get("model_type") == "t5"):
        width = (cfg or {}).get("d_model", 4096)
        return "t5" if width == 4096 else "t5xl"
    width = (cfg or {}).get("hidden_size")
    return {768: "clip_l", 1024: "clip_h", 1280: "clip_g"}.get(width, "text_encoder")


def weight_files(component: Path) -> list[Path]:
    """The safetensors weight files of a component folder (all shards; the plain variant first)."""
    for name in WEIGHT_NAMES:
        if (component / name).is_file():
            return [component / name]
    for index_name in ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json"):
        index = component / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            except (OSError, ValueError):
                return []
            return [component / f for f in sorted(set(weight_map.values())) if (component / f).is_file()]
    return sorted(component.glob("*.safetensors"))


def identify_folder(folder: Path, families: Sequence[Family]) -> Identification:
    if not (folder / "model_index.json").is_file():
        return _identify_component_folder(folder, families)
    configs = load_configs(folder)
    index = configs["model_index"]
    ident = Identification(format="diffusers", kind="checkpoint")
    pipeline_class = str(index.get("_class_name", ""))
    ident.details["pipeline_class"] = pipeline_class
    ident.evidence.append(Evidence("kind", "checkpoint", f"model_index.json _class_name={pipeline_class or '?'}"))
    for fam in ordered(families):
        if fam.match_config is None:
            continue
        found = fam.match_config(configs)
        if found is not None:
            ident.family = fam.name
            ident.variant = found.variant
            ident.evidence.extend(found.evidence)
            ident.details.update(found.details)
            break
    else:
        ident.evidence.append(Evidence("family", UNKNOWN, "no family matched the component configs"))
    # components listed in model_index.json with a library/class (null entries are absent parts)
    comps: list[str] = []
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[1] is None:
            continue
        if name == "unet":
            comps.append("unet")
        elif name == "transformer":
            comps.append("dit")
        elif name == "vae":
            comps.append("vae")
        elif name.startswith("text_encoder"):
            comps.append(_te_component(name, configs.get(name), str(value[1])))
    from .classify import order_components

    ident.components = order_components(comps)
    sched = configs.get("scheduler") or {}
    pred = sched.get("prediction_type")
    if pred:
        ident.details["prediction"] = {"v_prediction": "v", "epsilon": "eps"}.get(pred, pred)
        ident.evidence.append(Evidence("prediction", ident.details["prediction"],
                                       f"scheduler/scheduler_config.json prediction_type={pred}"))
        if pred == "v_prediction" and ident.variant is None and ident.family in ("sd1", "sd2", "sdxl"):
            ident.variant = "v-prediction"
            ident.evidence.append(Evidence("variant", "v-prediction", f"scheduler prediction_type={pred}"))
    _folder_precision(folder, ident)
    ident.candidates = [ident.family] if ident.family != UNKNOWN else []
    from .classify import set_runnable

    set_runnable(ident, families)
    return ident


def _folder_precision(folder: Path, ident: Identification) -> None:
    from ..files.safetensors_header import read_header

    for comp in ("unet", "transformer"):
        files = weight_files(folder / comp)
        if not files:
            continue
        raw: dict[str, dict[str, Any]] = {}
        try:
            for f in files:
                raw.update(read_header(f).raw)
        except SdhubError as exc:
            ident.warnings.append(f"{comp} weights unreadable: {exc}")
            return
        ident.precision, why = precision_of(raw)
        ident.tensors = len(raw)
        ident.evidence.append(Evidence("precision", ident.precision, f"{comp} weights: {why}"))
        return


def _identify_component_folder(folder: Path, families: Sequence[Family]) -> Identification:
    """A single component folder (config.json + weights): identify its weights header."""
    from ..files.safetensors_header import read_header
    from .classify import identify_view
    from .view import HeaderView

    files = weight_files(folder) if (folder / "config.json").is_file() else []
    if not files:
        raise UnsupportedFormatError(folder, "a folder without model_index.json or config.json + safetensors "
                                             "weights: not a diffusers model")
    raw: dict[str, dict[str, Any]] = {}
    metadata: dict[str, str] = {}
    for f in files:
        header = read_header(f)
        raw.update(header.raw)
        metadata.update(header.metadata)
    ident = identify_view(HeaderView(raw, metadata), families, fmt="diffusers")
    config = _read_json(folder / "config.json", folder)
    if config.get("_class_name"):
        ident.details["class_name"] = config["_class_name"]
    return ident

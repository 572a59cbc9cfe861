"""What an install also does for the UIs: sidecars beside the new file, and links into the ``[ui]`` folders.

``[sidecars]`` in config.toml turns each sidecar off (``civitai_info``, ``cm_info``, ``preview``; all on by
default) and ``nsfw_level`` picks the most explicit preview allowed (Civitai's image ``nsfwLevel``: 1 PG,
2 PG-13, 4 R, 8 X, 16 XXX; default 1). ``[ui]`` names the user's UI folders (``comfyui = "/path/ComfyUI"``,
``a1111``, ``forge``, ``swarmui``, ``stability-matrix``): each install links the new file into each of them.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .layouts import LAYOUTS, get_layout
from .sidecars import model_stem

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub
    from ..catalogue import FileRecord

NSFW_LEVELS = {"none": 1, "pg": 1, "soft": 2, "pg13": 2, "mature": 4, "r": 4, "x": 8, "xxx": 16}


def _config(hub: Hub) -> dict[str, Any]:
    from ..config import _read_config_file

    return _read_config_file(Path(hub.settings.config_file))


def ui_folders(hub: Hub) -> dict[str, Path]:
    """``[ui]`` from config.toml: layout name -> folder."""
    table = _config(hub).get("ui") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"[ui] in {hub.settings.config_file} must be a table of NAME = \"PATH\"")
    out: dict[str, Path] = {}
    for name, value in table.items():
        try:
            layout = get_layout(str(name))
        except ValueError as exc:
            raise ConfigError(f"[ui] in {hub.settings.config_file}: {exc}") from None
        out[layout.name] = Path(str(value)).expanduser()
    return out


def resolve_into(hub: Hub, into: str) -> tuple[str, Path]:
    """``comfyui`` (from ``[ui]``) or ``comfyui=/path``."""
    name, sep, path = into.partition("=")
    try:
        layout = get_layout(name)
    except ValueError as exc:
        raise ConfigError(f"--into {into!r}: {exc}") from None
    if sep:
        return layout.name, Path(path).expanduser()
    found = ui_folders(hub).get(layout.name)
    if found is None:
        raise ConfigError(f"--into {name}: where is it? Give --into {name}=/path or set [ui] {name} = \"/path\" "
                          f"in {hub.settings.config_file}")
    return layout.name, found


def link_new_file(hub: Hub, record: FileRecord, uis: dict[str, Path]) -> list[str]:
    """Link one installed file into each UI; returns one line per UI saying what was done."""
    lines = []
    for name, root in uis.items():
        report = hub.link(root, name, only_ids={record.id})
        for e in report.entries:
            if e.status in ("linked", "relinked", "adopted", "unchanged"):
                lines.append(f"{LAYOUTS[name].title}: {e.path} [{e.mode}]")
            elif e.status == "skipped":
                lines.append(f"{LAYOUTS[name].title}: not linked ({e.message})")
    return lines


def _sidecar_switches(hub: Hub) -> tuple[dict[str, bool], int]:
    table = _config(hub).get("sidecars") or {}
    on = {k: bool(table.get(k, True)) for k in ("civitai_info", "cm_info", "preview")}
    level = table.get("nsfw_level", 1)
    if isinstance(level, str):
        level = NSFW_LEVELS.get(level.strip().lower().replace("-", ""), None)
    if not isinstance(level, int) or level < 1:
        raise ConfigError(f"[sidecars] nsfw_level in {hub.settings.config_file}: a number (1, 2, 4, 8, 16) "
                          f"or one of {', '.join(NSFW_LEVELS)}")
    return on, level


def preview_nsfw_level(hub: Hub) -> int:
    """The most explicit preview ``[sidecars] nsfw_level`` allows (1 PG … 16 XXX); the web page blurs above it."""
    return _sidecar_switches(hub)[1]


def pick_preview(version: dict[str, Any], max_level: int) -> dict[str, Any] | None:
    """The first image (not video) of the version at or below ``max_level``."""
    for img in version.get("images") or []:
        if not isinstance(img, dict) or not img.get("url") or img.get("type", "image") != "image":
            continue
        level = img.get("nsfwLevel")
        if not isinstance(level, int):
            nsfw = img.get("nsfw")
            level = {None: 1, False: 1, "None": 1, "Soft": 2, "Mature": 4, "X": 8, True: 8}.get(nsfw, 8)
        if level <= max_level:
            return img
    return None


def cm_info(version: dict[str, Any], model: dict[str, Any] | None, file_name: str, hashes: dict[str, str]) -> dict[str, Any]:
    """A ``<stem>.cm-info.json`` Stability Matrix reads (ConnectedModelInfo, PascalCase)."""
    model = model or {}
    part = version.get("model") if isinstance(version.get("model"), dict) else {}
    files = [f for f in version.get("files") or [] if isinstance(f, dict)]
    mine = next((f for f in files if f.get("name") == file_name), files[0] if len(files) == 1 else {})
    meta = mine.get("metadata") or {}
    return {
        "ModelId": version.get("modelId") or model.get("id"),
        "ModelName": model.get("name") or part.get("name"),
        "ModelDescription": model.get("description"),
        "Nsfw": bool(model.get("nsfw", part.get("nsfw", False))),
        "Tags": list(model.get("tags") or []),
        "ModelType": model.get("type") or part.get("type"),
        "VersionId": version.get("id"),
        "VersionName": version.get("name"),
        "VersionDescription": version.get("description"),
        "AuthorUsername": (model.get("creator") or {}).get("username"),
        "BaseModel": version.get("baseModel"),
        "RemoteFileName": mine.get("name") or file_name,
        "RemoteFileId": mine.get("id"),
        "FileMetadata": {"fp": meta.get("fp"), "size": meta.get("size"), "format": meta.get("format")},
        "ImportedAt": datetime.now(timezone.utc).isoformat(),
        "Hashes": {"SHA256": hashes.get("sha256", "").upper() or None, "CRC32": (hashes.get("crc32") or "").upper()
                   or None, "BLAKE3": (hashes.get("blake3") or "").upper() or None},
        "TrainedWords": list(version.get("trainedWords") or []),
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.sdhub-tmp")
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def write_install_sidecars(hub: Hub, record: FileRecord, plan: Any, fetch_preview: Any = None) -> list[str]:
    """Write the enabled sidecars beside a new install; returns the paths written. Never fails the install."""
    version = (plan.extra or {}).get("civitai_version") if plan is not None else None
    if not isinstance(version, dict):
        return []
    on, level = _sidecar_switches(hub)
    model_path = Path(record.path)
    stem = model_stem(model_path.name)
    written: list[str] = []
    if on["civitai_info"]:
        p = model_path.with_name(stem + ".civitai.info")
        _write_json(p, version)
        written.append(str(p))
    if on["cm_info"]:
        p = model_path.with_name(stem + ".cm-info.json")
        hashes = {k: v for k, v in record.hashes().items() if v}
        _write_json(p, cm_info(version, (plan.extra or {}).get("civitai_model"),
                               plan.source_info.original_filename or model_path.name, hashes))
        written.append(str(p))
    if on["preview"] and fetch_preview is not None:
        img = pick_preview(version, level)
        if img is not None:
            url = str(img["url"])
            ext = os.path.splitext(url.split("?", 1)[0])[1].lower()
            ext = ext if ext in (".png", ".jpg", ".jpeg", ".webp") else ".png"
            p = model_path.with_name(stem + ".preview" + ext)
            try:
                data = fetch_preview(url)
            except Exception:  # a preview is a nicety: the install stands without it
                data = None
            if data:
                tmp = p.with_name(f".{p.name}.sdhub-tmp")
                tmp.write_bytes(data)
                os.replace(tmp, p)
                written.append(str(p))
    return written

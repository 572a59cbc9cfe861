"""Sidecars other tools keep beside a model, read offline (see ../shared/reference/interop.md §2.3, §3.4, §4.2, §6).

Pure: takes paths and bytes, returns values; no database, no network. ``find_sidecars`` names what sits
beside a model; ``read_sidecar`` parses one into a flat dict of the fields sdhub keeps:

``source``/``model_id``/``version_id`` (Civitai ids), ``model_name``, ``version_name``, ``model_type``,
``base_model``, ``trained_words``, ``description``, ``notes``, ``activation_text``, ``preferred_weight``,
``negative_text``, ``sd_version``, ``preview`` (a local path), ``nsfw``, ``tags`` and ``hashes`` (what the
sidecar claims about the model's bytes: ``sha256``, ``autov3``, ``crc32``, ``blake3``, ``autov2``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Checked in this order; the first one with a value wins when two say different things.
FORMATS: tuple[tuple[str, str], ...] = (
    (".civitai.info", "civitai_info"),
    (".cm-info.json", "cm_info"),
    (".metadata.json", "lora_manager"),
    (".swarm.json", "swarm"),
    (".json", "a1111"),
)
PREVIEW_SUFFIXES: tuple[str, ...] = (
    ".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp",
    ".png", ".jpg", ".jpeg", ".webp",
)
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # a sidecar is metadata; anything larger is not one


def model_stem(model_name: str) -> str:
    """``foo.safetensors`` -> ``foo`` (only the last suffix goes: ``foo.vae.pt`` -> ``foo.vae``)."""
    return model_name.rsplit(".", 1)[0] if "." in model_name else model_name


def find_sidecars(model: Path, names_in_folder: set[str] | None = None) -> list[tuple[str, Path]]:
    """``(format, path)`` of each sidecar beside ``model``; previews as format ``preview`` (the first found only).

    ``names_in_folder`` (the folder's listing, if the caller has it) saves a stat per candidate.
    """
    stem = model_stem(model.name)
    folder = model.parent
    if names_in_folder is None:
        try:
            names_in_folder = {p.name for p in folder.iterdir()}
        except OSError:
            return []
    found: list[tuple[str, Path]] = []
    for suffix, fmt in FORMATS:
        name = stem + suffix
        if name in names_in_folder and name != model.name:
            found.append((fmt, folder / name))
    for suffix in PREVIEW_SUFFIXES:
        if stem + suffix in names_in_folder:
            found.append(("preview", folder / (stem + suffix)))
            break
    return found


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for w in value:
        if isinstance(w, str) and w.strip() and w.strip() not in out:
            out.append(w.strip())
    return out


def _hashes(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            continue
        k = str(key).lower().replace("_", "")
        v = value.strip().lower().removeprefix("0x")
        if k in ("sha256", "autov3", "crc32", "blake3", "autov2", "autov1"):
            out[k] = v
    return out


def _civitai_version(obj: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Fields of a Civitai model-version object (civitai-helper's ``.civitai.info``, Lora-Manager's ``civitai``)."""
    model = obj.get("model") if isinstance(obj.get("model"), dict) else {}
    data: dict[str, Any] = {
        "source": "civitai" if obj.get("id") is not None or obj.get("modelId") is not None else None,
        "model_id": _text(obj.get("modelId")), "version_id": _text(obj.get("id")),
        "model_name": _text(model.get("name")), "version_name": _text(obj.get("name")),
        "model_type": _text(model.get("type")), "base_model": _text(obj.get("baseModel")),
        "trained_words": _words(obj.get("trainedWords")), "nsfw": model.get("nsfw"),
        "description": _text(obj.get("description")),
    }
    files = [f for f in obj.get("files") or [] if isinstance(f, dict)]
    # The file entry that is this model: by name, else the primary one, else the only one.
    mine = [f for f in files if f.get("name") == model_name] or [f for f in files if f.get("primary")] or (
        files if len(files) == 1 else [])
    if mine:
        data["hashes"] = _hashes(mine[0].get("hashes"))
    return data


def read_sidecar(fmt: str, path: Path, model_name: str) -> dict[str, Any]:
    """The fields of one sidecar. Raises ``ValueError`` (a one-line reason) when it is not what its name says."""
    if fmt == "preview":
        return {"preview": str(path)}
    raw = path.read_bytes()
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"{len(raw)} bytes: too large for a sidecar")
    try:
        obj = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    data: dict[str, Any]
    if fmt == "civitai_info":
        data = _civitai_version(obj, model_name)
    elif fmt == "cm_info":
        data = {
            "source": "civitai" if obj.get("ModelId") is not None else None,
            "model_id": _text(obj.get("ModelId")), "version_id": _text(obj.get("VersionId")),
            "model_name": _text(obj.get("UserTitle")) or _text(obj.get("ModelName")),
            "version_name": _text(obj.get("VersionName")), "model_type": _text(obj.get("ModelType")),
            "base_model": _text(obj.get("BaseModel")), "trained_words": _words(obj.get("TrainedWords")),
            "description": _text(obj.get("ModelDescription")), "nsfw": obj.get("Nsfw"),
            "tags": _words(obj.get("Tags")), "hashes": _hashes(obj.get("Hashes")),
        }
    elif fmt == "lora_manager":
        civ = obj.get("civitai") if isinstance(obj.get("civitai"), dict) else {}
        data = _civitai_version(civ, model_name) if civ else {}
        weight = None
        tips = obj.get("usage_tips")
        if isinstance(tips, str) and tips.strip():
            try:
                tips = json.loads(tips)
            except json.JSONDecodeError:
                tips = None
        if isinstance(tips, dict) and isinstance(tips.get("strength"), (int, float)):
            weight = float(tips["strength"])
        data.update({k: v for k, v in {
            "model_name": _text(obj.get("model_name")), "base_model": _text(obj.get("base_model")),
            "notes": _text(obj.get("notes")), "preferred_weight": weight,
            "trained_words": _words(obj.get("trainedWords")) or data.get("trained_words"),
            "tags": _words(obj.get("tags")), "description": _text(obj.get("modelDescription")),
        }.items() if v})
        hashes = dict(data.get("hashes") or {})
        hashes.update(_hashes({"sha256": obj.get("sha256"), "autov3": obj.get("autov3")}))
        if hashes:
            data["hashes"] = hashes
        preview = _text(obj.get("preview_url"))
        if preview and not preview.startswith(("http://", "https://")):
            data["preview"] = preview
    elif fmt == "swarm":
        def spec(key: str) -> Any:
            return obj.get(f"modelspec.{key}", obj.get(key))

        weight = spec("lora_default_weight")
        tensor_hash = _text(spec("hash_sha256"))
        data = {
            "model_name": _text(spec("title")), "description": _text(spec("description")),
            "trained_words": _words(spec("trigger_phrase")), "tags": _words(spec("tags")),
            "architecture": _text(spec("architecture")), "author": _text(spec("author")),
            "preferred_weight": float(weight) if _is_number(weight) else None,
            # Swarm's hash_sha256 is over the tensor bytes after the header: sdhub's AutoV3 bytes.
            "hashes": _hashes({"autov3": tensor_hash}) if tensor_hash else {},
        }
    elif fmt == "a1111":
        if not any(k in obj for k in ("activation text", "preferred weight", "negative text", "notes", "sd version",
                                      "description", "vae", "modelId", "sha256")):
            raise ValueError("no A1111 user-metadata keys (activation text, notes, sd version…)")
        weight = obj.get("preferred weight")
        data = {
            "activation_text": _text(obj.get("activation text")),
            "trained_words": _words(obj.get("activation text")),
            "preferred_weight": float(weight) if _is_number(weight) and float(weight) != 0 else None,
            "negative_text": _text(obj.get("negative text")), "notes": _text(obj.get("notes")),
            "description": _text(obj.get("description")), "sd_version": _text(obj.get("sd version")),
            "preferred_vae": _text(obj.get("vae")),
            "source": "civitai" if obj.get("modelId") is not None else None,
            "model_id": _text(obj.get("modelId")),
            "hashes": _hashes({"sha256": obj.get("sha256")}),
        }
    else:
        raise ValueError(f"unknown sidecar format {fmt!r}")
    return {k: v for k, v in data.items() if v not in (None, [], {}, "")}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
            return True
        except ValueError:
            return False
    return False


def contradiction(claimed: dict[str, str], ours: dict[str, str | None]) -> str | None:
    """Why a sidecar's hashes do not describe the file (None when they agree or cannot be compared)."""
    for name in ("sha256", "blake3", "autov3", "autov2", "crc32"):
        theirs = claimed.get(name)
        mine = ours.get(name)
        if not theirs or not mine:
            continue
        if name == "crc32":
            if theirs not in (mine, bytes.fromhex(mine)[::-1].hex() if len(mine) == 8 else mine):
                return f"its CRC32 {theirs.upper()} is not the file's ({mine.upper()})"
            continue
        if not (mine.startswith(theirs) if name == "autov2" or len(theirs) < len(mine) else mine == theirs):
            return f"its {name.upper()} {theirs[:12]}… is not the file's ({mine[:12]}…)"
    return None


FIELDS_SHOWN = ("source", "model_id", "version_id", "model_name", "version_name", "model_type", "base_model",
                "trained_words", "activation_text", "preferred_weight", "negative_text", "sd_version", "notes",
                "description", "preview", "tags", "nsfw")


def merge(sidecars: list[dict[str, Any]]) -> dict[str, Any]:
    """One view over a file's trusted sidecars: ``{field: {"value": v, "from": sidecar path}}``.

    ``sidecars`` are ``{"path", "format", "data", "problem"}`` in reading order; a sidecar with a problem
    is skipped, and the first one with a value for a field wins.
    """
    order = {fmt: i for i, (_, fmt) in enumerate(FORMATS)}
    order["preview"] = len(order)
    merged: dict[str, Any] = {}
    for sc in sorted(sidecars, key=lambda s: (order.get(s["format"], 99), s["path"])):
        if sc.get("problem"):
            continue
        for key in FIELDS_SHOWN:
            value = (sc.get("data") or {}).get(key)
            if value not in (None, [], "") and key not in merged:
                merged[key] = {"value": value, "from": sc["path"]}
    return merged

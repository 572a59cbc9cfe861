"""A1111/Forge infotext (the PNG ``parameters`` text), Civitai's additions, and sdhub's own (interop.md §7)."""

from __future__ import annotations

import json
import re
from typing import Any

from .model import CIVITAI_TYPES, Resource

# A1111's parse_generation_parameters: ``Key: value`` or ``Key: "quoted, value"``, comma separated.
_PARAM = re.compile(r'\s*([\w][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_TAG = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::([-+]?[0-9]*\.?[0-9]+))?[^>]*>", re.IGNORECASE)
_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F]{8,64}$")
_JSON_KEYS = ("Hashes", "Civitai resources", "Civitai metadata")


def looks_like_infotext(text: str) -> bool:
    """Whether ``text`` has the ``Steps:`` parameter line (or a hash field) every A1111-style writer adds."""
    return bool(re.search(r"(^|\n|, )(Steps|Model hash|Model|Lora hashes|Hashes|Civitai resources): ", text))


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value[1:-1]
    return value


def _hash_kind(value: str) -> str | None:
    """A1111 writes AutoV2 (10 hex) for checkpoints and 12-hex AutoV3/SHA-256 prefixes for LoRAs and TIs."""
    return {8: "autov1", 10: "autov2", 12: "autov3", 64: "sha256"}.get(len(value.removeprefix("0x")))


def _pull_json(text: str) -> tuple[str, dict[str, Any]]:
    """Cut ``Hashes: {…}`` and ``Civitai resources: […]`` out before the comma split (their JSON has commas)."""
    found: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    for key in _JSON_KEYS:
        m = re.search(rf"(^|, |\n){re.escape(key)}: ?(?=[\[{{])", text)
        if not m:
            continue
        try:
            value, end = decoder.raw_decode(text, m.end())
        except ValueError:
            continue
        found[key] = value
        text = text[: m.start()] + (", " if m.group(1) == ", " else m.group(1)) + text[end:].lstrip(", ")
    return text, found


def split_infotext(text: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``(prompt and negative prompt text, parameters, JSON parameters)``."""
    text, json_params = _pull_json(text.strip())
    lines = text.split("\n")
    params_line = ""
    if lines and _PARAM.findall(lines[-1]) and len(_PARAM.findall(lines[-1])) >= 1 and ":" in lines[-1]:
        params_line = lines.pop()
    params: dict[str, str] = {}
    for key, value in _PARAM.findall(params_line):
        params[key.strip()] = _unquote(value)
    return "\n".join(lines), params, json_params


def _pairs(value: str) -> list[tuple[str, str]]:
    """``"name1: abc, name2: def"`` → pairs (names may hold spaces; A1111 strips ``:`` and ``,`` from them)."""
    out = []
    for part in value.split(","):
        name, sep, rest = part.rpartition(":")
        if sep and name.strip():
            out.append((name.strip(), rest.strip()))
    return out


def parse_infotext(text: str, where: str) -> list[Resource]:
    """Every model an infotext names, in order (duplicates are merged later)."""
    prompt, params, js = split_infotext(text)
    out: list[Resource] = []

    def add(res: Resource, field_name: str) -> None:
        res.found_in.append(f"{where}: {field_name}")
        out.append(res)

    model_hash = params.get("Model hash", "")
    if model_hash or params.get("Model"):
        add(Resource("checkpoint", name=params.get("Model") or None,
                     hash=model_hash if _HEX.match(model_hash) else None,
                     hash_kind=_hash_kind(model_hash) if _HEX.match(model_hash) else None), "Model hash")
    vae_hash = params.get("VAE hash", "")
    if vae_hash or params.get("VAE"):
        add(Resource("vae", name=params.get("VAE") or None, hash=vae_hash if _HEX.match(vae_hash) else None,
                     hash_kind=_hash_kind(vae_hash) if _HEX.match(vae_hash) else None), "VAE hash")
    weights = {name: value for name, value in _pairs(params.get("Lora weights", ""))}
    for field_name, kind in (("Lora hashes", "lora"), ("TI hashes", "embedding")):
        for name, value in _pairs(params.get(field_name, "")):
            if _HEX.match(value):
                add(Resource(kind, name=name, hash=value, hash_kind=_hash_kind(value),
                             weight=_float(weights.get(name)) if kind == "lora" else None), field_name)
    hashes = js.get("Hashes")
    if isinstance(hashes, dict):
        for key, value in hashes.items():
            if not isinstance(value, str) or not _HEX.match(value):
                continue
            key = str(key)
            kind, _, name = key.partition(":")
            kind = {"model": "checkpoint", "vae": "vae", "lora": "lora", "lyco": "lora", "embed": "embedding",
                    "hypernet": "hypernetwork"}.get(kind.lower(), "unknown")
            add(Resource(kind, name=name or None, hash=value, hash_kind=_hash_kind(value)), f"Hashes[{key}]")
    resources = js.get("Civitai resources")
    if isinstance(resources, list):
        for i, entry in enumerate(resources):
            if isinstance(entry, dict):
                res = _civitai_resource(entry)
                if res is not None:
                    add(res, f"Civitai resources[{i}]")
    for m in _TAG.finditer(prompt):
        kind = "hypernetwork" if m.group(1).lower() == "hypernet" else "lora"
        add(Resource(kind, name=m.group(2).strip(), weight=_float(m.group(3))), f"<{m.group(1)}:…> tag")
    return out


def _civitai_resource(entry: dict[str, Any]) -> Resource | None:
    kind = CIVITAI_TYPES.get(str(entry.get("type") or "").lower().replace(" ", ""), "unknown")
    air = entry.get("air")
    vid = entry.get("modelVersionId")
    ref = air if isinstance(air, str) and air.startswith("urn:air:") else (
        f"civitai:@{int(vid)}" if isinstance(vid, (int, str)) and str(vid).isdigit() else None)
    name = entry.get("modelName") or entry.get("name")
    if ref is None and not name:
        return None
    if isinstance(name, str) and entry.get("modelVersionName"):
        name = f"{name} ({entry['modelVersionName']})"
    return Resource(kind, name=str(name) if name else None, ref=ref, weight=_float(entry.get("weight")))


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None

"""ComfyUI without links: sdhub's own section of ``extra_model_paths.yaml`` (interop.md §1.2).

ComfyUI reads every top-level section; in each, ``base_path`` is popped and every other key is a
folder_paths key whose value is split on newlines (a ``|`` block gives several folders). sdhub writes
only its own section (``sdhub:`` by default) as text, so the other sections keep their comments and
formatting byte for byte, and checks with PyYAML that they still parse to what they were.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import LinkError

# sdhub kind -> ComfyUI folder_paths key. Text encoders under the legacy key ``clip``: every ComfyUI reads it
# (newer ones map it to text_encoders); ``diffusion_models`` is known since unet was renamed.
COMFY_KEYS = {
    "checkpoint": "checkpoints",
    "diffusion_model": "diffusion_models",
    "vae": "vae",
    "text_encoder": "clip",
    "lora": "loras",
    "embedding": "embeddings",
    "controlnet": "controlnet",
    "upscaler": "upscale_models",
    "clip_vision": "clip_vision",
    "hypernetwork": "hypernetworks",
}


def section_text(name: str, base_path: Path, folders: dict[str, list[str]]) -> str:
    """The YAML of one section: ``base_path`` and each key's folders (relative to it), ``|`` blocks for several."""
    lines = [f"{name}:", f"    base_path: {_scalar(str(base_path))}"]
    for key in sorted(folders):
        paths = sorted(dict.fromkeys(folders[key]))
        if not paths:
            continue
        if len(paths) == 1:
            lines.append(f"    {key}: {_scalar(paths[0])}")
        else:
            lines.append(f"    {key}: |")
            lines += [f"        {p}" for p in paths]
    return "\n".join(lines) + "\n"


def _scalar(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./~\\-][A-Za-z0-9_./\\ -]*", text) and not text.endswith(" "):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_TOP = re.compile(r"^(?P<key>[^\s#][^:]*):")


def replace_section(text: str, name: str, new_section: str) -> str:
    """``text`` with top-level section ``name`` replaced by ``new_section`` (appended if absent)."""
    lines = text.splitlines(keepends=True)
    start = None
    for i, line in enumerate(lines):
        m = _TOP.match(line)
        if m and m.group("key").strip().strip("'\"") == name:
            start = i
            break
    if start is None:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        gap = "\n" if prefix.strip() else ""
        return prefix + gap + new_section
    end = len(lines)
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if line.strip() and not line[0].isspace():
            end = j
            break
    # Blank lines just before the next section stay with it.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return "".join(lines[:start]) + new_section + "".join(lines[end:])


def _parse(text: str, path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise LinkError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix it first, sdhub leaves it alone")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LinkError(f"{path} is not a map of sections as ComfyUI expects; sdhub leaves it alone")
    return data


def write_extra_paths(path: str | os.PathLike[str], name: str, base_path: Path, folders: dict[str, list[str]], *,
                      dry_run: bool = False) -> dict[str, Any]:
    """Write or update section ``name`` of the yaml at ``path``; other sections untouched. Returns a report."""
    target = Path(path).expanduser()
    if target.is_dir():
        target = target / "extra_model_paths.yaml"
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    before = _parse(old, target)
    section = section_text(name, base_path, folders)
    new = replace_section(old, name, section)
    after = _parse(new, target)
    others_before = {k: v for k, v in before.items() if k != name}
    others_after = {k: v for k, v in after.items() if k != name}
    if others_before != others_after:  # pragma: no cover - a guard: the text splice must never change them
        raise LinkError(f"updating {target} would change other sections; left as it was")
    status = "unchanged" if new == old else ("updated" if name in before else "written")
    if status != "unchanged" and not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.sdhub-tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, target)
    return {"file": str(target), "section": name, "status": status, "dry_run": dry_run,
            "base_path": str(base_path), "folders": {k: sorted(set(v)) for k, v in folders.items() if v},
            "text": section}


def store_folders(store: Path, store_layout: str, records: list[Any]) -> dict[str, list[str]]:
    """ComfyUI key -> folders (relative to ``store``) that hold that kind of model."""
    folders: dict[str, list[str]] = {}
    by_kind = store_layout.replace("\\", "/").lstrip("/").startswith("{kind}/")
    if by_kind:
        for kind, key in COMFY_KEYS.items():
            folders.setdefault(key, []).append(kind)
        return folders
    for rec in records:
        key = COMFY_KEYS.get(rec.kind or "")
        p = Path(rec.path)
        if key is None or store not in p.parents:
            continue
        folders.setdefault(key, []).append(p.parent.relative_to(store).as_posix() or ".")
    # A folder whose parent is already listed adds nothing (ComfyUI walks folders recursively).
    for key, paths in folders.items():
        uniq = sorted(set(paths))
        folders[key] = [p for p in uniq if not any(p != q and (q == "." or p.startswith(q + "/")) for q in uniq)]
    return folders

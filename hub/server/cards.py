"""What a catalogue card shows beyond the record itself: disk state, preview, fits, evidence, updates.

Computed for the few files on screen (never for the whole catalogue), from the catalogue, the files'
stat and the sidecars beside them; only :func:`check_updates` asks the network, and only when the
user asks for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..errors import SdhubError

ADDON_KINDS = ("lora", "vae", "embedding", "text_encoder")
BASE_KINDS = ("checkpoint", "diffusion_model")
NSFW_BY_FLAG = 8  # a preview of a model its source flags NSFW, when nothing says the image's own level
FIT_SCAN_LIMIT = 2000  # candidates read per family and kind when working out what fits


def configured_nsfw_level(hub: Any) -> int:
    """``[sidecars] nsfw_level`` (1 when unset or unreadable): the page's default blur threshold."""
    from ..interop.install_hooks import preview_nsfw_level

    try:
        return preview_nsfw_level(hub)
    except SdhubError:
        return 1


def _record(hub: Any, sha: str) -> Any | None:
    found = [r for r in hub.catalogue.by_hash(sha) if r.sha256 == sha]
    return found[0] if found else None


def disk_state(record: Any) -> tuple[str, str | None]:
    """``ok``, ``missing`` or ``changed`` (size or mtime differ from the catalogue, or verify found a mismatch)."""
    try:
        st = os.stat(record.path)
    except OSError:
        return "missing", f"{record.path} is no longer on disk"
    if os.path.isdir(record.path):
        return ("changed", record.verify_detail) if record.verify_status == "mismatch" else ("ok", None)
    if st.st_size != record.size:
        return "changed", f"{record.path} is {st.st_size} bytes now, {record.size} when catalogued"
    if st.st_mtime_ns != record.mtime_ns:
        return "changed", f"{record.path} was modified since it was catalogued (`sdhub verify` re-hashes it)"
    if record.verify_status == "mismatch":
        return "changed", record.verify_detail or "`sdhub verify` found its hashes changed"
    return "ok", None


def preview_path(hub: Any, sha: str) -> Path | None:
    """The preview image beside the file (a sidecar scan or an install found or wrote it)."""
    record = _record(hub, sha)
    return _preview_of(record) if record is not None else None


def _preview_of(record: Any, listings: dict[Path, set[str]] | None = None) -> Path | None:
    """The preview the sidecar scan recorded, else one beside the file now (``listings`` caches folder listings)."""
    preview = (record.metadata.get("preview") or {}).get("value")
    candidates = [preview] if preview else []
    from ..interop.sidecars import find_sidecars

    if not candidates and not os.path.isdir(record.path):
        folder = Path(record.path).parent
        if listings is None:
            listings = {}
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except OSError:
                listings[folder] = set()
        candidates = [str(p) for fmt, p in find_sidecars(Path(record.path), listings[folder]) if fmt == "preview"]
    for cand in candidates:
        p = Path(cand)
        if p.is_file():
            return p
    return None


def _preview_level(record: Any, preview: Path, allowed: int) -> int:
    """The preview's NSFW level: from the Civitai version JSON beside it, else the model's NSFW flag."""
    from ..interop.install_hooks import pick_preview
    from ..interop.sidecars import model_stem

    info = Path(record.path).with_name(model_stem(Path(record.path).name) + ".civitai.info")
    if preview.name.startswith(model_stem(Path(record.path).name) + ".preview.") and info.is_file():
        try:
            version = json.loads(info.read_text(encoding="utf-8-sig"))
            img = pick_preview(version, allowed) if isinstance(version, dict) else None
            if img is not None and isinstance(img.get("nsfwLevel"), int):
                return int(img["nsfwLevel"])
        except (OSError, ValueError):
            pass
    flagged = any(s.nsfw for s in record.sources) or bool((record.metadata.get("nsfw") or {}).get("value"))
    return NSFW_BY_FLAG if flagged else 1


def _ident(record: Any) -> Any | None:
    from ..identify.model import Identification

    if not record.identification:
        return None
    return Identification.from_dict(record.identification)


def _fit_families(ident: Any) -> list[str]:
    if ident.kind == "lora":
        target = ident.lora.target if ident.lora else ident.family
        return [target] if target and target != "unknown" else []
    return list(ident.candidates or ([ident.family] if ident.family != "unknown" else []))


class _Fits:
    """Bases (checkpoints, diffusion models) and add-ons by family, read once per request."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._by: dict[tuple[str, str], list[tuple[Any, Any]]] = {}

    def _load(self, family: str, kind: str) -> list[tuple[Any, Any]]:
        key = (family, kind)
        if key not in self._by:
            rows = self.hub.catalogue.list(family=family, kind=kind, limit=FIT_SCAN_LIMIT)
            self._by[key] = [(r, i) for r in rows if (i := _ident(r)) is not None]
        return self._by[key]

    def for_record(self, record: Any, ident: Any, names: int) -> dict[str, Any] | None:
        from ..identify import check_compatible

        if ident is None:
            return None
        found: list[Any] = []
        if ident.kind in ADDON_KINDS:
            role = "bases"
            for fam in _fit_families(ident):
                for kind in BASE_KINDS:
                    found += [r for r, base in self._load(fam, kind) if r.id != record.id and check_compatible(base, ident)]
        elif ident.kind in BASE_KINDS and ident.family != "unknown":
            role = "addons"
            for kind in ADDON_KINDS:
                pool = self._load(ident.family, kind) + (self._load("unknown", kind) if kind != "lora" else [])
                found += [r for r, addon in pool if r.id != record.id and check_compatible(ident, addon)]
        else:
            return None
        found.sort(key=lambda r: r.name.lower())
        return {"role": role, "count": len(found),
                "files": [{"sha256": r.sha256, "name": r.name, "kind": r.kind} for r in found[:names]]}


def card_details(hub: Any, shas: list[str], *, fit_names: int = 6) -> dict[str, Any]:
    """``{sha256: details}`` for each catalogued file named (unknown hashes are left out)."""
    allowed = configured_nsfw_level(hub)
    fits = _Fits(hub)
    out: dict[str, Any] = {}
    listings: dict[Path, set[str]] = {}
    links_by_file: dict[int, list[dict[str, Any]]] = {}
    try:
        for link in hub.catalogue.links():
            links_by_file.setdefault(link["file_id"], []).append(link)
    except SdhubError:
        pass
    by_sha: dict[str, Any] = {}
    for rec in hub.catalogue.by_sha256s(shas):
        if rec.sha256 not in by_sha or (not os.path.exists(by_sha[rec.sha256].path) and os.path.exists(rec.path)):
            by_sha[rec.sha256] = rec  # two copies of one content: the one still on disk speaks for it
    for sha in dict.fromkeys(shas):
        record = by_sha.get(sha)
        if record is None:
            continue
        ident = _ident(record)
        state, detail = disk_state(record)
        preview = _preview_of(record, listings)
        words: list[str] = []
        for src in record.sources:
            words += [w for w in src.trained_words if w not in words]
        for key in ("trained_words", "activation_text"):
            value = (record.metadata.get(key) or {}).get("value")
            items = value if isinstance(value, list) else str(value).split(",") if value else []
            for w in (str(i).strip() for i in items):  # A1111's activation text is one comma-separated line
                if w and w not in words:
                    words.append(w)
        out[sha] = {
            "sha256": sha,
            "id": record.id,
            "disk": state,
            "disk_detail": detail,
            "preview": f"/api/sdhub/v1/ui/preview/{sha}" if preview else None,
            "preview_nsfw_level": _preview_level(record, preview, allowed) if preview else None,
            "trigger_words": words,
            "evidence": [e.to_dict() for e in ident.evidence] if ident else [],
            "identify_error": record.identify_error,
            "fits": fits.for_record(record, ident, fit_names),
            "family_mismatch": record.family_mismatch,
            "kind_mismatch": record.kind_mismatch,
            "links": [{"path": ln["path"], "layout": ln["layout"], "mode": ln["mode"]}
                      for ln in links_by_file.get(record.id, [])],
            "notes": {k: v.get("value") for k, v in record.metadata.items()
                      if k in ("notes", "description", "activation_text", "preferred_weight", "negative_text")},
        }
    return out


def check_updates(hub: Any, shas: list[str]) -> dict[str, Any]:
    """``{sha256: {"update": bool, "latest": ref, "version_name": …}}`` by asking each file's source."""
    from ..sources.install import build_context, plan_for
    from ..sources.protocol import get_sources

    sources = {s.name: s for s in get_sources()}
    ctx = build_context(hub)
    out: dict[str, Any] = {}
    for sha in dict.fromkeys(shas):
        record = _record(hub, sha)
        if record is None:
            continue
        answer: dict[str, Any] = {"update": False, "checked": [], "errors": []}
        for info in record.sources:
            source = sources.get(info.source)
            ref = source.ref_for(info) if source is not None else None
            if ref is None or not info.version_id:
                continue
            latest = dataclasses.replace(ref, version_id=None, selectors=(),
                                         file=ref.file if ref.scheme == "hf" else None)
            try:
                _source, plan = plan_for(hub, latest, ctx)
            except SdhubError as exc:
                answer["errors"].append(f"{info.source}: {exc}")
                continue
            answer["checked"].append(info.source)
            now = plan.source_info.version_id
            if now and str(now) != str(info.version_id):
                answer.update(update=True, latest=plan.ref, source=info.source,
                              version_name=plan.source_info.version_name)
                break
        out[sha] = answer
    return out

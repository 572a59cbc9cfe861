"""Plain values that leave the catalogue: no session, no lazy loading, stable ``to_dict()`` shapes.

The ``to_dict()`` shapes are what ``--json`` prints; scripts depend on them, so fields are only
ever added, never renamed or removed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

_REPR_OBJECT = re.compile(r"^\{.*\}$", re.S)


def tag_names(value: Any) -> list[str]:
    """Tags as plain strings, whatever shape a source sent them in.

    Civitai sends ``["anime"]`` today and ``[{"name": "anime"}]`` in older answers; LiblibAI sends
    ``[{"id": 1, "name": "插画"}]``; catalogues written before this fix hold the Python repr
    ``"{'name': 'punk'}"``. Nameless objects are dropped, duplicates kept once, order kept.
    """
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and _REPR_OBJECT.match(item.strip()):
            try:
                item = ast.literal_eval(item.strip())  # a stored repr of a tag object
            except (ValueError, SyntaxError):
                pass
        if isinstance(item, dict):
            inner = item.get("tag") if isinstance(item.get("tag"), dict) else item
            item = inner.get("name") if inner.get("name") not in (None, "") else None
        if item is None or isinstance(item, dict | list):
            continue
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


@dataclass
class SourceInfo:
    """What a source knows about a file: handed over by source plugins at install/lookup time."""

    source: str
    model_id: str
    version_id: str | None = None
    file_id: str | None = None
    model_name: str | None = None
    version_name: str | None = None
    model_type: str | None = None
    base_model: str | None = None
    page_url: str | None = None
    download_url: str | None = None
    original_filename: str | None = None
    published_hashes: dict[str, str] = field(default_factory=dict)
    trained_words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    nsfw: bool | None = None
    license: dict[str, Any] | None = None
    creator: str | None = None
    description: str | None = None
    claimed_family: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    claimed_kind: str | None = None  # our kind name for what the source says the file is (kept in extra)

    def __post_init__(self) -> None:
        self.tags = tag_names(self.tags)  # every source's shapes, and old catalogues' reprs, become strings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileRecord:
    """A catalogued file as the API returns it."""

    id: int
    path: str
    name: str
    format: str
    size: int
    mtime_ns: int
    sha256: str | None
    autov1: str | None
    autov3: str | None
    crc32: str | None
    blake3: str | None
    family: str | None
    kind: str | None
    variant: str | None
    precision: str | None
    identification: dict[str, Any] | None
    identify_error: str | None
    hash_error: str | None
    family_mismatch: str | None
    added_at: datetime | None
    verified_at: datetime | None
    verify_status: str | None
    verify_detail: str | None
    sources: list[SourceInfo] = field(default_factory=list)
    # What other tools' sidecars beside the file say: {"path", "format", "data", "problem"} each.
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    kind_mismatch: str | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """The trusted sidecars merged: ``{field: {"value": …, "from": sidecar path}}``."""
        from ..interop.sidecars import merge

        return merge(self.sidecars)

    @property
    def autov2(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    @property
    def autov3_short(self) -> str | None:
        return self.autov3[:12] if self.autov3 else None

    @property
    def source_names(self) -> list[str]:
        return sorted({s.source for s in self.sources})

    def hashes(self) -> dict[str, str | None]:
        return {
            "sha256": self.sha256,
            "autov1": self.autov1,
            "autov2": self.autov2,
            "autov3": self.autov3,
            "crc32": self.crc32,
            "blake3": self.blake3,
        }

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The ``sdhub list --json`` shape; ``full`` adds identification and evidence (``sdhub info``)."""
        data: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "name": self.name,
            "format": self.format,
            "size": self.size,
            "family": self.family,
            "kind": self.kind,
            "variant": self.variant,
            "precision": self.precision,
            "hashes": self.hashes(),
            "sources": [
                {
                    "source": s.source,
                    "model_id": s.model_id,
                    "version_id": s.version_id,
                    "model_name": s.model_name,
                    "version_name": s.version_name,
                    "model_type": s.model_type,
                    "base_model": s.base_model,
                    "page_url": s.page_url,
                    "trained_words": s.trained_words,
                    "tags": s.tags,
                    "nsfw": s.nsfw,
                    "creator": s.creator,
                    "license": s.license,
                    "published_hashes": s.published_hashes,
                }
                for s in self.sources
            ],
            "family_mismatch": self.family_mismatch,
            "metadata": self.metadata,
            "sidecars": [dict(sc) for sc in self.sidecars],
            "kind_mismatch": self.kind_mismatch,
            "added_at": self.added_at.isoformat() if self.added_at else None,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "verify_status": self.verify_status,
        }
        if full:
            data["identification"] = self.identification
            data["identify_error"] = self.identify_error
            data["hash_error"] = self.hash_error
            data["verify_detail"] = self.verify_detail
            data["mtime_ns"] = self.mtime_ns
        return data

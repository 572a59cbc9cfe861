"""What sits beside a ``.part``: the validators and segment progress that make a later resume safe (a changed file
is never stitched onto old bytes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .http import redact_url

PART_SUFFIX = ".part"
STATE_SUFFIX = ".part.json"
LOCK_SUFFIX = ".lock"


@dataclass
class PartState:
    """What is persisted beside the .part so a later run can resume safely."""

    url: str  # for people reading the file; without its query (a signed link must not sit on disk)
    expected_sha256: str | None
    total: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    segments: list[list[int]] | None = None  # [start, end_exclusive, done]

    @classmethod
    def load(cls, path: Path) -> PartState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.__dict__), encoding="utf-8")
        os.replace(tmp, path)


def keep_resumable(part: Path, url: str, expected_sha256: str | None = None) -> None:
    """Record that ``part`` holds a whole file, so the next fetch of it only asks whether anything is left.

    :mod:`hub.install` calls it when a finished download could not be registered (interrupted
    while fingerprinting, the store not writable): the next run reuses the bytes.
    """
    name = part.name.removesuffix(PART_SUFFIX)
    PartState(url=redact_url(url), expected_sha256=expected_sha256, total=part.stat().st_size).save(part.with_name(name + STATE_SUFFIX))

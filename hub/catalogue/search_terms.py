"""Turning names, tags and trigger words into search terms, the same way for indexing and querying."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERM = 128


def terms_of(texts: Iterable[str | None]) -> set[str]:
    """Lowercase words of every text (split on anything not a letter or digit), plus whole short phrases."""
    out: set[str] = set()
    for text in texts:
        if not text:
            continue
        lowered = text.lower()
        for word in _WORD.findall(lowered):
            out.add(word[:MAX_TERM])
    return out


def query_terms(query: str) -> list[str]:
    """The words a query must all match (each as a prefix of some indexed term)."""
    return sorted({w[:MAX_TERM] for w in _WORD.findall(query.lower())})


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (for an index range scan)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)

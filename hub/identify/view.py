"""Read-only views of a parsed header that family matchers query.

A matcher never sees the file: it asks a :class:`HeaderView` for the shape of a key, whether any
key starts with a prefix, or the highest block index, all answered from the header's names in
O(1) or O(log n) (a dict lookup or a bisect over the sorted names) so that running a dozen
matchers costs microseconds, not a pass over thousands of names each.

:meth:`HeaderView.sub` strips a component prefix (``model.diffusion_model.``); ``view.model`` is
the diffusion-model part wherever the file keeps it (LDM prefix, ComfyUI ``diffusion_model.``, or
bare as in ``flux1-dev.safetensors`` and diffusers ``diffusion_pytorch_model.safetensors``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from functools import cached_property
from typing import Any

# Where LDM/SGM and other single-file layouts keep the diffusion model, most specific first
# (ComfyUI's rule: the chosen prefix must hold more than 5 keys).
MODEL_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.model.", "net.")
_PREFIX_MIN_KEYS = 5


class _Names:
    """The sorted tensor names of one header, shared by all views of it."""

    __slots__ = ("raw", "sorted")

    def __init__(self, raw: dict[str, dict[str, Any]]) -> None:
        self.raw = raw
        self.sorted = sorted(raw)

    def count_prefix(self, prefix: str) -> int:
        if not prefix:
            return len(self.sorted)
        lo = bisect_left(self.sorted, prefix)
        hi = bisect_left(self.sorted, prefix[:-1] + chr(ord(prefix[-1]) + 1), lo)
        return hi - lo

    def has_prefix(self, prefix: str) -> bool:
        i = bisect_left(self.sorted, prefix)
        return i < len(self.sorted) and self.sorted[i].startswith(prefix)

    def with_prefix(self, prefix: str) -> list[str]:
        if not prefix:
            return list(self.sorted)
        lo = bisect_left(self.sorted, prefix)
        hi = bisect_left(self.sorted, prefix[:-1] + chr(ord(prefix[-1]) + 1), lo)
        return self.sorted[lo:hi]


class HeaderView:
    """Tensor names -> (dtype, shape) and ``__metadata__``, seen under an optional key prefix."""

    def __init__(self, raw: dict[str, dict[str, Any]], metadata: dict[str, str] | None = None, *,
                 prefix: str = "", _names: _Names | None = None) -> None:
        self._names = _names if _names is not None else _Names(raw)
        self.prefix = prefix
        self.metadata = metadata or {}

    # -- single keys ------------------------------------------------------------------------
    def shape(self, key: str) -> tuple[int, ...] | None:
        entry = self._names.raw.get(self.prefix + key)
        return None if entry is None else tuple(entry["shape"])

    def dtype(self, key: str) -> str | None:
        entry = self._names.raw.get(self.prefix + key)
        return None if entry is None else entry["dtype"]

    def has(self, key: str) -> bool:
        return self.prefix + key in self._names.raw

    def dim(self, key: str, index: int) -> int | None:
        """``shape[index]`` of ``key``, or None when the key is absent or has fewer dims."""
        shape = self.shape(key)
        if shape is None or not -len(shape) <= index < len(shape):
            return None
        return shape[index]

    def full(self, key: str) -> str:
        """The key as written in the file (with this view's prefix), for evidence."""
        return self.prefix + key

    # -- prefixes ---------------------------------------------------------------------------
    def count(self, prefix: str = "") -> int:
        """How many keys start with ``prefix`` (relative to this view)."""
        return self._names.count_prefix(self.prefix + prefix)

    def has_prefix(self, prefix: str) -> bool:
        return self._names.has_prefix(self.prefix + prefix)

    def keys(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, with this view's prefix removed, sorted."""
        cut = len(self.prefix)
        return [k[cut:] for k in self._names.with_prefix(self.prefix + prefix)]

    def first_keys(self, prefix: str, n: int) -> list[str]:
        """At most ``n`` keys under ``prefix`` (this view's prefix removed), without listing the rest."""
        names = self._names.sorted
        full = self.prefix + prefix
        i = bisect_left(names, full)
        cut = len(self.prefix)
        return [k[cut:] for k in names[i:i + n] if k.startswith(full)]

    def block_count(self, prefix: str, sep: str = ".") -> int:
        """Number of numbered blocks ``<prefix><i><sep>`` (0, 1, 2... without gaps)."""
        i = 0
        while self.has_prefix(f"{prefix}{i}{sep}"):
            i += 1
        return i

    def sub(self, prefix: str) -> HeaderView:
        """The same header seen under ``prefix`` (keys relative to it)."""
        return HeaderView(self._names.raw, self.metadata, prefix=self.prefix + prefix, _names=self._names)

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    # -- the diffusion model ------------------------------------------------------------------
    @cached_property
    def model_prefix(self) -> str:
        """Where the diffusion model's keys live: an LDM-style prefix, or "" (bare)."""
        for prefix in MODEL_PREFIXES:
            if self.count(prefix) > _PREFIX_MIN_KEYS:
                return prefix
        return ""

    @cached_property
    def model(self) -> HeaderView:
        return self.sub(self.model_prefix) if self.model_prefix else self

    @property
    def raw(self) -> dict[str, dict[str, Any]]:
        return self._names.raw

    @property
    def sorted_names(self) -> list[str]:
        return self._names.sorted

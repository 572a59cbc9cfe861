"""A named registry that plugins fill through ``register(item)`` callbacks.

One class serves sources, samplers, pipelines and families, so that every kind of extension gets
the same rules: names are case-insensitive, aliases resolve to the item, a second plugin claiming a
taken name is refused unless it asks to ``override``, and an item of the wrong type is refused
with a message naming the plugin. Refusals are recorded as problems, never raised into the caller,
so one bad plugin cannot take the rest of sdhub down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """Names match case-insensitively and ignore spaces/dashes/underscores differences ("Euler a" == "euler_a")."""
    return "".join(ch if ch.isalnum() or ch in "+." else "_" for ch in name.strip().lower())


@dataclass
class Registration(Generic[T]):
    """One registered item and the plugin that registered it."""

    name: str
    item: T
    plugin: str
    aliases: tuple[str, ...] = ()


class Registry(Generic[T]):
    """Items by name, with aliases, owner plugin and conflict rules."""

    def __init__(self, kind: str, item_type: type | tuple[type, ...]) -> None:
        self.kind = kind
        self.item_type = item_type
        self._by_key: dict[str, Registration[T]] = {}
        self._alias: dict[str, str] = {}
        self.problems: list[str] = []

    # -- filling -----------------------------------------------------------------------------
    def register_for(self, plugin: str) -> Callable[..., None]:
        """The ``register`` callable handed to one plugin's hook: it remembers who registered what."""

        def register(item: T, *, override: bool = False) -> None:
            self.add(item, plugin=plugin, override=override)

        return register

    def add(self, item: T, *, plugin: str, override: bool = False) -> bool:
        if not isinstance(item, self.item_type):
            expected = (
                self.item_type.__name__
                if isinstance(self.item_type, type)
                else " or ".join(t.__name__ for t in self.item_type)
            )
            self.problems.append(
                f"plugin {plugin!r} registered a {type(item).__name__} as a {self.kind}; expected a {expected}"
            )
            return False
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name.strip():
            self.problems.append(f"plugin {plugin!r} registered a {self.kind} without a name")
            return False
        key = normalise_name(name)
        existing = self._by_key.get(key) or self._by_key.get(self._alias.get(key, ""))
        if existing is not None and not override:
            self.problems.append(
                f"plugin {plugin!r} registered {self.kind} {name!r}, which plugin {existing.plugin!r} "
                f"already provides; ignored (pass override=True to replace it on purpose)"
            )
            return False
        if existing is not None:
            self._drop(existing)
        aliases = tuple(str(a) for a in getattr(item, "aliases", ()) or ())
        self._by_key[key] = Registration(name=name, item=item, plugin=plugin, aliases=aliases)
        for alias in aliases:
            akey = normalise_name(alias)
            if akey == key:
                continue
            owner = self._alias.get(akey) or (akey if akey in self._by_key else None)
            if owner is not None and owner != key and not override:
                self.problems.append(
                    f"plugin {plugin!r}: alias {alias!r} of {self.kind} {name!r} is already taken by "
                    f"{self._by_key[owner].name!r}; alias ignored"
                )
                continue
            self._alias[akey] = key
        return True

    def _drop(self, reg: Registration[T]) -> None:
        key = normalise_name(reg.name)
        self._by_key.pop(key, None)
        for alias, target in list(self._alias.items()):
            if target == key:
                del self._alias[alias]

    # -- reading -----------------------------------------------------------------------------
    def get(self, name: str) -> T | None:
        reg = self.registration(name)
        return reg.item if reg else None

    def registration(self, name: str) -> Registration[T] | None:
        key = normalise_name(name)
        if key in self._by_key:
            return self._by_key[key]
        target = self._alias.get(key)
        return self._by_key.get(target) if target else None

    def names(self) -> list[str]:
        return [r.name for r in self._by_key.values()]

    def registrations(self) -> list[Registration[T]]:
        return list(self._by_key.values())

    def __iter__(self) -> Iterator[T]:
        return iter([r.item for r in self._by_key.values()])

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.registration(name) is not None

"""The one plugin manager, and the registries plugins fill.

Entry points of the ``sdhub`` group are loaded on first use, not at ``import hub``. Built-in plugins
(``hub_plugins.*``) arrive through the same group as third-party ones. ``SDHUB_PLUGINS`` (a
comma-separated list of entry-point names) restricts which load; empty means none. A plugin that
fails to import, raises in a hook, or registers something wrong is recorded in :func:`problems`
and skipped.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from ..errors import PluginError
from .registry import Registry

ENTRY_POINT_GROUP = "sdhub"

pm = pluggy.PluginManager("sdhub")
pm.add_hookspecs(hookspecs)

_loaded = False
_problems: list[str] = []
_registries: dict[str, Registry[Any]] = {}
_dist_of: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)

# kind -> (hook name, "module:Class" of the item type). The types live in their own modules, which
# are imported only when that registry is first asked for.
REGISTRY_KINDS: dict[str, tuple[str, str]] = {
    "sources": ("register_sources", "hub.sources.protocol:Source"),
    "samplers": ("register_samplers", "hub.running.samplers:Sampler"),
    "pipelines": ("register_pipelines", "hub.running.pipelines:Pipeline"),
    "families": ("register_families", "hub.identify:Family"),
}


def load_plugins() -> None:
    """Import every allowed entry point once and register it with the manager."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    allowed_env = os.environ.get("SDHUB_PLUGINS")
    allowed = None if allowed_env is None else {n.strip() for n in allowed_env.split(",") if n.strip()}
    for ep in _entry_points():
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            module = ep.load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not break sdhub, not even by sys.exit()
            _problems.append(f"plugin {ep.name!r} failed to load: {type(exc).__name__}: {exc}")
            continue
        try:
            pm.register(module, name=ep.name)
        except Exception as exc:  # e.g. pluggy's validation of unknown hooks
            _problems.append(f"plugin {ep.name!r} was refused: {exc}")
            continue
        if ep.dist is not None:
            _dist_of[ep.name] = (ep.dist.name, ep.dist.version)


def reload_plugins() -> None:
    """Forget entry-point plugins and load them again (after installing a plugin in-process; tests)."""
    global _loaded
    for name in list(_dist_of) + [ep.name for ep in _entry_points()]:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
    _dist_of.clear()
    _problems.clear()
    _loaded = False
    reset_registries()
    load_plugins()


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def register(plugin: object, name: str) -> None:
    """Register a plugin object by hand (tests, notebooks) and forget cached registries."""
    load_plugins()
    pm.register(plugin, name=name)
    reset_registries()


def unregister(name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    reset_registries()


def reset_registries() -> None:
    """Drop filled registries so the next request calls the hooks again."""
    _registries.clear()


def _item_type(spec: str) -> type:
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def registered_families() -> list[Any]:
    """The family table identification uses by default: built-ins and plugins', highest priority first."""
    return sorted(get_registry("families"), key=lambda f: -f.priority)


def get_registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` ("sources", "samplers", "pipelines", "families"), filled on first use."""
    if kind in _registries:
        return _registries[kind]
    if kind not in REGISTRY_KINDS:
        raise PluginError(f"unknown registry {kind!r}")
    load_plugins()
    hook_name, type_spec = REGISTRY_KINDS[kind]
    reg: Registry[Any] = Registry(kind.rstrip("s"), _item_type(type_spec))
    call_each(hook_name, lambda plugin_name: {"register": reg.register_for(plugin_name)})
    _problems.extend(p for p in reg.problems if p not in _problems)
    _registries[kind] = reg
    return reg


def call_each(hook_name: str, kwargs_for: Any) -> list[Any]:
    """Call one hook plugin by plugin (built-ins first), isolating failures.

    ``kwargs_for(plugin_name)`` gives the keyword arguments for that plugin's call. Unlike
    ``pm.hook.X(...)``, an exception in one implementation is recorded and the others still run.
    """
    load_plugins()
    caller = getattr(pm.hook, hook_name)
    results = []
    # pluggy lists implementations in reverse call order; we want registration order.
    for impl in caller.get_hookimpls():
        kwargs = kwargs_for(impl.plugin_name)
        try:
            result = impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
        except (Exception, SystemExit) as exc:
            _problems.append(
                f"plugin {impl.plugin_name!r} raised in {hook_name}: {type(exc).__name__}: {exc}"
            )
            continue
        results.append(result)
    return results


def fire(hook_name: str, **kwargs: Any) -> None:
    """Fire an event hook (``model_installed``…); failures are reported, never raised."""
    call_each(hook_name, lambda _name: kwargs)


def problems() -> list[str]:
    """Warnings about plugins that failed, in the order they happened."""
    load_plugins()
    return list(_problems)


def clear_problems() -> None:
    _problems.clear()


@dataclass
class PluginInfo:
    """What ``sdhub plugins`` shows for one plugin."""

    name: str
    hooks: list[str]
    version: str | None = None
    distribution: str | None = None
    builtin: bool = False
    registers: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "registers": self.registers,
        }


def get_plugins() -> list[PluginInfo]:
    """Every registered plugin with its hooks, version and what it put into each registry."""
    load_plugins()
    infos: dict[str, PluginInfo] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(hc.name for hc in pm.get_hookcallers(plugin) or [])
        dist, version = _dist_of.get(name, (None, None))
        module_name = getattr(plugin, "__name__", type(plugin).__module__)
        infos[name] = PluginInfo(
            name=name,
            hooks=hooks,
            version=version,
            distribution=dist,
            builtin=module_name.startswith("hub_plugins."),
        )
    for kind in REGISTRY_KINDS:
        try:
            reg = get_registry(kind)
        except Exception as exc:  # the item type's module itself failed: report, keep listing
            _problems.append(f"registry {kind!r} unavailable: {exc}")
            continue
        for r in reg.registrations():
            if r.plugin in infos:
                infos[r.plugin].registers.setdefault(kind, []).append(r.name)
    return sorted(infos.values(), key=lambda i: (not i.builtin, i.name))

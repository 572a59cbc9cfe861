"""sdhub: a model hub manager and plugin framework for Stable Diffusion.

The public API. Importing ``hub`` is cheap: no torch, no diffusers, no network, no plugin loading;
everything heavy is imported on first use.

    import hub
    h = hub.Hub()                       # SDHUB_HOME / SDHUB_DB_URL / config.toml
    h.scan(["~/models"])
    model = hub.resolve("civitai:4201@130072")   # a verified local file, installed on a miss
    ok = hub.check_compatible(base_ident, lora_ident)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import SdhubError
from .plugins.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from .api import Hub

__all__ = [
    "Hub", "SdhubError", "hookimpl", "resolve", "pipeline", "check_compatible", "identify", "errors",
    "identify_path", "Identification", "fingerprint_file", "Fingerprints", "TqdmProgress", "InstallResult",
    "check_size", "serve", "serve_ui", "all_samplers", "all_pipelines", "get_registry", "fire", "get_plugins",
    "plugin_problems",
]

# Public names that live in a room of their own, loaded on first use so that ``import hub`` stays light.
# The CLI and plugins import these from ``hub``, never from the module behind them.
_LAZY: dict[str, tuple[str, str]] = {
    "Hub": (".api", "Hub"),
    "identify": (".", "identify_path"),
    "Identification": (".identify", "Identification"),
    "fingerprint_file": (".files.fingerprint", "fingerprint_file"),
    "Fingerprints": (".files.fingerprint", "Fingerprints"),
    "TqdmProgress": (".sources.download", "TqdmProgress"),
    "InstallResult": (".sources.install", "InstallResult"),
    "check_size": (".running.runtime", "check_size"),
    "serve": (".server", "serve"),
    "serve_ui": (".server.ui", "serve_ui"),
    "all_samplers": (".running.samplers", "all_samplers"),
    "all_pipelines": (".running.pipelines", "all_pipelines"),
    "get_registry": (".plugins", "get_registry"),
    "fire": (".plugins", "fire"),
    "get_plugins": (".plugins", "get_plugins"),
}


def __getattr__(name: str) -> Any:
    # Lazy attributes keep ``import hub`` light (SQLAlchemy, requests… load on first use).
    if name == "errors":
        from . import errors

        return errors
    if name in _LAZY:
        from importlib import import_module

        module, attr = _LAZY[name]
        return getattr(import_module(module, __name__), attr)
    raise AttributeError(f"module 'hub' has no attribute {name!r}")


def plugin_problems() -> list[str]:
    """What went wrong loading or calling plugins so far; empty before any plugin was loaded (nothing loads them here)."""
    from . import plugins

    return plugins.problems() if plugins._loaded else []


def resolve(ref: str, *, download: bool = True, **kwargs: Any) -> Any:
    """Resolve a model reference (``civitai:…``, ``hf:…``, ``sha256:…``, a path) to a verified local file.

    Answers from the catalogue with no network call when the file is already there; installs it
    otherwise (unless ``download=False``, which returns the plan). See :meth:`Hub.resolve`.
    """
    from .api import Hub

    with Hub() as h:
        return h.resolve(ref, download=download, **kwargs)


def pipeline(ref: str, **kwargs: Any) -> Any:
    """A runnable pipeline for ``ref`` (resolved and installed first if needed); see :mod:`hub.running.runtime`."""
    from .running.runtime import pipeline as _pipeline

    return _pipeline(ref, **kwargs)


def identify_path(path: Any, *, families: Any = None) -> Any:
    """Identify the model file or diffusers folder at ``path`` from its header (see :mod:`hub.identify`).

    ``families`` defaults to the table the plugins registered (the built-ins included).
    """
    from .identify import identify_path as _identify
    from .plugins import registered_families

    return _identify(path, families=registered_families() if families is None else families)


def check_compatible(base: Any, addon: Any) -> Any:
    """Whether ``addon`` (LoRA, VAE, embedding) fits ``base``, and why not. Accepts paths or Identifications."""
    from .identify import check_compatible as _check

    if not hasattr(base, "family"):
        base = identify_path(base)
    if not hasattr(addon, "family"):
        addon = identify_path(addon)
    return _check(base, addon)

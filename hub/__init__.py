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
from .hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from .api import Hub

__all__ = ["Hub", "SdhubError", "hookimpl", "resolve", "pipeline", "check_compatible", "identify", "errors"]


def __getattr__(name: str) -> Any:
    # Lazy attributes keep ``import hub`` light (SQLAlchemy, requests… load on first use).
    if name == "Hub":
        from .api import Hub

        return Hub
    if name == "errors":
        from . import errors

        return errors
    if name == "identify":
        from .identify import identify_path

        return identify_path
    raise AttributeError(f"module 'hub' has no attribute {name!r}")


def resolve(ref: str, *, download: bool = True, **kwargs: Any) -> Any:
    """Resolve a model reference (``civitai:…``, ``hf:…``, ``sha256:…``, a path) to a verified local file.

    Answers from the catalogue with no network call when the file is already there; installs it
    otherwise (unless ``download=False``, which returns the plan). See :meth:`Hub.resolve`.
    """
    from .api import Hub

    with Hub() as h:
        return h.resolve(ref, download=download, **kwargs)


def pipeline(ref: str, **kwargs: Any) -> Any:
    """A runnable pipeline for ``ref`` (resolved and installed first if needed); see :mod:`hub.runtime`."""
    from .runtime import pipeline as _pipeline

    return _pipeline(ref, **kwargs)


def check_compatible(base: Any, addon: Any) -> Any:
    """Whether ``addon`` (LoRA, VAE, embedding) fits ``base``, and why not. Accepts paths or Identifications."""
    from .identify import check_compatible as _check, identify_path

    if not hasattr(base, "family"):
        base = identify_path(base)
    if not hasattr(addon, "family"):
        addon = identify_path(addon)
    return _check(base, addon)

"""Every hook a plugin can implement. This module is the plugin author's reference.

A plugin is a module (or object) with functions decorated by ``hub.hookimpl`` and named like the
hooks below; it is found through the ``sdhub`` entry-point group::

    [project.entry-points.sdhub]
    my_plugin = "my_package.my_module"

Register-style hooks receive a ``register`` callable, as in simonw/llm. Call it once per item; pass
``override=True`` to replace an item of the same name that another plugin (built-in or not)
already registered. A hook that raises, or registers the wrong type, is reported with the plugin's
name and skipped; the rest of sdhub keeps working. Hooks are called lazily, the first time sdhub
needs that kind of item, so keep module import cheap (import torch inside functions, never at the
top of the module).

See docs/plugins.md for a complete example.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("sdhub")
hookimpl = pluggy.HookimplMarker("sdhub")


@hookspec
def register_sources(register: Any) -> None:
    """Register model sources (where models are searched and downloaded from).

    Call ``register(source)`` with an instance of :class:`hub.sources.Source`. Its ``name`` is the
    scheme of references it owns (``civitai`` owns ``civitai:123@456``) and the value of
    ``sdhub search --source NAME``.
    """


@hookspec
def register_samplers(register: Any) -> None:
    """Register samplers (how the denoising steps are taken).

    Call ``register(sampler)`` with a :class:`hub.samplers.Sampler`: a name, aliases users type
    ("Euler a", "euler_ancestral"), the families it serves, and ``build(base_scheduler)`` which
    returns the diffusers scheduler to use. ``sdhub generate --sampler NAME`` selects it.
    """


@hookspec
def register_pipelines(register: Any) -> None:
    """Register pipelines (what runs a model of a given family and kind).

    Call ``register(pipeline)`` with a :class:`hub.pipelines.Pipeline`. sdhub picks the pipeline
    whose ``families`` contain the identified family of the model, never from the file name.
    """


@hookspec
def register_families(register: Any) -> None:
    """Teach identification a model family (architecture).

    Call ``register(family)`` with a :class:`hub.identify.Family`: a name and a matcher that looks
    at a parsed header (tensor names, shapes, metadata; no tensor data) and returns a match with
    its evidence, or ``None``. ``sdhub info`` and ``sdhub scan`` then report the family.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the ``sdhub`` CLI.

    ``cli`` is the root :class:`click.Group`; call ``@cli.command()`` on your functions. Keep the
    command thin: call sdhub's Python API (``hub.Hub``) rather than the catalogue directly.
    """


@hookspec
def model_installed(record: Any) -> None:
    """Called after a file was downloaded, verified, identified and registered.

    ``record`` is the :class:`hub.catalogue.FileRecord` of the new file. Exceptions are reported and
    do not undo the install.
    """


@hookspec
def model_removed(record: Any, deleted_file: bool) -> None:
    """Called after a file was removed from the catalogue (and from disk if ``deleted_file``)."""

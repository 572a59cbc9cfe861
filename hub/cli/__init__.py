"""The ``sdhub`` command line: a thin layer over :mod:`hub`'s Python API.

Each group of commands lives in its own module and attaches itself to the root group on import.
Plugins add commands through the ``register_commands(cli)`` hook.
"""

from __future__ import annotations

from .base import cli

# Importing these modules attaches their commands to ``cli``.
from . import (  # noqa: E402,F401
    catalogue_cmds,
    db_cmds,
    fingerprint_cmds,
    identify_cmds,
    interop_cmds,
    plugin_cmds,
    resources_cmds,
    runtime_cmds,
    server_cmds,
    source_cmds,
    ui_cmds,
)

_plugin_commands_added = False


def add_plugin_commands() -> None:
    global _plugin_commands_added
    if _plugin_commands_added:
        return
    _plugin_commands_added = True
    from .. import fire

    fire("register_commands", cli=cli)


def main() -> None:
    from . import base

    base.STANDALONE = True
    add_plugin_commands()
    cli(prog_name="sdhub")


__all__ = ["cli", "main"]

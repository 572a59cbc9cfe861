"""``sdhub plugins``: what is installed and what each plugin provides."""

from __future__ import annotations

import click

from .base import cli, emit_json, json_option, print_table


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Include sdhub's built-in plugins.")
@json_option
def plugins(show_all: bool, as_json: bool) -> None:
    """List installed plugins, their versions, hooks and what they register."""
    from .. import get_plugins

    infos = [p for p in get_plugins() if show_all or not p.builtin]
    if as_json:
        emit_json([p.to_dict() for p in infos])
        return
    rows = [
        (p.name, p.version or "", "built-in" if p.builtin else "", ", ".join(p.hooks),
         "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(p.registers.items())))
        for p in infos
    ]
    empty = "No third-party plugins installed (add --all to see the built-in ones)."
    print_table(rows, ["NAME", "VERSION", "", "HOOKS", "REGISTERS"], empty=empty)

"""``sdhub db``: where the catalogue's schema stands, and upgrading it in place."""

from __future__ import annotations

from typing import Any

import click

from .base import cli, emit_json, get_hub, json_option


@cli.group()
def db() -> None:
    """The catalogue's schema: its revision (db current) and upgrading it (db upgrade).

    Every command upgrades an older catalogue when it opens it; these say what is there and do it on demand.
    """


def _where(status: Any) -> str:
    if status.current is None:
        return "empty (no catalogue yet)"
    legacy = f", made before migrations: schema version {status.legacy_version}" if status.legacy_version else ""
    return f"revision {status.current}{legacy}"


@db.command()
@json_option
def current(as_json: bool) -> None:
    """Show the catalogue's schema revision and the migrations an upgrade would run (changes nothing)."""
    status = get_hub().db_status()
    if as_json:
        emit_json(status.to_dict())
        return
    click.echo(f"catalogue: {status.url}")
    click.echo(f"schema:    {_where(status)}")
    if status.up_to_date:
        click.echo(f"up to date (head {status.head})")
    else:
        click.echo(f"{len(status.pending)} migration(s) pending to head {status.head}: {', '.join(status.pending)}; "
                   "run `sdhub db upgrade` (any other command upgrades it too)")


@db.command()
@json_option
def upgrade(as_json: bool) -> None:
    """Upgrade the catalogue to this sdhub's schema, in place, keeping every row."""
    status = get_hub().db_upgrade()
    if as_json:
        emit_json(status.to_dict())
        return
    if status.upgraded_from is None:
        click.echo(f"{status.url} is already at revision {status.head}; nothing to do")
    else:
        click.echo(f"upgraded {status.url} from {status.upgraded_from} to revision {status.head}")

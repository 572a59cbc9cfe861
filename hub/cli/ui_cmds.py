"""``sdhub ui``: the local web page (a thin wrapper over :func:`hub.serve_ui`)."""

from __future__ import annotations

import click

from .base import cli, get_hub


@cli.command()
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="TCP port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
def ui(port: int, open_browser: bool) -> None:
    """A web page on http://127.0.0.1:PORT/: browse the catalogue, search Civitai, LiblibAI and Hugging Face,
    install with live progress, drop an image or a ComfyUI workflow to see what it uses.

    The same server as `sdhub serve` (its JSON API at /api/sdhub/v1), listening on this machine only.
    """
    from .. import serve_ui

    def announce(line: str) -> None:
        click.echo(line, err=True)
        if not line.endswith("stopped"):
            click.echo("  the page on this machine only; Ctrl-C stops", err=True)

    serve_ui(get_hub(), port=port, open_browser=open_browser, announce=announce)

"""``sdhub serve``: the store over HTTP (a thin wrapper over :func:`hub.serve`)."""

from __future__ import annotations

import click

from .base import cli, get_hub


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface: the studio's other machines).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="TCP port (0: any free one).")
@click.option("--token-file", metavar="FILE", default=None,
              help="File holding the bearer token that writes and pull-through need (read-only without it). "
                   "Never give the token itself on the command line.")
@click.option("--upstream", is_flag=True,
              help="Pull-through: a file the store lacks is fetched once from the real sources (needs the token).")
def serve(host: str, port: int, token_file: str | None, upstream: bool) -> None:
    """Serve the store: a Hugging Face-compatible endpoint (HF_ENDPOINT), a Civitai-compatible subset and
    sdhub's JSON API (/api/sdhub/v1). Other machines use it with SDHUB_PEERS=http://HOST:PORT.
    """
    from .. import serve as run_server

    def announce(line: str) -> None:
        click.echo(line, err=True)
        if line.endswith("stopped"):
            return
        mode = "read-only" if token_file is None else "writes and pull-through with the token"
        click.echo(f"  {mode}; upstream {'on' if upstream else 'off'}; Ctrl-C stops", err=True)

    run_server(get_hub(), host=host, port=port, token_file=token_file, upstream=upstream, announce=announce)

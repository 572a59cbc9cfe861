"""``sdhub hash``: every hash the ecosystem identifies a model file by, like ``sha256sum`` for all six.

It reads each file in full every time, on purpose: it is the command to run when you doubt a cached
value (the catalogue keeps fingerprints keyed by stat, ``sdhub verify`` re-checks installed files).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import SdhubError
from .. import Fingerprints, fingerprint_file
from .base import (
    cli,
    emit_json,
    human_size,
    json_option,
    path_or_catalogue_id,
    print_table,
    progress_enabled,
    quiet_option,
)


def _display_rows(fp: Fingerprints) -> list[tuple[str, str]]:
    """Civitai's order and spelling; upper-case hex as Civitai shows it, AutoV3 in its 12-hex form."""
    if fp.autov3_short:
        autov3 = fp.autov3_short.upper()
    elif fp.autov3_error:
        autov3 = f"- ({fp.autov3_error})"
    else:
        autov3 = "- (not a safetensors file)"
    return [
        ("AutoV1", (fp.autov1 or "-").upper()),
        ("AutoV2", fp.autov2.upper()),
        ("AutoV3", autov3),
        ("SHA256", fp.sha256.upper()),
        ("CRC32", fp.crc32.upper()),
        ("BLAKE3", fp.blake3.upper()),
    ]


def _json_entry(path: str, fp: Fingerprints) -> dict[str, Any]:
    return {"path": path, **fp.to_dict(), "autov3_error": fp.autov3_error}


def _planned_bytes(paths: tuple[str, ...]) -> int:
    """The total for the progress bar; files that cannot be stat'ed fail properly later."""
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return total


@cli.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@json_option
@quiet_option
def hash_command(paths: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Print SHA256, AutoV1, AutoV2, AutoV3, CRC32 and BLAKE3 of each PATH.

    These are the hashes Civitai lists for every file and looks files up by; A1111 writes AutoV2 and
    AutoV3 (12 hex) into image infotext, InvokeAI uses BLAKE3. Each file is read once, in full, with
    no cache. --json prints every value in full (lowercase) with the file's path.
    """
    results: list[dict[str, Any]] = []
    failures = 0
    bar = None
    if progress_enabled(as_json, quiet):
        from tqdm import tqdm

        bar = tqdm(
            total=_planned_bytes(paths),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            desc="hashing",
            dynamic_ncols=True,
        )

    def say_error(message: str) -> None:
        if bar is not None:
            bar.write(f"Error: {message}", file=sys.stderr)
        else:
            click.echo(f"Error: {message}", err=True)

    try:
        for path in paths:
            if bar is not None:
                bar.set_postfix_str(Path(path).name, refresh=False)
            try:
                fp = fingerprint_file(path_or_catalogue_id(path), progress=bar.update if bar is not None else None)
            except SdhubError as exc:
                failures += 1
                say_error(str(exc))
                if as_json:
                    results.append({"path": path, "error": str(exc)})
                continue
            if as_json:
                results.append(_json_entry(path, fp))
            else:
                if bar is not None:
                    bar.clear()
                if results:
                    click.echo("")
                click.echo(f"{path}  ({human_size(fp.size)}, {fp.size} bytes)")
                print_table(_display_rows(fp), ["Hash", "Value"])
                results.append({"path": path})
    finally:
        if bar is not None:
            bar.close()

    if as_json:
        emit_json(results)
    if failures:
        click.get_current_context().exit(1)

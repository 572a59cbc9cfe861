"""``sdhub identify PATH...`` and ``sdhub check BASE ADDON``: header-only identification and compatibility.

``identify`` never touches the catalogue (except to find a file named by its id, ``#12``): it reads each file's header (or a diffusers folder's
configs) and says what it is and why; a bad file gets one error line and the next path is still
read (exit code 1 if any failed). ``check`` says whether an add-on fits a base model; each side may
be a path or anything ``sdhub info`` accepts (catalogue id, hash, reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import SdhubError
from .base import cli, emit_json, get_hub, json_option, path_or_catalogue_id


def _ident_for(ref: str) -> Any:
    from .. import Identification, identify_path

    path = Path(ref).expanduser()
    if path.exists():
        return identify_path(path)
    return Identification.from_dict(get_hub().info(ref))


def _print_identification(path: str, ident: Any, verbose: bool) -> None:
    click.echo(f"{path}: {ident.summary()}")
    if ident.components:
        click.echo(f"  components: {', '.join(ident.components)}")
    if ident.family == "unknown" and ident.candidates:
        click.echo(f"  fits:       {', '.join(ident.candidates)}")
    if ident.lora:
        lora = ident.lora
        click.echo(f"  lora:       {lora.format}, rank {lora.rank if lora.rank is not None else '?'}, "
                   f"touches {', '.join(lora.parts) or '?'}, {lora.modules} modules")
    for warning in ident.warnings:
        click.echo(f"  warning:    {warning}")
    shown = ident.evidence if verbose else [e for e in ident.evidence if e.what in ("family", "variant", "kind")]
    for ev in shown:
        click.echo(f"  - {ev.what}={ev.value}: {ev.because}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-v", "--verbose", is_flag=True, help="Show every piece of evidence, not only family/kind/variant.")
@json_option
def identify(paths: tuple[str, ...], verbose: bool, as_json: bool) -> None:
    """What each model file or diffusers folder is, from its header alone (no catalogue, no hashing)."""
    from .. import identify_path

    results: list[dict[str, Any]] = []
    failed = 0
    for path in paths:
        try:
            ident = identify_path(path_or_catalogue_id(path))
        except SdhubError as exc:
            failed += 1
            if as_json:
                results.append({"path": path, "error": str(exc), "error_type": type(exc).__name__})
            else:
                click.echo(f"Error: {exc}", err=True)
            continue
        if as_json:
            results.append({"path": path, **ident.to_dict()})
        else:
            _print_identification(path, ident, verbose)
    if as_json:
        emit_json(results)
    if failed:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("base")
@click.argument("addon")
@json_option
def check(base: str, addon: str, as_json: bool) -> None:
    """Whether ADDON (LoRA, VAE, embedding, text encoder) fits BASE (a checkpoint), and why not.

    Exit code 0 when it fits, 1 when it does not, 2 when a family could not be determined.
    """
    from .. import check_compatible

    base_ident = _ident_for(base)
    addon_ident = _ident_for(addon)
    result = check_compatible(base_ident, addon_ident)
    if as_json:
        emit_json({"base": {"ref": base, "family": base_ident.family, "kind": base_ident.kind,
                            "variant": base_ident.variant},
                   "addon": {"ref": addon, "family": addon_ident.family, "kind": addon_ident.kind,
                             "variant": addon_ident.variant},
                   **result.to_dict()})
    else:
        verdict = "fits" if result.ok else ("cannot tell" if not result.certain else "does NOT fit")
        click.echo(f"{verdict}: {result.reason}")
    if not result.ok:
        raise click.exceptions.Exit(1 if result.certain else 2)

"""Interop commands: link the catalogue into a UI's folders."""

from __future__ import annotations

import click

from .base import cli, emit_json, get_hub, json_option

LAYOUT_NAMES = ("comfyui", "a1111", "forge", "swarmui", "stability-matrix")


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=str))
@click.option("--layout", type=click.Choice(LAYOUT_NAMES, case_sensitive=False),
              help="Whose folder names to use under DIRECTORY.")
@click.option("--mode", type=click.Choice(["symlink", "hardlink", "copy"]), default="symlink", show_default=True,
              help="How to link; falls back symlink -> hardlink -> copy where the first is not possible, and says so.")
@click.option("--family-folders", is_flag=True, help="One sub-folder per family (loras/sdxl/…).")
@click.option("--check", is_flag=True, help="Change nothing; report drift (dangling, changed, missing, stale, foreign).")
@click.option("--prune", is_flag=True, help="Remove links sdhub made whose file is no longer catalogued (never a user's file).")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("--family", help="Only files of this family (as in `sdhub list`).")
@click.option("--kind", help="Only files of this kind (as in `sdhub list`).")
@click.option("--force", is_flag=True, help="Create the layout even where DIRECTORY does not look like that UI.")
@click.option("--comfyui-extra-paths", "extra_paths", type=click.Path(path_type=str), metavar="FILE",
              help="Instead of links: write sdhub's section of this ComfyUI extra_model_paths.yaml (others untouched).")
@json_option
def link(directory: str | None, layout: str | None, mode: str, family_folders: bool, check: bool, prune: bool,
         dry_run: bool, family: str | None, kind: str | None, force: bool, extra_paths: str | None,
         as_json: bool) -> None:
    """Expose catalogued files in a UI's own folders (DIRECTORY is the UI's install or data folder).

    Idempotent: a second run changes nothing. Links sdhub made are recorded, so --prune and --check
    tell them from your own files; a name already taken gets a deterministic -<sha256[:8]> suffix.
    """
    if extra_paths is not None:
        if directory is not None or layout is not None:
            raise click.UsageError("--comfyui-extra-paths takes no DIRECTORY or --layout")
        result = get_hub().comfyui_extra_paths(extra_paths, dry_run=dry_run)
        if as_json:
            emit_json(result)
        elif dry_run:
            click.echo(f"would {'leave' if result['status'] == 'unchanged' else 'write'} section "
                       f"{result['section']}: of {result['file']}:")
            click.echo(result["text"], nl=False)
        else:
            click.echo(f"{result['status']} section {result['section']}: of {result['file']} "
                       f"({len(result['folders'])} model types -> {result['base_path']})")
        return
    if directory is None or layout is None:
        raise click.UsageError("give DIRECTORY and --layout (or --comfyui-extra-paths FILE)")
    report = get_hub().link(directory, layout, mode=mode, family_folders=family_folders, check=check, prune=prune,
                            dry_run=dry_run, family=family, kind=kind, force=force)
    if as_json:
        emit_json(report.to_dict())
    else:
        for e in report.entries:
            if e.status == "unchanged":
                continue
            how = f" [{e.mode}]" if e.mode else ""
            note = f" ({e.message})" if e.message else ""
            arrow = f" -> {e.target}" if e.target and e.target != e.path else ""
            click.echo(f"{e.status:<9} {e.path}{arrow}{how}{note}")
        for note in report.fallbacks:
            click.echo(f"fell back: {note}", err=True)
        summary = ", ".join(f"{n} {k}" for k, n in report.summary().items()) or "nothing to link"
        modes = ", ".join(f"{n} by {m}" for m, n in report.modes_used().items())
        click.echo(f"{summary}" + (f"; {modes}" if modes else "") + (" (dry run)" if dry_run else ""))
    if check and report.drift:
        raise SystemExit(1)


@cli.command()
@click.option("--fix", is_flag=True, help="Do what is safe (re-link, remove orphans) and say each step.")
@json_option
def doctor(fix: bool, as_json: bool) -> None:
    """Missing, moved or changed files, dangling links, orphaned downloads, duplicate contents."""
    from .base import human_size

    report = get_hub().doctor(fix=fix)
    if as_json:
        emit_json(report.to_dict())
    else:
        for f in report.findings:
            waste = f" [{human_size(f.wasted_bytes)}]" if f.wasted_bytes else ""
            click.echo(f"{f.problem:<13} {f.path}: {f.detail}{waste}")
            if f.fixed:
                click.echo(f"  fixed: {f.fixed}")
        if not report.findings:
            click.echo("nothing wrong")
        else:
            click.echo(", ".join(f"{n} {k}" for k, n in report.summary().items())
                       + (f"; {human_size(report.wasted_bytes)} wasted" if report.wasted_bytes else ""))
    if any(not f.fixed for f in report.findings):
        raise SystemExit(1)

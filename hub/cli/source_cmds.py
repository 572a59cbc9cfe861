"""``sdhub search``, ``sdhub install`` and ``sdhub lookup``: thin wrappers over :mod:`hub.sources.install`."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from ..errors import SdhubError, SourceError
from ..api import ACCEPTED_FORMS, age_text
from .base import (
    cli,
    emit_json,
    get_hub,
    human_size,
    json_option,
    path_or_catalogue_id,
    print_table,
    progress_enabled,
    quiet_option,
)


@cli.command()
@click.argument("query", required=False, default="")
@click.option("--source", "sources", multiple=True, default=("all",), show_default=True,
              help="civitai, liblib, hf, a plugin's source, or all (repeatable).")
@click.option("--type", "types", multiple=True, help="checkpoint, lora, embedding, vae, controlnet… (repeatable).")
@click.option("--base", "bases", multiple=True, help="sd1, sd2, sdxl, sd3, flux, or a source's own name (repeatable).")
@click.option("--sort", default=None, help="downloads, rating, likes, newest (or the source's own sort name).")
@click.option("--period", default=None, help="Civitai period: AllTime, Year, Month, Week, Day.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100), help="Results per source.")
@click.option("--nsfw", is_flag=True, help="Include NSFW results (Civitai).")
@click.option("--cursor", default=None, help="Continue a previous search (the cursor it printed).")
@json_option
def search(query: str, sources: tuple[str, ...], types: tuple[str, ...], bases: tuple[str, ...], sort: str | None,
           period: str | None, limit: int, nsfw: bool, cursor: str | None, as_json: bool) -> None:
    """Search Civitai, LiblibAI and Hugging Face; every row has a reference ready for `sdhub install`."""
    from .. import get_registry

    known = get_registry("sources")  # built-in and plugin sources alike
    for s in sources:
        if s.lower() != "all" and s not in known:
            raise click.BadParameter(f"{s!r} is not a registered source (one of {', '.join(known.names())} or all)",
                                     param_hint="--source")
    report = get_hub().search(query, sources=list(sources), types=types, base=bases, sort=sort, period=period,
                       limit=limit, nsfw=nsfw, cursor=cursor)
    for warning in report.warnings:  # stderr, so --json output keeps its shape
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        emit_json(report.to_dict())
        if report.all_failed:
            sys.exit(1)
        return
    rows = []
    for r in report.results:
        notes = []
        if r.early_access_until:
            notes.append(_early_access(r.early_access_until))
        if r.paid:
            notes.append("paid")
        if not r.downloadable:
            notes.append("no download")
        if r.nsfw:
            notes.append("nsfw")
        rows.append([r.source, _clip(r.name, 40), _clip(r.version or "", 16), r.kind or "",
                     r.base_model or r.claimed_family or "", human_size(r.size), r.downloads if r.downloads is not None
                     else "", ", ".join(notes), r.ref])
    if report.all_failed:
        raise SourceError("search failed at every source: " + "; ".join(
            f"{name}: {error}" for name, error in report.errors.items()))
    print_table(rows, ["SOURCE", "NAME", "VERSION", "KIND", "BASE", "SIZE", "DOWNLOADS", "NOTE", "REF"],
                empty="(no results)")
    for name, error in report.errors.items():
        click.echo(f"Warning: {name} search failed: {error}", err=True)
    for name, nxt in report.next_cursors.items():
        # Civitai cursors look like 75363|932023|257749: quoted, or the pasted line would be a shell pipe.
        click.echo(f"more from {name}: sdhub search {shlex.quote(query)} --source {name} --cursor {shlex.quote(nxt)}",
                   err=True)


def _early_access(until: str) -> str:
    """``early access until 2026-12-01 14:30 UTC`` (the date sources give, ISO; or ``unknown``)."""
    if until == "unknown":
        return "early access (no end date given)"
    return f"early access until {until[:16].replace('T', ' ')} UTC" if "T" in until else f"early access until {until}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command(epilog="\b\n" + ACCEPTED_FORMS)
@click.argument("refs", nargs=-1)
@click.option("--from", "from_files", multiple=True, type=click.Path(),
              help="An image, infotext .txt, workflow .json or folder: install the models it names (repeatable).")
@click.option("--into", default=None, help="Also place each installed file where this UI looks (comfyui, a1111, "
              "forge; with REFs also swarmui, stability-matrix), as NAME=PATH or NAME with [ui] NAME = \"PATH\" "
              "in config.toml.")
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="With --from: also fetch workflow URLs on this host (repeatable); only known hosts otherwise.")
@click.option("--dry-run", is_flag=True, help="Show what would be fetched, from where and how big; download nothing.")
@click.option("--connections", type=click.IntRange(1, 32), default=None,
              help="Parallel ranged connections for large files (default: download.connections setting).")
@click.option("--force", is_flag=True, help="Ask the source again even if the catalogue already has this reference.")
@click.option("--upgrade", is_flag=True, help="Install the newest version of the installed file(s) REF names, beside "
              "the old one (which stays until you `sdhub rm` it); see `sdhub updates`.")
@json_option
@quiet_option
def install(refs: tuple[str, ...], from_files: tuple[str, ...], into: str | None, allow_hosts: tuple[str, ...],
            dry_run: bool, connections: int | None, force: bool, upgrade: bool, as_json: bool, quiet: bool) -> None:
    """Install models: civitai:ID[@VERSION], AIRs, hf:ORG/REPO/FILE, liblib:UUID, sha256:HEX, or pasted URLs.

    Files are verified against the source's hashes, identified, and put in the store as
    <kind>/<family>/<filename>; the same file is never downloaded twice.
    """
    from .. import InstallResult, TqdmProgress

    if from_files or allow_hosts:
        from .resources_cmds import install_from

        if refs or not from_files or upgrade:
            raise click.UsageError("give either references or --from FILE… (--allow-host goes with --from;"
                                   " --upgrade goes with references)")
        return install_from(from_files, into, allow_hosts, dry_run, as_json)
    if not refs:
        raise click.UsageError("give a reference to install, or --from FILE…")
    hub = get_hub()
    show_progress = progress_enabled(as_json, quiet)
    results: list[InstallResult] = []
    failures: list[SdhubError] = []
    for ref in refs:
        try:
            if upgrade and force:
                raise click.UsageError("--upgrade already asks the source again; leave out --force")
            result = hub.install(
                ref, dry_run=dry_run, connections=connections, **({"upgrade": True} if upgrade else {"force": force}),
                progress=TqdmProgress() if show_progress else None,
                on_wait=None if (as_json or quiet) else (lambda msg: click.echo(msg, err=True)),
            )
        except SdhubError as exc:
            if len(refs) == 1 and not as_json:
                raise
            failures.append(exc)
            results.append(InstallResult(ref=ref, status="failed", error=str(exc), error_type=type(exc).__name__))
            if not as_json:
                click.echo(f"Error: {exc}", err=True)
            continue
        if into and result.record is not None and not dry_run:
            result.placed += hub.after_install(result.record, None, into=(into,))
        results.append(result)
        if not as_json:
            _print_result(result, quiet)
            for line in result.placed if not quiet else []:
                click.echo(f"  {line}")
    if as_json:
        emit_json([r.to_dict() for r in results])
    if failures:
        sys.exit(1)


def _print_result(result: Any, quiet: bool) -> None:
    for warning in result.warnings:
        if not quiet or warning.startswith(("family mismatch", "kind mismatch")):
            click.echo(f"Warning: {warning}", err=True)
    if result.status == "planned":
        plan = result.plan
        click.echo(f"would install {plan.ref}")
        for key, value in (("file", plan.filename), ("size", human_size(plan.size) or "unknown"),
                           ("from", plan.to_dict()["url"]), ("endpoint", plan.endpoint),
                           ("sha256", plan.sha256 or "(not published)"),
                           ("model", f"{plan.source_info.model_name} / {plan.source_info.version_name}"),
                           ("claims", f"{plan.claimed_kind or '?'} for {plan.source_info.base_model or plan.claimed_family or '?'}"),
                           ("token", "sent to the source host only" if plan.auth_headers else "none")):
            click.echo(f"  {key:9} {value}")
        if plan.early_access_until:
            click.echo(f"  {'access':9} {_early_access(plan.early_access_until)}: only an account that bought"
                       " it can download it before then")
        return
    if quiet:
        return
    if result.status == "up-to-date":
        click.echo(f"up to date: the newest version is installed at {result.path}")
        return
    if result.status == "already-installed":
        click.echo(f"already installed: {result.path}")
        return
    rec = result.record
    details = [human_size(rec.size) if rec else "", f"from {result.served_by}" if result.served_by else ""]
    if result.resumed_from:
        details.append(f"resumed at {human_size(result.resumed_from)}")
    if result.connections > 1:
        details.append(f"{result.connections} connections")
    details.append(f"{result.seconds:.1f} s")
    click.echo(f"installed {result.path} ({', '.join(d for d in details if d)})")
    if rec is not None:
        click.echo(f"  {rec.kind or 'unknown'} / {rec.family or 'unknown'}, sha256 {rec.sha256}")
    for old in result.upgraded_from:
        click.echo(f"  the older version stays at {old} (`sdhub rm {shlex.quote(old)} --delete-file` removes it)")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=False))
@click.option("--source", "sources", multiple=True, help="Only ask these sources (civitai, liblib).")
@json_option
def lookup(paths: tuple[str, ...], sources: tuple[str, ...], as_json: bool) -> None:
    """Find local files at Civitai / LiblibAI by SHA-256 and attach what they know to the catalogue."""

    results = get_hub().lookup([path_or_catalogue_id(p) for p in paths], sources=list(sources) or None)
    all_failed = any(r.error for r in results) and not any(r.found for r in results)
    if as_json:
        emit_json([r.to_dict() for r in results])
        if all_failed:  # same exit code as text mode: scripts must see that nothing could be looked up
            sys.exit(1)
        return
    rows = []
    for r in results:
        if r.error and not r.found:
            rows.append([r.path, "", f"error: {r.error}"])
            continue
        if not r.found:
            rows.append([r.path, "", "not found at any source"])
        for info in r.found:
            what = f"{info.model_name or '?'} / {info.version_name or '?'} ({info.base_model or '?'})"
            ref = f"{info.source}:{info.model_id}" + (f"@{info.version_id}" if info.version_id else "")
            rows.append([r.path, ref, what])
        if r.family_mismatch:
            click.echo(f"Warning: {r.path}: family mismatch: {r.family_mismatch}", err=True)
        if r.kind_mismatch:
            click.echo(f"Warning: {r.path}: kind mismatch: {r.kind_mismatch}", err=True)
    print_table(rows, ["PATH", "SOURCE", "MODEL"])
    if all_failed:
        sys.exit(1)


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--offline", is_flag=True, help="Ask no source: answer from the answers kept by earlier runs, with their age.")
@json_option
def updates(refs: tuple[str, ...], offline: bool, as_json: bool) -> None:
    """Is a newer version out for installed files from Civitai, LiblibAI and Hugging Face?

    REF narrows the check (#ID, a path, a name, civitai:MODEL[@VERSION], liblib:UUID, hf:ORG/REPO[/FILE]);
    without one every installed file with a source is checked. Each model is asked once; answers are
    kept, so --offline can answer later. `sdhub install --upgrade REF` installs the newest version.
    """
    report = get_hub().updates(list(refs) or None, offline=offline)
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        emit_json(report.to_dict())
        if report.all_failed:
            sys.exit(1)
        return
    if report.all_failed and offline:  # offline nothing is asked: every error is a missing cache entry
        raise SourceError("no cached answers yet for these files: run `sdhub updates` online once")
    if report.all_failed:
        raise SourceError("updates failed at every source: " + "; ".join(
            f"{name}: {error}" for name, error in report.errors.items()) if report.errors else
            "updates failed: " + "; ".join(dict.fromkeys(r.error or "" for r in report.rows)))
    rows = []
    for r in report.rows:
        if r.status == "update":
            what = r.ref or ""
            if len(r.newer) > 1:
                what += f"  (+{len(r.newer) - 1} more newer)"
        elif r.status == "current":
            what = "up to date"
        elif r.status == "unsupported":
            what = "not supported"
        else:
            what = f"{r.status}: {r.error or r.note or ''}".rstrip(": ")
        ea = _early_access(r.early_access_until) if r.early_access_until and r.status == "update" else ""
        if r.status == "update" and r.downloadable is False:
            ea = (ea + ", " if ea else "") + "no download"
        rows.append([f"#{r.record_id}" if r.record_id is not None else "", _clip(r.path.rsplit("/", 1)[-1], 36),
                     r.source, _clip(_version(r.installed_version_name, r.installed_version), 24),
                     _clip(_version(r.newest_version_name, r.newest_version), 24) if r.status != "error" else "",
                     (r.published_at or "")[:10] if r.status == "update" else "", ea, what])
    print_table(rows, ["ID", "FILE", "SOURCE", "INSTALLED", "NEWEST", "PUBLISHED", "EARLY ACCESS", "UPDATE"],
                empty="(no installed files with a source)")
    for name, error in report.errors.items():
        click.echo(f"Warning: {name}: {error}", err=True)
    ages = report.cache_ages()
    if ages:
        how = "offline: answers" if offline else "answers"
        click.echo(f"{how} from the cache: " + ", ".join(f"{name} {age_text(age)} old"
                                                          for name, age in sorted(ages.items())), err=True)
    found = report.updates
    if found:
        click.echo(f"{len(found)} of {len(report.rows)} installed files have a newer version; "
                   f"`sdhub install --upgrade '#{found[0].record_id}'` installs one beside the old file", err=True)


def _version(name: str | None, version_id: str | None) -> str:
    """``v2.0 (130072)``; a Hugging Face commit or a LiblibAI uuid shortened to 10 characters."""
    vid = (version_id or "")[:10] if version_id and len(version_id) > 16 else (version_id or "")
    if name and vid and name != version_id:
        return f"{name} ({vid})"
    return name or vid

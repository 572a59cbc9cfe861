"""Catalogue commands: scan, list, info, rm, verify, config."""

from __future__ import annotations

from typing import Any

import click

from .base import cli, emit_json, get_hub, human_size, json_option, print_table, progress_enabled, quiet_option
from .progress import byte_progress


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--lookup", is_flag=True, help="Also ask the sources (Civitai, LiblibAI…) about new files by hash (network).")
@click.option("--hf-cache", is_flag=True, help="Register what the Hugging Face cache (HF_HUB_CACHE) holds, in place, "
              "with repo, revision and path.")
@click.option("--include-broken", is_flag=True,
              help="Catalogue files that cannot be identified too (family and kind empty, the reason kept).")
@json_option
@quiet_option
def scan(paths: tuple[str, ...], lookup: bool, hf_cache: bool, include_broken: bool, as_json: bool, quiet: bool) -> None:
    """Register model files under PATHS (recursively): fingerprint and identify them.

    Unchanged files are skipped instantly; moved files are recognised by their SHA256. A file that
    cannot be identified (malformed, truncated, unsafe) is reported as an error and not catalogued,
    unless --include-broken.
    """
    h = get_hub()
    progress = byte_progress() if progress_enabled(as_json, quiet) else None
    if not paths and not hf_cache:
        raise click.UsageError("give PATHS to scan (or --hf-cache)")
    report = h.scan(list(paths), progress=progress, lookup=lookup, include_broken=include_broken) if paths else None
    if hf_cache:
        cached = h.scan_hf_cache(progress=progress)
        if report is None:
            report = cached
        else:
            report.entries += cached.entries
    if as_json:
        emit_json(report.to_dict())
    else:
        for e in report.entries:
            if e.status == "error":
                click.echo(f"error    {e.path}: {e.message}", err=True)
            elif not quiet and e.status != "unchanged":
                what = " ".join(x for x in (e.family, e.kind) if x)
                note = f" ({e.message})" if e.message else ""
                click.echo(f"{e.status:<8} {e.path}  {what}{note}")
        if not quiet:
            s = report.summary()
            click.echo(", ".join(f"{n} {k}" for k, n in s.items() if n) or "nothing to scan")
    if report.errors:  # the rest of the scan went on; the exit code still tells scripts something failed
        raise SystemExit(1)


@cli.command(name="list")
@click.option("--family", help="sd1, sd2, sdxl, sdxl_refiner, sd3, flux, unknown…")
@click.option("--kind", help="checkpoint, diffusion_model, vae, text_encoder, lora, embedding, unknown")
@click.option("--source", help="civitai, liblib, hf…")
@click.option("-t", "--text", help="Words matched against names, tags and trigger words (prefixes).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@json_option
def list_(family: str | None, kind: str | None, source: str | None, text: str | None, limit: int | None,
          as_json: bool) -> None:
    """List catalogued files."""
    records = get_hub().list(family=family, kind=kind, source=source, text=text, limit=limit)
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    rows = [
        (r.id, r.name, r.family or "", r.kind or "", r.variant or "", human_size(r.size),
         (r.autov2 or "").upper(), ",".join(r.source_names), "!" if r.family_mismatch or r.kind_mismatch else "")
        for r in records
    ]
    print_table(rows, ["ID", "NAME", "FAMILY", "KIND", "VARIANT", "SIZE", "AUTOV2", "SOURCES", ""],
                empty="No files in the catalogue match. Add some with `sdhub scan PATH` or `sdhub install REF`.")


@cli.command()
@click.argument("ref")
@click.option("--hash", "with_hashes", is_flag=True, help="Also compute fingerprints for a file not in the catalogue.")
@json_option
def info(ref: str, with_hashes: bool, as_json: bool) -> None:
    """What REF (a path, id, hash, reference or name) is, and why sdhub thinks so."""
    data = get_hub().info(ref, with_hashes=with_hashes)
    if as_json:
        emit_json(data)
        return
    _print_info(data)


def _print_info(data: dict[str, Any]) -> None:
    line = click.echo
    line(f"path:      {data['path']}")
    line(f"size:      {human_size(data.get('size'))}")
    line(f"family:    {data.get('family')}")
    line(f"kind:      {data.get('kind')}")
    line(f"variant:   {data.get('variant') or '-'}")
    for key in ("format", "precision"):
        if data.get(key):
            line(f"{key + ':':<10} {data[key]}")
    if data.get("components"):
        line(f"components: {', '.join(data['components'])}")
    lora = data.get("lora")
    if lora:
        parts = ", ".join(lora.get("parts") or [])
        line(f"lora:      format {lora.get('format')}, rank {lora.get('rank')}, touches {parts or '?'}")
    if data.get("candidates"):
        line(f"fits:      {', '.join(data['candidates'])}")
    if data.get("family_mismatch"):
        line(f"WARNING:   {data['family_mismatch']}")
    if data.get("kind_mismatch"):
        line(f"WARNING:   {data['kind_mismatch']}")
    for warning in data.get("warnings") or []:
        line(f"note:      {warning}")
    if data.get("identify_error"):
        line(f"not identified: {data['identify_error']}")
    line(f"catalogue: {'#' + str(data['id']) if data.get('in_catalogue') else 'not catalogued (header only)'}")
    if data.get("hashes"):
        for k, v in data["hashes"].items():
            if v and k in ("sha256", "autov1", "autov2", "autov3", "crc32", "blake3"):
                shown = v[:12] if k == "autov3" else v
                line(f"  {k:<7} {shown.upper()}")
    for src in data.get("sources") or []:
        line(f"source:    {src['source']} model {src['model_id']} version {src.get('version_id') or '-'}"
             f" {src.get('model_name') or ''} ({src.get('base_model') or '?'})")
        if src.get("trained_words"):
            line(f"  trigger words: {', '.join(src['trained_words'])}")
    evidence = data.get("evidence") or []
    if evidence:
        line("evidence:")
        for ev in evidence:
            if isinstance(ev, dict):
                line(f"  - {ev.get('what', '')}={ev.get('value', '')}: {ev.get('because', '')}")
            else:
                line(f"  - {ev}")


@cli.command(name="rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("--delete-file", is_flag=True, help="Also delete the file from disk (default: catalogue only).")
@json_option
def rm(refs: tuple[str, ...], delete_file: bool, as_json: bool) -> None:
    """Remove files from the catalogue (and from disk with --delete-file)."""
    h = get_hub()
    removed = [h.remove(ref, delete_file=delete_file) for ref in refs]
    if as_json:
        emit_json([{"id": r.id, "path": r.path, "deleted_file": delete_file} for r in removed])
        return
    for r in removed:
        click.echo(f"removed #{r.id} {r.path}" + (" (file deleted)" if delete_file else " (file kept)"))


@cli.command()
@click.argument("refs", nargs=-1)
@json_option
@quiet_option
def verify(refs: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Re-hash files (all, or REFS) and compare with recorded and published hashes."""
    h = get_hub()
    progress = byte_progress() if progress_enabled(as_json, quiet) else None
    results = h.verify(list(refs) or None, progress=progress)
    if as_json:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            if r.status == "ok":
                if not quiet:
                    click.echo(f"ok        #{r.record.id} {r.record.path}")
            else:
                click.echo(f"{r.status:<9} #{r.record.id} {r.record.path}")
                for p in r.problems:
                    click.echo(f"          {p}")
        if not quiet:
            bad = sum(1 for r in results if r.status != "ok")
            click.echo(f"{len(results)} checked, {bad} with problems")
    if any(r.status != "ok" for r in results):
        raise SystemExit(1)


@cli.command()
@json_option
def config(as_json: bool) -> None:
    """Show the effective settings and where each came from (tokens masked)."""
    from ..config import load_settings

    rows = load_settings().describe()
    if as_json:
        emit_json({r["name"]: {"value": r["value"], "origin": r["origin"]} for r in rows})
        return
    print_table([(r["name"], _show(r["value"]), r["origin"]) for r in rows], ["SETTING", "VALUE", "FROM"])


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)

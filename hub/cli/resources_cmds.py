"""``sdhub resources`` and ``sdhub install --from``: thin wrappers over :mod:`hub.resources`."""

from __future__ import annotations

import sys

import click

from .base import cli, emit_json, get_hub, json_option, print_table


def _named_by(d: dict) -> str:
    if d.get("ref"):
        return d["ref"]
    if d.get("hash"):
        return f"{d.get('hash_kind') or 'hash'}:{d['hash']}"
    return ""


def _detail(d: dict) -> str:
    if d["state"] == "have":
        return d["path"] or ""
    if d["state"] == "fetchable":
        return f"sdhub install {d['install_ref']}"
    parts = []
    if d.get("closest"):
        parts.append("closest: " + ", ".join(d["closest"]))
    if d.get("note"):
        parts.append(d["note"])
    return "; ".join(parts)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--offline", is_flag=True, help="Do not look hashes up at the sources (catalogue only).")
@json_option
def resources(paths: tuple[str, ...], offline: bool, as_json: bool) -> None:
    """The models images and workflows use: have (catalogued), fetchable (a ref for `sdhub install`), unknown.

    Reads A1111/Forge/sdhub infotext (PNG `parameters`, JPEG/WebP EXIF, .txt), Civitai's Hashes and
    resources, ComfyUI `prompt`/`workflow` chunks and workflow .json files. Nothing is executed. A
    folder is walked; resources are listed most used first (COUNT = files naming it).
    """
    report = get_hub().resources(list(paths), offline=offline)
    if as_json:
        emit_json(report.to_dict())
    else:
        for file, message in report.errors:
            click.echo(f"Error: {message}", err=True)
        rows = []
        for st in report.statuses:
            d = st.to_dict()
            weight = "" if d["weight"] is None else f"{d['weight']:g}"
            rows.append([d["state"], d["kind"], d["name"] or "", d["folder"] or "", _named_by(d), weight,
                         d["count"], _detail(d)])
        print_table(rows, ["STATE", "KIND", "NAME", "FOLDER", "NAMED BY", "WEIGHT", "COUNT", "WHERE / HOW"],
                    empty="(no resources named)")
        counts = {s: sum(1 for x in report.statuses if x.state == s) for s in ("have", "fetchable", "unknown")}
        click.echo(f"{report.files_read} file(s) read, {len(report.errors)} unreadable: {counts['have']} have, "
                   f"{counts['fetchable']} fetchable, {counts['unknown']} unknown", err=True)
    if report.errors:
        sys.exit(1)


def install_from(files: tuple[str, ...], into: str | None, allow_hosts: tuple[str, ...], dry_run: bool,
                 as_json: bool) -> None:
    """`sdhub install --from`: the models the files name, installed (and placed with --into); the rest reported."""
    report = get_hub().install_from(list(files), into=into, dry_run=dry_run, allow_hosts=list(allow_hosts))
    if as_json:
        emit_json(report.to_dict())
    else:
        for _file, message in report.errors:
            click.echo(f"Error: {message}", err=True)
        rows = []
        for r in report.results:
            d = r.to_dict()
            where = d["placed"] or d["store_path"] or d["message"] or ""
            if d["placed"] and d["store_path"] and d["placed"] != d["store_path"]:
                where = f"{d['placed']} (store: {d['store_path']})"
            rows.append([d["outcome"], d["kind"], d["name"] or "", d["install_ref"] or _named_by(d), where])
            if d["outcome"] == "failed":
                click.echo(f"Error: {d['message']}", err=True)
        print_table(rows, ["OUTCOME", "KIND", "NAME", "REF", "WHERE"], empty="(no resources named)")
    if report.failed:
        sys.exit(1)

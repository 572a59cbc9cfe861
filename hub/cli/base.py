"""The root click group and the output conventions every command follows.

Commands are thin: parse options, call the library (``hub.Hub``), print a table for people or
``--json`` for scripts. Any :class:`hub.errors.SdhubError` becomes one ``Error: …`` line on stderr
and a non-zero exit code, and so does a full disk (ENOSPC, EFBIG, EDQUOT) wherever it happens; Ctrl-C
exits 130 without a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from ..errors import SdhubError, full_disk_reason

# Commands whose work survives Ctrl-C: downloads keep their .part, so running them again resumes.
RESUMABLE_COMMANDS = frozenset({"install", "generate"})
STANDALONE = False  # set by hub.cli.main(): this process is the sdhub program

F = TypeVar("F", bound=Callable[..., Any])


class SdhubGroup(click.Group):
    """A group that turns sdhub's own errors into one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SdhubError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if STANDALONE:  # the program itself (not a test's or a host's CliRunner): a second Ctrl-C is ignored
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            resumable = ctx.invoked_subcommand in RESUMABLE_COMMANDS
            click.echo("Interrupted: run the same command again to resume." if resumable else "Interrupted.", err=True)
            ctx.exit(130)
        except OSError as exc:
            reason = full_disk_reason(exc)
            if reason is None:  # anything else is a bug: keep its traceback
                raise
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(f"Error: {reason}: cannot write{where} ({exc.strerror or exc}); free some space, then run "
                       f"the same command again", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # `sdhub list | head`
            sys.stderr.close()
            ctx.exit(0)
        finally:
            print_plugin_problems()


_printed_problems: set[str] = set()


def print_plugin_problems() -> None:
    """Warn once per problem about plugins that failed (the command itself still ran)."""
    from .. import plugin_problems

    for problem in plugin_problems():
        if problem not in _printed_problems:
            _printed_problems.add(problem)
            click.echo(f"Warning: {problem}", err=True)


@click.group(cls=SdhubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sdhub", prog_name="sdhub")
def cli() -> None:
    """sdhub: find, install, fingerprint, identify and run Stable Diffusion models.

    Data lives in SDHUB_HOME (see `sdhub config`); the catalogue is SQLite unless SDHUB_DB_URL says otherwise.
    """


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, see README).")(func)


def quiet_option(func: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars or chatter.")(func)


def get_hub() -> Any:
    """The Hub for this process, built from the environment and config file."""
    from ..api import Hub

    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "hub" not in root.obj:
        root.obj["hub"] = Hub()
        root.call_on_close(root.obj["hub"].close)
    return root.obj["hub"]


def path_or_catalogue_id(arg: str) -> str:
    """``arg`` as a path; ``#12`` / ``id:12`` (when no such path exists) the catalogued file's path.

    So commands that read files (identify, hash) take the ids ``sdhub list`` shows, and an unknown id
    is "there is no file #99 in the catalogue", not "no such file".
    """
    from ..api import catalogue_id

    if catalogue_id(arg) is None or os.path.lexists(arg):
        return arg
    return str(get_hub().get(arg).path)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], empty: str = "(nothing)") -> None:
    """A plain aligned table: no dependency, pipes cleanly."""
    if not rows:
        click.echo(empty)
        return
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
    click.echo(line)
    click.echo("  ".join("-" * w for w in widths).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def progress_enabled(as_json: bool = False, quiet: bool = False) -> bool:
    """Progress bars only for people: not with --json/--quiet and not when stderr is not a terminal."""
    return not (as_json or quiet) and sys.stderr.isatty()


def echo_lines(lines: Iterable[str], err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)

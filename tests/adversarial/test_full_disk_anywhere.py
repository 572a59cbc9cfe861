"""A full disk wherever sdhub (or a plugin's command) writes is one `Error:` line, not a traceback (issue 18).

Downloads and the catalogue say it in their own words (test_interrupted_installs, test_catalogue_damage);
this is the net under everything else: ENOSPC, EFBIG and EDQUOT reaching the command line.
"""

from __future__ import annotations

import errno

import pytest

from hub import hookimpl, plugins


@pytest.fixture
def writing_command(plugin_registration):  # type: ignore[no-untyped-def]
    """A plugin command that fails the way a write to a full disk fails."""
    from hub.cli import cli

    failure: dict[str, OSError] = {}

    class Writer:
        @hookimpl
        def register_commands(self, cli):  # type: ignore[no-untyped-def]
            @cli.command("write-out")
            def write_out() -> None:
                raise failure["exc"]

    plugin_registration(Writer(), "writer")
    plugins.fire("register_commands", cli=cli)
    yield failure
    cli.commands.pop("write-out", None)


@pytest.mark.parametrize("number, reason", [
    (errno.ENOSPC, "disk full"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EFBIG, "file too large for this file system or the file-size limit (`ulimit -f`)"),
])
def test_full_disk_in_any_command_is_one_error_line(run_cli, writing_command, number: int, reason: str) -> None:
    writing_command["exc"] = OSError(number, "the OS says no", "/data/out.bin")
    res = run_cli("write-out")
    assert res.exit_code == 1
    assert res.stderr == (f"Error: {reason}: cannot write /data/out.bin (the OS says no); free some space, then run "
                          f"the same command again\n")


def test_other_os_errors_keep_their_traceback(run_cli, writing_command) -> None:
    """A permission error is not a full disk: it is not dressed up as one (a bug keeps its traceback)."""
    writing_command["exc"] = PermissionError(errno.EACCES, "Permission denied", "/data/out.bin")
    with pytest.raises(PermissionError):
        run_cli("write-out")

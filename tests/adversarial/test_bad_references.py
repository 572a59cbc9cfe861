"""Item 7 of issue 18: an unknown catalogue id says so; a bad reference is one `Error:` line with a hint."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("command", [["info", "#99"], ["rm", "#99"], ["install", "#99"], ["install", "--dry-run", "#99"]])
def test_unknown_catalogue_id_says_there_is_no_such_file(run_cli, command: list[str]) -> None:
    res = run_cli(*command)
    assert res.exit_code == 1
    assert res.stderr == "Error: there is no file #99 in the catalogue (`sdhub list` shows the ids)\n"


@pytest.mark.parametrize("ref", ["bogus", "civitai:abc", "hf:", "deadbeefdeadbeefd", "urn:air:sdxl"])
def test_bad_reference_is_one_error_line_with_a_hint(run_cli, ref: str) -> None:
    res = run_cli("install", ref)
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: cannot understand reference") and res.stderr.count("\n") == 1
    assert "sdhub install --help" in res.stderr and "Traceback" not in res.output


def test_generate_unknown_id_fails_before_loading(run_cli) -> None:
    res = run_cli("generate", "#99", "-p", "x")
    assert res.exit_code == 1 and "there is no file #99 in the catalogue" in res.stderr

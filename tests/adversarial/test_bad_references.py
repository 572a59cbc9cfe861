"""Item 7 of issue 18: an unknown catalogue id says so; a bad reference is one `Error:` line with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import BadReferenceError, NotInCatalogueError
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors

NO_99 = "Error: there is no file #99 in the catalogue (`sdhub list` shows the ids)\n"


@pytest.mark.parametrize("command", [["info", "#99"], ["rm", "#99"], ["install", "#99"], ["install", "--dry-run", "#99"],
                                     ["identify", "#99"], ["hash", "#99"], ["info", "id:99"], ["install", "id:99"],
                                     ["identify", "id:99"], ["hash", "-q", "id:99"], ["check", "#99", "#99"],
                                     ["lookup", "#99"]])
def test_unknown_catalogue_id_says_there_is_no_such_file(run_cli, command: list[str]) -> None:
    res = run_cli(*command)
    assert res.exit_code == 1
    assert res.stderr == NO_99


@pytest.mark.parametrize("ref", ["bogus", "civitai:abc", "hf:", "deadbeefdeadbeefd", "urn:air:sdxl", "id:x", "#abc"])
def test_bad_reference_is_one_error_line_with_a_hint(run_cli, ref: str) -> None:
    res = run_cli("install", ref)
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: cannot understand reference") and res.stderr.count("\n") == 1
    assert ("sdhub install --help" in res.stderr or "sdhub list" in res.stderr) and "Traceback" not in res.output


@pytest.mark.parametrize("form", ["#99", "id:99"])
def test_generate_unknown_id_fails_before_loading(run_cli, form: str) -> None:
    res = run_cli("generate", form, "-p", "x")
    assert res.exit_code == 1 and "there is no file #99 in the catalogue" in res.stderr, res.output
    assert "no registered source" not in res.output


def test_hub_resolve_unknown_id_says_so(hub_instance) -> None:
    for form in ("#99", "id:99", "ID:99"):
        with pytest.raises(NotInCatalogueError, match=r"there is no file #99 in the catalogue"):
            hub_instance.resolve(form)


@pytest.mark.parametrize("ref", ["#99999999999999999999999", "id:18446744073709551616", "#²", "#١٢"])
def test_absurd_ids_are_one_error_not_a_traceback(run_cli, ref: str) -> None:
    res = run_cli("info", ref)
    assert res.exit_code == 1 and res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1, res.output
    assert "Traceback" not in res.output


def test_catalogue_ids_name_the_catalogued_file_everywhere(run_cli, hub_instance, tmp_path: Path) -> None:
    """`id:3` is the catalogue id form (never a plugin scheme "id"): every command that takes a ref or a path reads it."""
    model = write_safetensors(tmp_path / "lora.safetensors", SDXL_LORA_KOHYA, {"ss_base_model_version": "sdxl_base_v1-0"})
    rec = hub_instance.register_file(model)
    for form in (f"#{rec.id}", f"id:{rec.id}"):
        assert hub_instance.resolve(form).path == Path(rec.path)
        for command in (["info", form], ["identify", form], ["hash", "-q", form], ["install", form]):
            res = run_cli(*command)
            assert res.exit_code == 0, (command, res.output)
            assert "no registered source" not in res.output
        assert "sdxl lora" in run_cli("identify", form).stdout
        assert rec.sha256.upper() in run_cli("hash", "-q", form).stdout
        assert "already installed" in run_cli("install", form).stdout
    forced = run_cli("install", "--force", f"#{rec.id}")
    assert forced.exit_code == 1 and forced.stderr.count("Error:") == 1 and "source reference" in forced.stderr


def test_id_is_not_a_plugin_scheme() -> None:
    from hub.sources.refs import parse

    for text in ("id:3", "ID:3", "#3"):
        with pytest.raises(BadReferenceError, match="catalogue id"):
            parse(text)

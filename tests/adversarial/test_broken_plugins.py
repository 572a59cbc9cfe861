"""Broken plugins (issue 18): raising at import, raising inside a hook, returning garbage.

sdhub must go on: the plugin is named in one warning, the built-ins still answer, and nothing is
half-registered.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub import hookimpl, plugins
from plugin_dists import make_distribution
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


@pytest.mark.parametrize("body, what", [
    ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    ("import sdhub_no_such_dependency\n", "ModuleNotFoundError"),
    ("raise SystemExit(3)\n", "SystemExit"),
    ("def (:\n", "SyntaxError"),
])
def test_plugin_raising_at_import_is_one_warning(extra_site: Path, run_cli, tmp_path: Path, body: str,
                                                 what: str) -> None:
    make_distribution(extra_site, "sdhubadv_bad", body)
    plugins.reload_plugins()
    assert any("sdhubadv_bad" in p and what in p for p in plugins.problems()), plugins.problems()
    model = write_safetensors(tmp_path / "lora.safetensors", SDXL_LORA_KOHYA, {"ss_base_model_version": "sdxl_base_v1-0"})
    res = run_cli("identify", model, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["family"] == "sdxl"
    assert "Traceback" not in res.output


def test_hook_raising_on_install_leaves_the_file_registered_once(plugin_registration, hub_instance,
                                                                 tmp_path: Path) -> None:
    class Exploding:
        @hookimpl
        def model_installed(self, record):  # type: ignore[no-untyped-def]
            raise ValueError("plugin bug")

    plugin_registration(Exploding(), "exploding")
    model = write_safetensors(tmp_path / "lora.safetensors", SDXL_LORA_KOHYA, fill=b"\x09")
    rec = hub_instance.register_file(model)
    assert [r.id for r in hub_instance.list()] == [rec.id]
    assert any("exploding" in p and "plugin bug" in p for p in plugins.problems())


@pytest.mark.parametrize("garbage", [None, "a family", 42, object()])
def test_family_hook_registering_garbage_is_named_and_identify_still_works(plugin_registration, tmp_path: Path,
                                                                          garbage: object) -> None:
    class Garbage:
        @hookimpl
        def register_families(self, register):  # type: ignore[no-untyped-def]
            register(garbage)

    plugin_registration(Garbage(), "garbage")
    from hub import identify_path

    model = write_safetensors(tmp_path / "lora.safetensors", SDXL_LORA_KOHYA, {"ss_base_model_version": "sdxl_base_v1-0"})
    assert identify_path(model).family == "sdxl"
    assert any("garbage" in p for p in plugins.problems()), plugins.problems()


def _source_plugin(plugin_registration, **methods):  # type: ignore[no-untyped-def]
    from hub.sources.protocol import Source

    methods.setdefault("search", lambda self, ctx, q: None)
    cls = type("Garbage", (Source,), {"name": "garbage", "plan": lambda self, ctx, ref: None, **methods})

    class Plugin:
        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register(cls())

    plugin_registration(Plugin(), "garbage-source")


@pytest.mark.parametrize("returned", [None, ["not", "a", "dict"], {"x": "y"}, "text"])
def test_lookup_from_a_source_returning_garbage_is_one_error(plugin_registration, run_cli, tmp_path: Path,
                                                            returned: object) -> None:
    model = write_safetensors(tmp_path / "lora.safetensors", SDXL_LORA_KOHYA, fill=b"\x0b")
    import hashlib

    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    value = {sha: "garbage info"} if returned == {"x": "y"} else returned
    _source_plugin(plugin_registration, lookup_hashes=lambda self, ctx, shas: value)
    res = run_cli("lookup", model, "--source", "garbage", "--json")
    assert "Traceback" not in res.output
    assert res.stdout.startswith("["), res.output
    [entry] = json.loads(res.stdout)
    assert entry["found"] == [] and "garbage" in (entry["error"] or "")
    assert res.exit_code == 1


@pytest.mark.parametrize("returned", [None, "results", [1, 2, 3]])
def test_search_from_a_source_returning_garbage_is_one_error(plugin_registration, run_cli, returned: object) -> None:
    _source_plugin(plugin_registration, search=lambda self, ctx, q: returned)
    res = run_cli("search", "x", "--source", "garbage", "--json")
    assert "Traceback" not in res.output
    assert res.exit_code == 1
    assert "garbage" in json.loads(res.stdout)["errors"]

"""The plugin framework itself: registration rules, isolation of broken plugins, entry points, listing."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from hub import hookimpl, plugins
from hub.plugins.registry import Registry
from plugin_dists import make_distribution


@dataclass
class Thing:
    name: str
    aliases: tuple[str, ...] = field(default_factory=tuple)


def test_registry_names_aliases_and_conflicts() -> None:
    reg: Registry[Thing] = Registry("thing", Thing)
    assert reg.add(Thing("DPM++ 2M Karras", aliases=("dpmpp_2m_karras",)), plugin="a")
    assert reg.get("dpm++ 2m karras") is reg.get("DPMPP_2M_KARRAS")
    assert not reg.add(Thing("dpm++_2m_karras"), plugin="b")  # same name, other spelling
    assert "plugin 'b' registered thing 'dpm++_2m_karras', which plugin 'a' already provides" in reg.problems[-1]
    replacement = Thing("DPM++ 2M Karras")
    assert reg.add(replacement, plugin="b", override=True)
    assert reg.get("DPM++ 2M Karras") is replacement
    assert reg.registration("DPM++ 2M Karras").plugin == "b"  # type: ignore[union-attr]
    assert not reg.add("not a thing", plugin="c")  # type: ignore[arg-type]
    assert "plugin 'c' registered a str as a thing; expected a Thing" in reg.problems[-1]
    assert not reg.add(Thing(""), plugin="d")
    assert "without a name" in reg.problems[-1]


def test_hook_that_raises_is_isolated(plugin_registration) -> None:  # type: ignore[no-untyped-def]
    class Exploding:
        __name__ = "exploding"

        @hookimpl
        def model_installed(self, record: object) -> None:
            raise RuntimeError("boom")

    seen: list[object] = []

    class Listening:
        __name__ = "listening"

        @hookimpl
        def model_installed(self, record: object) -> None:
            seen.append(record)

    plugin_registration(Exploding(), "exploding")
    plugin_registration(Listening(), "listening")
    plugins.fire("model_installed", record="rec")
    assert seen == ["rec"]
    assert any("plugin 'exploding' raised in model_installed: RuntimeError: boom" in p for p in plugins.problems())


def test_model_installed_fires_on_register(plugin_registration, hub_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors_files import SD15_UNET_MARKERS, write_safetensors

    received = []

    class Recorder:
        __name__ = "recorder"

        @hookimpl
        def model_installed(self, record: object) -> None:
            received.append(record)

    plugin_registration(Recorder(), "recorder")
    part = write_safetensors(tmp_path / "dl" / "x.safetensors.part", SD15_UNET_MARKERS)
    final = tmp_path / "store" / "x.safetensors"
    record = hub_instance.register_file(final, move_from=part)
    assert final.exists() and not part.exists()
    assert [r.id for r in received] == [record.id]  # type: ignore[attr-defined]
    assert received[0].path == str(final)  # type: ignore[attr-defined]


def test_register_commands_adds_a_cli_command(plugin_registration, cli_runner) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import cli

    class Greeter:
        __name__ = "greeter"

        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command(name="hello-plugin")
            def hello() -> None:
                """Say hello."""
                click.echo("hello from a plugin")

    plugin_registration(Greeter(), "greeter")
    try:
        plugins.fire("register_commands", cli=cli)
        result = cli_runner.invoke(cli, ["hello-plugin"])
        assert result.exit_code == 0 and result.stdout == "hello from a plugin\n"
    finally:
        cli.commands.pop("hello-plugin", None)


# --- entry points, for real: a distribution on sys.path with an [sdhub] entry point --------------

def test_broken_plugin_is_reported_and_the_rest_works(extra_site: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    make_distribution(extra_site, "sdhubtest_broken", "raise ImportError('needs libfoo')\n", dist="sdhub-broken",
                      version="1.2.3")
    make_distribution(
        extra_site, "sdhubtest_good", dist="sdhub-good", version="1.2.3", source=
        "from hub import hookimpl\n"
        "@hookimpl\n"
        "def model_removed(record, deleted_file):\n"
        "    pass\n",
    )
    plugins.reload_plugins()
    assert "plugin 'sdhubtest_broken' failed to load: ImportError: needs libfoo" in plugins.problems()
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["sdhubtest_good"]["version"] == "1.2.3"
    assert listed["sdhubtest_good"]["distribution"] == "sdhub-good"
    assert listed["sdhubtest_good"]["hooks"] == ["model_removed"]
    assert "sdhubtest_broken" not in listed
    assert "Warning: plugin 'sdhubtest_broken' failed to load" in result.stderr


def test_sdhub_plugins_env_restricts_loading(extra_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(extra_site, "sdhubtest_one", "", dist="sdhub-one")
    make_distribution(extra_site, "sdhubtest_two", "", dist="sdhub-two")
    monkeypatch.setenv("SDHUB_PLUGINS", "sdhubtest_two")
    plugins.reload_plugins()
    assert plugins.pm.has_plugin("sdhubtest_two") and not plugins.pm.has_plugin("sdhubtest_one")
    monkeypatch.setenv("SDHUB_PLUGINS", "")
    plugins.reload_plugins()
    assert not plugins.pm.has_plugin("sdhubtest_two")
    monkeypatch.delenv("SDHUB_PLUGINS")
    plugins.reload_plugins()
    assert plugins.pm.has_plugin("sdhubtest_one") and plugins.pm.has_plugin("sdhubtest_two")


def test_importing_hub_loads_no_plugins_and_no_torch() -> None:
    import subprocess

    code = ("import sys, hub; import hub.api, hub.cli; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'hub_plugins.pipelines') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- plugins that extend each registry, used by real commands ----------------------------------

PIXART_KEYS = {
    "x_embedder.proj.weight": ("F16", [1152, 4, 2, 2]),
    "y_embedder.y_proj.fc1.weight": ("F16", [1152, 4096]),
    "blocks.0.cross_attn.q_linear.weight": ("F16", [1152, 1152]),
    "blocks.0.cross_attn.kv_linear.weight": ("F16", [2304, 1152]),
    "final_layer.linear.weight": ("F16", [32, 1152]),
}


def _pixart_family():  # type: ignore[no-untyped-def]
    from hub.identify import Evidence, Family, FamilyMatch

    def match(view):  # type: ignore[no-untyped-def]
        if view.dim("y_embedder.y_proj.fc1.weight", 1) == 4096 and view.has("blocks.0.cross_attn.kv_linear.weight"):
            return FamilyMatch(components=["dit"], evidence=[
                Evidence("family", "pixart_sigma", "y_embedder.y_proj.fc1.weight takes 4096-wide T5 features")])
        return None

    return Family(name="pixart_sigma", match=match, title="PixArt-Σ", latent_channels=4)


def test_a_plugin_family_changes_what_info_reports(plugin_registration, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors_files import write_safetensors

    path = write_safetensors(tmp_path / "pixart.safetensors", PIXART_KEYS)
    before = json.loads(run_cli("info", "--json", str(path)).stdout)
    assert before["family"] == "unknown"

    class PixArtPlugin:
        __name__ = "pixart"

        @hookimpl
        def register_families(self, register):  # type: ignore[no-untyped-def]
            register(_pixart_family())

    plugin_registration(PixArtPlugin(), "pixart")
    after = json.loads(run_cli("info", "--json", str(path)).stdout)
    assert after["family"] == "pixart_sigma"
    assert after["kind"] == "diffusion_model"
    assert any("4096-wide T5" in str(ev) for ev in after["evidence"])


def test_a_plugin_source_answers_search(plugin_registration, run_cli) -> None:  # type: ignore[no-untyped-def]
    from hub.sources.protocol import SearchPage, SearchResult, Source

    class ShelfSource(Source):
        name = "shelf"
        description = "a studio's own model shelf"

        def search(self, ctx, query):  # type: ignore[no-untyped-def]
            return SearchPage([SearchResult(source="shelf", ref=f"shelf:{query.text}-1", name=f"{query.text} from the shelf",
                                            kind="lora", base_model="SDXL 1.0", claimed_family="sdxl")])

        def plan(self, ctx, ref):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class ShelfPlugin:
        __name__ = "shelf"

        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register(ShelfSource())

    plugin_registration(ShelfPlugin(), "shelf")
    result = run_cli("search", "watercolor", "--source", "shelf", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = data["results"] if isinstance(data, dict) else data
    assert [r["ref"] for r in rows] == ["shelf:watercolor-1"]
    assert rows[0]["name"] == "watercolor from the shelf"


def test_a_plugin_returning_the_wrong_type_is_named(plugin_registration) -> None:  # type: ignore[no-untyped-def]
    class Confused:
        __name__ = "confused"

        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register({"name": "not-a-source"})

    plugin_registration(Confused(), "confused")
    sources = plugins.get_registry("sources")
    assert "not-a-source" not in sources and "civitai" in sources
    assert any("plugin 'confused' registered a dict as a source; expected a Source" in p for p in plugins.problems())


def test_duplicate_source_name_is_refused_unless_overriding(plugin_registration) -> None:  # type: ignore[no-untyped-def]
    from hub.sources.protocol import Source

    class FakeCivitai(Source):
        name = "civitai"

        def search(self, ctx, query):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def plan(self, ctx, ref):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Squatter:
        __name__ = "squatter"

        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register(FakeCivitai())

    plugin_registration(Squatter(), "squatter")
    assert not isinstance(plugins.get_registry("sources").get("civitai"), FakeCivitai)
    assert any("plugin 'squatter' registered source 'civitai', which plugin 'civitai' already provides" in p
               for p in plugins.problems())

    class Replacer:
        __name__ = "replacer"

        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register(FakeCivitai(), override=True)

    plugin_registration(Replacer(), "replacer")
    assert isinstance(plugins.get_registry("sources").get("civitai"), FakeCivitai)


def test_a_plugin_source_that_crashes_does_not_hide_the_others(plugin_registration, run_cli) -> None:  # type: ignore[no-untyped-def]
    from hub.sources.protocol import SearchPage, SearchResult, Source

    class Broken(Source):
        name = "broken"

        def search(self, ctx, query):  # type: ignore[no-untyped-def]
            raise KeyError("results")

        def plan(self, ctx, ref):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Working(Source):
        name = "working"

        def search(self, ctx, query):  # type: ignore[no-untyped-def]
            return SearchPage([SearchResult(source="working", ref="working:1", name="still here")])

        def plan(self, ctx, ref):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Both:
        __name__ = "both"

        @hookimpl
        def register_sources(self, register):  # type: ignore[no-untyped-def]
            register(Broken())
            register(Working())

    plugin_registration(Both(), "both")
    result = run_cli("search", "x", "--source", "broken", "--source", "working")
    assert result.exit_code == 0
    assert "still here" in result.stdout
    assert "broken search failed: source 'broken' failed in search: KeyError" in result.stderr
    assert "Traceback" not in result.output

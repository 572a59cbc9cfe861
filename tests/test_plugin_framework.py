"""The plugin framework itself: registration rules, isolation of broken plugins, entry points, listing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from hub import hookimpl, plugins
from hub.registry import Registry


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

def _make_distribution(root: Path, dist: str, module: str, source: str, version: str = "1.2.3") -> None:
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[sdhub]\n{module} = {module}\n")


@pytest.fixture
def extra_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in list(sys.modules):
        if name.startswith("sdhubtest_"):
            del sys.modules[name]
    monkeypatch.undo()
    plugins.reload_plugins()


def test_broken_plugin_is_reported_and_the_rest_works(extra_site: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    _make_distribution(extra_site, "sdhub-broken", "sdhubtest_broken", "raise ImportError('needs libfoo')\n")
    _make_distribution(
        extra_site, "sdhub-good", "sdhubtest_good",
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
    _make_distribution(extra_site, "sdhub-one", "sdhubtest_one", "")
    _make_distribution(extra_site, "sdhub-two", "sdhubtest_two", "")
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

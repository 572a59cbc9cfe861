"""Item 9 of issue 18: an unknown sampler (and other cheap options) is refused before anything is resolved or loaded."""

from __future__ import annotations

import time

import pytest

from fake_http import FakeServer


@pytest.fixture
def civitai(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A source that records every request: nothing may reach it when an option is wrong."""
    with FakeServer("civitai") as server:
        monkeypatch.setenv("SDHUB_CIVITAI_URL", server.url + "/api/v1")
        yield server


@pytest.mark.parametrize("args, message", [
    (["-s", "no-such-sampler"], "unknown sampler 'no-such-sampler'"),
    (["-W", "100"], "multiples of 8"),
    (["--refiner-switch", "0.99"], "0.99"),
])
def test_bad_option_fails_before_the_model_is_fetched(run_cli, civitai, args: list[str], message: str) -> None:
    t0 = time.monotonic()
    res = run_cli("generate", "civitai:4201@130072", "-p", "x", *args)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output
    assert civitai.requests() == []  # nothing was resolved, let alone downloaded
    assert time.monotonic() - t0 < 20


def test_unknown_sampler_fails_before_a_local_model_loads(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors_files import SD15_UNET_MARKERS, write_safetensors

    model = write_safetensors(tmp_path / "m.safetensors", SD15_UNET_MARKERS)
    res = run_cli("generate", model, "-p", "x", "-s", "eulr")
    assert res.exit_code == 1
    assert "unknown sampler 'eulr'" in res.stderr and res.stderr.count("Error:") == 1
    assert "Loaded" not in res.stderr

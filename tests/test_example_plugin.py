"""The example plugin package in examples/ installs with pip and arrives through the `sdhub` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import plugins

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sdhub-sampler-example"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("sdhub_sampler_example-*.dist-info"))
    return target


@pytest.fixture
def example_on_path(installed_example: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(installed_example))
    plugins.reload_plugins()
    yield installed_example
    monkeypatch.undo()
    sys.modules.pop("sdhub_sampler_example", None)
    plugins.reload_plugins()


def test_example_sampler_is_listed_by_the_cli(example_on_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    listed = {p["name"]: p for p in json.loads(run_cli("plugins", "--json").stdout)}
    assert listed["dpmpp_3m_sde"]["distribution"] == "sdhub-sampler-example"
    assert listed["dpmpp_3m_sde"]["version"] == "0.1.0"
    assert listed["dpmpp_3m_sde"]["registers"] == {"samplers": ["dpmpp_3m_sde_karras"]}
    sampler = plugins.get_registry("samplers").get("DPM++ 3M SDE Karras")
    assert sampler is not None and sampler.serves("sdxl") and not sampler.serves("sd3")


def test_example_sampler_builds_its_scheduler(example_on_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers")
    base = diffusers.EulerDiscreteScheduler(prediction_type="v_prediction")
    scheduler = plugins.get_registry("samplers").get("dpmpp_3m_sde_k").build(base, family="sd1")
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.solver_order == 3
    assert scheduler.config.algorithm_type == "sde-dpmsolver++"
    assert scheduler.config.use_karras_sigmas is True
    assert scheduler.config.prediction_type == "v_prediction"  # the model's own setting survives

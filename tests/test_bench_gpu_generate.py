"""bench/gpu_generate.py runs on the CPU with tiny models (what CI runs; on a GPU it runs the full-size shapes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu_generate.py"


def test_the_flux_bench_reports_ratios_against_bare_diffusers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import torch

    spec = importlib.util.spec_from_file_location("gpu_generate", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_generate", bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the suite's own thread setting stays
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--family", "flux", "--steps", "2", "--repeats", "1", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert result["family"] == "flux" and result["its_ratio"] > 0 and result["first_image_ratio"] > 0
    files = result["flux_files"]
    assert files["sdhub_first_image_s"] > 0
    assert files["diffusers_single_file_first_image_s"] is None  # its converter hard-codes the full width
    printed = capsys.readouterr().out
    assert "flux" in printed and "flux from files" in printed

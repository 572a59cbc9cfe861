"""GGUF files (issue 19 item 4): ComfyUI-GGUF diffusion models and llama.cpp encoders, from the header alone.

Files are written by the gguf package's GGUFWriter (``tests/gguf_files.py``) with the true tensor names and
shapes of the releases; the data region is a hole of the true size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.errors import InvalidHeaderError, TruncatedFileError
from hub.identify import identify_path
from hub_plugins.families import builtin_families
from tests.gguf_files import quantise, write_gguf
from tests.headers import load_spec

FAMILIES = builtin_families()


def _spec(name: str) -> dict[str, tuple[str, list[int]]]:
    return {k: (d, list(s)) for k, (d, s) in load_spec(name)["tensors"].items()}


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K", "Q5_0"])
def test_flux_gguf(tmp_path: Path, qtype: str) -> None:
    path = write_gguf(tmp_path / f"flux1-dev-{qtype}.gguf", "flux", quantise(_spec("flux_dev"), qtype),
                      {"general.quantization_version": 2})
    ident = identify_path(path, families=FAMILIES)
    assert (ident.family, ident.kind, ident.variant, ident.format) == ("flux", "diffusion_model", "dev", "gguf")
    assert ident.precision == qtype and ident.details["quantization"] == f"gguf_{qtype}"
    assert ident.metadata["gguf.general.architecture"] == "flux"
    assert ident.because("family.metadata")[0].because == "general.architecture=flux agrees"
    assert any("img_in.weight shape [3072, 64]" in e.because for e in ident.because("family"))
    assert ident.runnable is True and not ident.warnings


def test_sdxl_unet_gguf_with_reshaped_conv(tmp_path: Path) -> None:
    """A conv weight ComfyUI-GGUF flattened to 2-D keeps its true shape in comfy.gguf.orig_shape.*."""
    tensors = quantise(_spec("sdxl_base"), "Q4_K", strip="model.diffusion_model.")
    name = "input_blocks.0.0.weight"
    assert tensors[name][1] == [320, 4, 3, 3]
    tensors[name] = ("F16", [320, 36])
    path = write_gguf(tmp_path / "sdxl.gguf", "sdxl", tensors, orig_shapes={name: [320, 4, 3, 3]})
    ident = identify_path(path, families=FAMILIES)
    assert (ident.family, ident.kind, ident.variant, ident.precision) == ("sdxl", "diffusion_model", None, "Q4_K")
    assert ident.details["in_channels"] == 4


def test_gguf_shapes_win_over_the_architecture(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "mislabelled.gguf", "sd3", quantise(_spec("flux_schnell"), "Q8_0"))
    ident = identify_path(path, families=FAMILIES)
    assert (ident.family, ident.variant) == ("flux", "schnell")
    assert ident.warnings and ident.because("conflict")


def test_t5_encoder_and_llm_ggufs(tmp_path: Path) -> None:
    # llama.cpp's T5 encoder naming (convert_hf_to_gguf.py T5EncoderModel: enc.blk.N.*)
    t5 = {"token_embd.weight": ("Q8_0", [32128, 4096]), "enc.output_norm.weight": ("F32", [4096])}
    for i in range(24):
        t5[f"enc.blk.{i}.attn_q.weight"] = ("Q8_0", [4096, 4096])
        t5[f"enc.blk.{i}.ffn_up.weight"] = ("Q8_0", [10240, 4096])
    ident = identify_path(write_gguf(tmp_path / "t5-v1_1-xxl-encoder-Q8_0.gguf", "t5encoder", t5,
                                     {"t5encoder.embedding_length": 4096}), families=FAMILIES)
    assert (ident.kind, ident.components, ident.family, ident.precision) == ("text_encoder", ["t5"], "unknown", "Q8_0")
    assert ident.candidates == ["sd3", "flux", "chroma", "pixart"]
    llm = {"token_embd.weight": ("Q4_K", [151936, 2560]), "blk.0.attn_q.weight": ("Q4_K", [4096, 2560])}
    ident = identify_path(write_gguf(tmp_path / "Qwen3-4B-Q4_K_M.gguf", "qwen3", llm), families=FAMILIES)
    assert (ident.kind, ident.family) == ("unknown", "unknown")
    assert "general.architecture=qwen3" in ident.because("kind")[-1].because


def test_bad_ggufs_fail_with_one_reason(tmp_path: Path) -> None:
    cut = write_gguf(tmp_path / "cut.gguf", "flux", quantise(_spec("flux_dev"), "Q8_0"), cut=4096)
    with pytest.raises(TruncatedFileError, match="interrupted"):
        identify_path(cut, families=FAMILIES)
    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(b"GGUF" + (1).to_bytes(4, "little") + bytes(16))
    with pytest.raises(InvalidHeaderError, match="version 1"):
        identify_path(v1, families=FAMILIES)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (1).to_bytes(8, "little")
                     + (2**40).to_bytes(8, "little") + b"key")
    with pytest.raises(InvalidHeaderError, match="claims"):
        identify_path(huge, families=FAMILIES)


def test_cli_identifies_and_scans_ggufs(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_gguf(tmp_path / "models" / "flux1-dev-Q8_0.gguf", "flux", quantise(_spec("flux_dev"), "Q8_0"))
    result = run_cli("identify", "--json", str(path))
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.stdout)
    assert (data["family"], data["kind"], data["precision"], data["format"]) == ("flux", "diffusion_model", "Q8_0",
                                                                                 "gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    result = run_cli("identify", str(bad))
    assert result.exit_code == 1 and "Error" in result.output and "Traceback" not in result.output
    # a folder scan picks .gguf files up like any model file (a small one: scanning hashes every byte);
    # llama2.c's stories260K as llama.cpp converts it (dim 64, 5 layers, vocabulary 512)
    tiny = {"token_embd.weight": ("F32", [512, 64]), "output_norm.weight": ("F32", [64])}
    for i in range(5):
        for part, shape in (("attn_q", [64, 64]), ("attn_k", [32, 64]), ("ffn_up", [172, 64])):
            tiny[f"blk.{i}.{part}.weight"] = ("F32", shape)
    small = write_gguf(tmp_path / "llm" / "stories260K.gguf", "llama", tiny)
    assert run_cli("scan", str(small.parent)).exit_code == 0
    (row,) = [r for r in json.loads(run_cli("list", "--json").stdout) if r["name"] == "stories260K.gguf"]
    assert (row["family"], row["kind"]) == ("unknown", "unknown")

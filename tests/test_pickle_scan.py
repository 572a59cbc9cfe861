"""Pickle checkpoints: tensors listed without executing anything; malicious pickles refused.

Checkpoints are written with the real ``torch.save`` (zip and legacy formats). Full-size shapes
cost nothing: a scalar ``expand``-ed to the true shape is saved with a one-element storage, and
the scanner reports the shape the pickle declares.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hub.errors import (
    EmptyFileError,
    LimitExceededError,
    NotACheckpointError,
    TruncatedFileError,
    UnsafePickleError,
)
from hub.identify import identify_path
from hub_plugins.families import builtin_families
from hub.files.pickle_scan import scan_checkpoint
from tests.headers import load_spec

DTYPES = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16, "I64": torch.int64}


def full_size_state_dict(fixture: str) -> dict[str, Any]:
    spec = load_spec(fixture)
    return {name: torch.zeros((), dtype=DTYPES[dtype]).expand(*shape) for name, (dtype, shape) in spec["tensors"].items()}


class WritesFile:
    """Unpickling this calls ``open(path, "w")``: it creates a file if the pickle is ever executed."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))


class RunsShell:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.path}",))


def test_zip_checkpoint_lists_names_dtypes_shapes(tmp_path: Path) -> None:
    sd = {"model.diffusion_model.conv.weight": torch.randn(8, 4, 3, 3, dtype=torch.float16),
          "model.diffusion_model.conv.bias": torch.randn(8),
          "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77).unsqueeze(0),
          "shared_view": torch.randn(4, 4).t()}
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": sd, "global_step": 875000, "epoch": 3}, path)
    scan = scan_checkpoint(path)
    assert scan.format == "torch-zip"
    assert set(scan.tensors) == set(sd)
    for name, t in sd.items():
        assert scan.tensors[name].shape == tuple(t.shape)
    assert scan.tensors["model.diffusion_model.conv.weight"].dtype == "F16"
    assert scan.tensors["model.diffusion_model.conv.bias"].dtype == "F32"
    assert scan.tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"].dtype == "I64"
    assert scan.metadata == {"global_step": "875000", "epoch": "3"}
    assert "torch._utils._rebuild_tensor_v2" in scan.globals_used


def test_legacy_format_and_parameters(tmp_path: Path) -> None:
    sd = {"w": torch.nn.Parameter(torch.randn(3, 5)), "b": torch.randn(3).to(torch.bfloat16)}
    path = tmp_path / "legacy.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    scan = scan_checkpoint(path)
    assert scan.format == "torch-legacy"
    assert {n: (t.dtype, t.shape) for n, t in scan.tensors.items()} == {"w": ("F32", (3, 5)), "b": ("BF16", (3,))}


def test_full_size_sd15_ckpt_is_identified(tmp_path: Path) -> None:
    path = tmp_path / "v1-5-pruned-emaonly.ckpt"
    torch.save({"state_dict": full_size_state_dict("sd15"), "global_step": 840000}, path)
    assert path.stat().st_size < 5_000_000  # one element per storage, true shapes in the pickle
    ident = identify_path(path, families=builtin_families())
    assert (ident.family, ident.kind, ident.variant, ident.format) == ("sd1", "checkpoint", None, "ckpt")
    assert ident.components == ["unet", "vae", "clip_l"]
    assert ident.precision == "fp16"
    assert ident.metadata["global_step"] == "840000"
    assert ident.details["container"] == "torch-zip"


def test_sdxl_lora_in_a_bin_file(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_lora_weights.bin"
    torch.save(full_size_state_dict("lora_sdxl_diffusers"), path)
    ident = identify_path(path, families=builtin_families())
    assert (ident.family, ident.kind) == ("sdxl", "lora")
    assert ident.lora is not None and ident.lora.format == "diffusers" and ident.lora.rank == 16


def test_a1111_textual_inversion_pt(tmp_path: Path) -> None:
    path = tmp_path / "my-style.pt"
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.zeros(4, 768)}, "name": "my-style",
                "step": 1500, "sd_checkpoint": "cc6cb27103", "sd_checkpoint_name": "v1-5-pruned-emaonly"}, path)
    ident = identify_path(path, families=builtin_families())
    assert (ident.kind, ident.family) == ("embedding", "sd1")
    assert ident.details["vectors"] == 4


@pytest.mark.parametrize("payload", [WritesFile, RunsShell])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, payload: type) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "callback": payload(marker)}, path)

    # The payload is real: torch.load(weights_only=False) of the same checkpoint, with the payload
    # pointed at a control path, does create the file.
    control = tmp_path / "ctrl1.txt"  # same length as "pwned.txt": pickles store string lengths
    _run_unsafely_with_marker(path, tmp_path / "control.ckpt", str(marker), str(control))
    assert control.exists(), "the test payload must really write a file when executed"

    with pytest.raises(UnsafePickleError) as info:
        scan_checkpoint(path)
    expected = {"io.open", "_io.open", "builtins.open"} if payload is WritesFile else {"posix.system", "os.system"}
    offending = info.value.offending
    assert offending in expected
    assert f"references {offending}" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(UnsafePickleError):
        identify_path(path, families=builtin_families())
    assert not marker.exists()


def _run_unsafely_with_marker(path: Path, copy: Path, marker: str, control: str) -> None:
    assert len(control) == len(marker)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(copy, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = data.replace(marker.encode(), control.encode())
            dst.writestr(item, data)
    torch.load(copy, weights_only=False)  # what an unsafe loader does


def test_legacy_malicious_plain_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"state_dict": {}, "x": WritesFile(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"references (io|_io|builtins)\.open"):
        scan_checkpoint(path)
    assert not marker.exists()


def test_lightning_callback_is_allowed_but_never_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SD1.x .ckpt files carry a pytorch_lightning ModelCheckpoint in "callbacks": allowed, stood in for.
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.best_model_path = "/x"

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module.__name__):
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(3)}, "callbacks": {ModelCheckpoint: ModelCheckpoint()},
                "pytorch-lightning_version": "1.4.2"}, path)
    monkeypatch.delitem(sys.modules, module.__name__)
    scan = scan_checkpoint(path)
    assert list(scan.tensors) == ["model.diffusion_model.x"]
    assert "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint" in scan.globals_used


def test_zip_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(NotACheckpointError, match="without data.pkl"):
        identify_path(path, families=builtin_families())


def test_other_bad_checkpoints(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFileError):
        scan_checkpoint(empty)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(57))  # a GIF header, fixed bytes: random ones can parse as a protocol-1 pickle
    with pytest.raises(NotACheckpointError, match="neither a zip"):
        scan_checkpoint(noise)
    garbage_pickle = tmp_path / "garbage.pt"
    # a protocol-2 header followed by bytes that are no pickle opcode at all
    garbage_pickle.write_bytes(b"\x80\x02" + bytes(range(0xD0, 0xF0)))
    with pytest.raises(NotACheckpointError):
        scan_checkpoint(garbage_pickle)
    # random tails may instead claim a huge length: refused all the same, as a file error, never a crash
    rng = random.Random(20261203)
    for _ in range(50):
        garbage_pickle.write_bytes(b"\x80\x02" + rng.randbytes(32))
        with pytest.raises((NotACheckpointError, LimitExceededError, TruncatedFileError)):
            scan_checkpoint(garbage_pickle)

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1000)}}, good)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TruncatedFileError):
        scan_checkpoint(cut)
    # an archive whose storage entries were lost
    stripped = tmp_path / "stripped.ckpt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(stripped, "w") as dst:
        for item in src.infolist():
            if "/data/" not in item.filename:
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(TruncatedFileError, match="storages"):
        scan_checkpoint(stripped)


def test_a_pickle_cannot_change_how_the_next_file_is_read(tmp_path: Path) -> None:
    """The allow-list's stand-ins are shared objects: BUILD on one must not rewrite it for later scans."""
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2, 3)}}, good)
    # GLOBAL torch.FloatStorage, then BUILD it with {"dtype": "F16"} (pickle protocol 2, by hand)
    poison = tmp_path / "poison.pt"
    poison.write_bytes(b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x03\x00\x00\x00F16sb.")
    with pytest.raises(NotACheckpointError):
        scan_checkpoint(poison)
    assert scan_checkpoint(good).tensors["w"].dtype == "F32"


def test_original_textual_inversion_pt_with_a_token_id_tensor(tmp_path: Path) -> None:
    # the ldm EmbeddingManager format: the placeholder's token id is a 0-d tensor, not an int
    path = tmp_path / "ldm-style.pt"
    torch.save({"string_to_token": {"*": torch.tensor(265)}, "string_to_param": {"*": torch.zeros(2, 768)}}, path)
    ident = identify_path(path, families=builtin_families())
    assert (ident.kind, ident.family, ident.details["vectors"]) == ("embedding", "sd1", 2)

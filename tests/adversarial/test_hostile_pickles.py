"""Hostile pickle checkpoints: each ends in one clear error, quickly, in bounded memory.

The files are written opcode by opcode (``tests/hostile_files.py``): a "billion laughs" dict of
itself, a tuple whose hash takes 2**64 steps, a deflate bomb whose data.pkl claims 100 bytes and
inflates to 1 GiB, a legacy pickle claiming a 2 GiB string, a pickle that allocates a dict per byte,
calls that copy the same large tuple over and over, BUILD on a stand-in, a 100,000-character
tensor name, a zip with too many entries. Protocol 0/1 pickles are old, not hostile: protocol 1
reads, protocol 0 (which torch itself cannot load) says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import hostile_files as H
from hub import limits
from hub.errors import LimitExceededError, NotACheckpointError, SdhubError, TruncatedFileError
from hub.identify import identify_path
from hub_plugins.families import builtin_families
from hub.files.pickle_scan import scan_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _fails(path: Path, error: type[SdhubError], *words: str, seconds: float = 5.0) -> str:
    """``scan_checkpoint(path)`` raises ``error`` (one message naming the file), within ``seconds``."""
    start = time.monotonic()
    with pytest.raises(error) as info:
        scan_checkpoint(path)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for word in words:
        assert word in message
    assert elapsed < seconds, f"{path.name} took {elapsed:.1f} s"
    return message


@pytest.mark.timeout(30)
def test_billion_laughs_dict_of_itself_is_walked_once(tmp_path: Path) -> None:
    path = H.billion_laughs_zip(tmp_path / "laughs.ckpt")
    assert path.stat().st_size < 2000
    _fails(path, NotACheckpointError, "holds no tensors", seconds=2)


@pytest.mark.timeout(30)
def test_shared_dicts_forty_levels_deep(tmp_path: Path) -> None:
    # 2**40 paths lead to the one tensor, deeper than any state dict nests: walked once, quickly
    _fails(H.shared_dag_zip(tmp_path / "dag.ckpt", levels=40), NotACheckpointError, "holds no tensors", seconds=2)


@pytest.mark.timeout(30)
def test_shared_dicts_within_state_dict_depth(tmp_path: Path) -> None:
    scan = scan_checkpoint(H.shared_dag_zip(tmp_path / "dag.ckpt", levels=3, width=50))
    assert list(scan.tensors) == ["state_dict.l3_0.l2_0.l1_0.weight"]


@pytest.mark.timeout(30)
def test_walk_cap_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_WALK_ENTRIES", 50)
    path = H.tensor_zip(tmp_path / "many.ckpt", {f"t{i}": (2,) for i in range(100)})
    _fails(path, LimitExceededError, "more than 50 entries")


@pytest.mark.timeout(30)
def test_tuple_whose_hash_never_ends(tmp_path: Path) -> None:
    path = H.tuple_hash_zip(tmp_path / "hash.ckpt", depth=64)
    _fails(path, LimitExceededError, "dict key or set element", "1,000 objects", seconds=2)


@pytest.mark.timeout(60)
def test_deflate_bomb_claiming_100_bytes_inflates_no_further(tmp_path: Path) -> None:
    path = H.deflate_bomb_zip(tmp_path / "bomb.ckpt", inflated=1 << 28, claimed=100)
    _fails(path, TruncatedFileError, "data.pkl", "CRC")


@pytest.mark.timeout(60)
def test_inflating_stops_at_the_cap_whatever_the_header_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile itself stops at the declared size; the scanner's own cap counts what zlib gives out
    import zipfile

    from hub.files import pickle_scan

    path = H.deflate_bomb_zip(tmp_path / "bomb.ckpt", inflated=8 << 20, claimed=None)
    monkeypatch.setattr(limits, "MAX_PICKLE_BYTES", 1 << 20)
    with zipfile.ZipFile(path) as archive, pytest.raises(LimitExceededError, match="inflates to more than 1 MiB"):
        pickle_scan._read_member(archive, "archive/data.pkl", str(path), limits.Budget(path, "test", 10))


@pytest.mark.timeout(60)
def test_deflate_bomb_with_honest_header_is_refused_unread(tmp_path: Path) -> None:
    path = H.deflate_bomb_zip(tmp_path / "bomb.ckpt", inflated=1 << 28, claimed=None)
    _fails(path, LimitExceededError, "268,435,456 bytes", "24 MiB")


@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB (Linux)")
def test_one_gib_deflate_bomb_peak_memory_stays_small(tmp_path: Path) -> None:
    """The issue's file: a 1 MB zip whose data.pkl claims 100 bytes and inflates to 1 GiB (was 2.1 GB peak)."""
    path = H.deflate_bomb_zip(tmp_path / "bomb.ckpt", inflated=1 << 30, claimed=100)
    assert path.stat().st_size < 1_200_000
    peak = _peak_rss_mb(f"""
from hub.files.pickle_scan import scan_checkpoint
try:
    scan_checkpoint({str(path)!r})
except Exception as exc:
    print(type(exc).__name__)
""")
    assert peak["out"].strip() == "TruncatedFileError"
    assert peak["grew_mb"] < 100, peak


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB (Linux)")
def test_legacy_pickle_claiming_gigabytes_is_refused_unread(tmp_path: Path) -> None:
    path = H.huge_bytes_legacy(tmp_path / "huge.pt", 3 << 30)  # sparse: 3 GiB apparent, no disk
    peak = _peak_rss_mb(f"""
from hub.files.pickle_scan import scan_checkpoint
try:
    scan_checkpoint({str(path)!r})
except Exception as exc:
    print(type(exc).__name__, exc)
""")
    assert peak["out"].startswith("LimitExceededError") and "larger than 24 MiB" in peak["out"]
    assert peak["grew_mb"] < 100, peak


@pytest.mark.timeout(60)
def test_legacy_pickle_over_the_cap_made_of_small_opcodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_PICKLE_BYTES", 1 << 20)
    path = H.legacy_pickle(tmp_path / "long.pt", H.EMPTY_DICT + (H.unicode("x") + b"0") * 300_000)
    _fails(path, LimitExceededError, "larger than 1 MiB")


@pytest.mark.timeout(60)
def test_a_dict_per_byte_hits_the_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if limits.resident_bytes() is None:
        pytest.skip("no way to read resident memory here")
    monkeypatch.setattr(limits, "IDENTIFY_MEMORY_BYTES", 64 * limits.MiB)
    path = H.many_dicts_pickle(tmp_path / "dicts.pt", 4_000_000)  # 4 MB of pickle, ~300 MB of dicts
    _fails(path, LimitExceededError, "more than 64 MiB of memory", seconds=20)


@pytest.mark.timeout(60)
def test_calls_copying_one_large_tuple_over_and_over(tmp_path: Path) -> None:
    path = H.args_copy_zip(tmp_path / "copies.ckpt", n_args=100_000, calls=100_000)  # 10**10 copies
    _fails(path, LimitExceededError, "copy more than 100,000,000 items", seconds=20)


@pytest.mark.timeout(60)
def test_time_budget_stops_a_slow_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_PICKLE_COPIES", 10**15)
    monkeypatch.setattr(limits, "IDENTIFY_SECONDS", 0.5)
    path = H.args_copy_zip(tmp_path / "slow.ckpt", n_args=100_000, calls=100_000)
    _fails(path, LimitExceededError, "took longer than 0.5 s", seconds=10)


@pytest.mark.timeout(30)
def test_build_on_a_stand_in_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    from hub.files import pickle_scan

    before = pickle_scan._rebuild_tensor.__defaults__
    _fails(H.build_on_stand_in_zip(tmp_path / "build.ckpt"), NotACheckpointError, "sets the state of a function")
    assert pickle_scan._rebuild_tensor.__defaults__ == before
    good = scan_checkpoint(H.tensor_zip(tmp_path / "good.ckpt", {"w": (2, 3)}))
    assert good.tensors["w"].shape == (2, 3)


@pytest.mark.timeout(30)
def test_tensor_name_too_long(tmp_path: Path) -> None:
    _fails(H.long_name_zip(tmp_path / "name.ckpt"), LimitExceededError, "100,000 characters")


@pytest.mark.timeout(30)
def test_zip_with_too_many_entries_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_ZIP_ENTRIES", 100)
    _fails(H.many_entries_zip(tmp_path / "entries.ckpt", 500), LimitExceededError, "501 entries")


@pytest.mark.timeout(30)
def test_zip_path_traversal_names_are_only_read(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    path = H.traversal_zip(tmp_path / "deep" / "er" / "trav.ckpt")
    scan = scan_checkpoint(path)
    assert list(scan.tensors) == ["w"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "er", "trav.ckpt"]


# -- old protocols --------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_protocol_1_legacy_checkpoint_is_read(tmp_path: Path) -> None:
    path = H.old_protocol_legacy(tmp_path / "p1.pt", {"model.w": (4, 4), "model.b": (4,)}, protocol=1)
    assert path.read_bytes()[:1] == b"L"  # no PROTO opcode: the magic number's LONG comes first
    scan = scan_checkpoint(path)
    assert scan.format == "torch-legacy"
    assert {n: t.shape for n, t in scan.tensors.items()} == {"model.w": (4, 4), "model.b": (4,)}


@pytest.mark.timeout(30)
def test_protocol_0_checkpoint_says_what_it_is(tmp_path: Path) -> None:
    path = H.old_protocol_legacy(tmp_path / "p0.pt", {"w": (4, 4)}, protocol=0)
    message = _fails(path, NotACheckpointError, "protocol-0 pickle")
    assert "neither a zip archive nor a pickle" not in message


@pytest.mark.timeout(30)
def test_old_protocol_pickle_without_tensors_says_old_protocol(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1, "b": [1, 2]}, protocol=1))
    _fails(path, NotACheckpointError, "old-protocol (0 or 1) pickle", "holds no tensors")


@pytest.mark.timeout(30)
def test_text_under_a_checkpoint_name_is_still_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "LICENSE.ckpt"
    path.write_text("Licensed under the Apache License, Version 2.0\n" * 10)
    _fails(path, NotACheckpointError, "neither a zip archive nor a pickle")


@pytest.mark.timeout(60)
def test_torch_written_protocol_1_checkpoint_matches_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sd = {"conv.weight": torch.zeros(8, 4, 3, 3, dtype=torch.float16), "conv.bias": torch.zeros(8)}
    for zipped in (False, True):
        path = tmp_path / f"p1_{zipped}.pt"
        torch.save(sd, path, pickle_protocol=1, _use_new_zipfile_serialization=zipped)
        scan = scan_checkpoint(path)
        assert {n: t.shape for n, t in scan.tensors.items()} == {n: tuple(t.shape) for n, t in sd.items()}
        assert scan.tensors["conv.weight"].dtype == "F16"


# -- identify: one bad file, one error line, the next file still read ------------------------------
HOSTILE: dict[str, Callable[[Path], Path]] = {
    "laughs.ckpt": H.billion_laughs_zip,
    "hash.ckpt": H.tuple_hash_zip,
    "bomb.ckpt": lambda p: H.deflate_bomb_zip(p, inflated=1 << 26, claimed=100),
    "huge.pt": lambda p: H.huge_bytes_legacy(p, 3 << 30),
    "copies.ckpt": H.args_copy_zip,
    "build.ckpt": H.build_on_stand_in_zip,
    "p0.pt": lambda p: H.old_protocol_legacy(p, {"w": (2, 2)}, protocol=0),
}


@pytest.mark.timeout(120)
def test_identify_cli_reports_each_hostile_file_and_reads_the_good_ones(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    paths = [str(build(tmp_path / name)) for name, build in HOSTILE.items()]
    good = H.old_protocol_legacy(tmp_path / "good_p1.pt", {"w": (2, 2)}, protocol=1)
    start = time.monotonic()
    result = run_cli("identify", "--json", *paths, str(good))
    assert time.monotonic() - start < 60
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r["path"] for r in rows] == [*paths, str(good)]
    for row in rows[:-1]:
        assert row["error"].startswith(row["path"] + ": ") and row["error_type"] in (
            "LimitExceededError", "NotACheckpointError", "TruncatedFileError"), row
    assert "error" not in rows[-1] and rows[-1]["tensors"] == 1
    text = run_cli("identify", *paths, str(good))
    errors = [line for line in text.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == len(paths) and len(text.stderr.splitlines()) == len(paths)


def test_identify_path_on_a_laughing_pickle(tmp_path: Path) -> None:
    with pytest.raises(NotACheckpointError):
        identify_path(H.billion_laughs_zip(tmp_path / "l.pt"), families=builtin_families())


def _peak_rss_mb(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; its peak RSS against an idle interpreter's, in MB."""
    probe = ("import resource, sys; sys.path.insert(0, {root!r}); import hub.files.pickle_scan\n{code}\n"
             "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    idle = subprocess.run([sys.executable, "-c", probe.format(root=str(ROOT), code="")], capture_output=True,
                          text=True, check=True)
    run = subprocess.run([sys.executable, "-c", probe.format(root=str(ROOT), code=code)], capture_output=True,
                         text=True, check=True, timeout=90)
    base = int(idle.stdout.split("PEAK")[-1])
    peak = int(run.stdout.split("PEAK")[-1])
    return {"out": run.stdout.split("PEAK")[0], "grew_mb": (peak - base) / 1024, "peak_mb": peak / 1024}


@pytest.mark.timeout(30)
def test_scan_checkpoint_never_opens_a_fifo(tmp_path: Path) -> None:
    import os

    from hub.errors import FileAccessError

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.ckpt")
    with pytest.raises(FileAccessError, match="not a regular file"):
        scan_checkpoint(tmp_path / "pipe.ckpt")

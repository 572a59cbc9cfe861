"""``sdhub scan`` over a folder of good and hostile files: the hostile ones are errors with their
reason (exit code 1) and are not catalogued; the good ones are catalogued as usual; nothing hangs.
``--include-broken`` catalogues the unreadable ones too, as before."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import hostile_files as H
from headers import load_spec
from hub import limits
from safetensors_files import write_safetensors


def _folder(root: Path) -> dict[str, Path]:
    spec = load_spec("lora_sd15_diffusers")
    files = {
        "good_lora": write_safetensors(root / "loras" / "dreamy.safetensors", spec["tensors"], fill=b"\x01\x02"),
        "good_ckpt": H.tensor_zip(root / "ckpt" / "tiny.ckpt", {"model.w": (4, 4)}),
        "laughs": H.billion_laughs_zip(root / "ckpt" / "laughs.ckpt"),
        "hash": H.tuple_hash_zip(root / "ckpt" / "hash.ckpt"),
        "bomb": H.deflate_bomb_zip(root / "ckpt" / "bomb.ckpt", inflated=1 << 26, claimed=100),
        "unsafe": H.write_torch_zip(root / "ckpt" / "unsafe.pt", H.pickle_bytes(
            H.glob("posix", "system") + H.tup(H.unicode("touch /tmp/sdhub-pwned")) + H.REDUCE)),
        "p0": H.old_protocol_legacy(root / "ckpt" / "p0.pt", {"w": (2, 2)}, protocol=0),
    }
    page = root / "loras" / "login.safetensors"
    page.write_bytes(b"<!DOCTYPE html><html><body>Please log in</body></html>" * 50)
    files["html"] = page
    return files


def _counts(report: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {k: report["summary"][k] for k in ("added", "updated", "moved", "unchanged", "missing", "error")}


BAD = ("laughs", "hash", "bomb", "unsafe", "p0", "html")
REASONS = {"laughs": "holds no tensors", "hash": "dict key or set element", "bomb": "CRC",
           "unsafe": "posix.system", "p0": "protocol-0 pickle", "html": "safetensors"}


@pytest.mark.timeout(120)
def test_scan_lists_hostile_files_as_errors_and_catalogues_only_models(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    files = _folder(tmp_path / "models")
    start = time.monotonic()
    result = run_cli("scan", "--json", str(tmp_path / "models"))
    assert time.monotonic() - start < 60
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert _counts(report) == {"added": 2, "updated": 0, "moved": 0, "unchanged": 0, "missing": 0, "error": 6}
    by_path = {e["path"]: e for e in report["files"]}
    for name in BAD:
        entry = by_path[str(files[name])]
        assert entry["status"] == "error" and entry["id"] is None and entry["family"] is None, entry
        assert entry["message"].startswith("not catalogued: ") and REASONS[name] in entry["message"], entry
        assert str(files[name]) not in entry["message"]  # the path is the entry's, not repeated
    assert {by_path[str(files[n])]["status"] for n in ("good_lora", "good_ckpt")} == {"added"}
    listed = json.loads(run_cli("list", "--json").stdout)
    assert sorted(r["name"] for r in listed) == ["dreamy.safetensors", "tiny.ckpt"]
    assert not Path("/tmp/sdhub-pwned").exists()

    again = json.loads(run_cli("scan", "--json", str(tmp_path / "models")).stdout)
    assert _counts(again) == {"added": 0, "updated": 0, "moved": 0, "unchanged": 2, "missing": 0, "error": 6}


@pytest.mark.timeout(120)
def test_scan_text_output_names_each_bad_file_once(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    files = _folder(tmp_path / "models")
    result = run_cli("scan", str(tmp_path / "models"))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error ")]
    assert len(errors) == len(BAD)
    for name in BAD:
        (line,) = [e for e in errors if f" {files[name]}: " in e]
        assert line.count(str(files[name])) == 1 and REASONS[name] in line
    assert result.stdout.splitlines()[-1] == "2 added, 6 error"


@pytest.mark.timeout(120)
def test_include_broken_catalogues_them_and_a_plain_scan_still_reports_them(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    files = _folder(tmp_path / "models")
    result = run_cli("scan", "--json", "--include-broken", str(tmp_path / "models"))
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["summary"]["added"] == 8 and report["summary"]["error"] == 0
    listed = {r["name"]: r for r in json.loads(run_cli("list", "--json").stdout)}
    assert listed["laughs.ckpt"]["family"] is None and listed["laughs.ckpt"]["kind"] is None
    info = json.loads(run_cli("info", "--json", str(files["hash"])).stdout)
    assert "dict key or set element" in info["identify_error"]

    plain = run_cli("scan", "--json", str(tmp_path / "models"))
    again = json.loads(plain.stdout)
    assert plain.exit_code == 1
    assert _counts(again) == {"added": 0, "updated": 0, "moved": 0, "unchanged": 2, "missing": 0, "error": 6}
    laughs = next(e for e in again["files"] if e["path"] == str(files["laughs"]))
    assert laughs["id"] == listed["laughs.ckpt"]["id"] and f"sdhub rm '#{laughs['id']}'" in laughs["message"]


@pytest.mark.timeout(60)
def test_a_fifo_named_like_a_model_does_not_block_the_scan(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    root = tmp_path / "models"
    good = H.tensor_zip(root / "a" / "good.ckpt", {"w": (2, 2)})
    os.mkfifo(root / "a" / "pipe.safetensors")
    report = json.loads(run_cli("scan", "--json", str(root)).stdout)
    by_path = {e["path"]: e for e in report["files"]}
    assert by_path[str(root / "a" / "pipe.safetensors")]["message"].startswith("not a regular file")
    assert by_path[str(good)]["status"] == "added"


@pytest.mark.timeout(120)
def test_identify_time_budget_errors_one_file_and_the_scan_goes_on(tmp_path: Path, run_cli,  # type: ignore[no-untyped-def]
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_PICKLE_COPIES", 10**15)
    monkeypatch.setattr(limits, "IDENTIFY_SECONDS", 1.0)
    root = tmp_path / "models"
    root.mkdir()
    slow = H.args_copy_zip(root / "slow.ckpt", n_args=100_000, calls=100_000)  # minutes of copying
    good = H.tensor_zip(root / "good.ckpt", {"w": (2, 2)})
    start = time.monotonic()
    result = run_cli("scan", "--json", str(root))
    assert time.monotonic() - start < 30
    by_path = {e["path"]: e for e in json.loads(result.stdout)["files"]}
    assert by_path[str(slow)]["status"] == "error" and "took longer than 1 s" in by_path[str(slow)]["message"]
    assert by_path[str(good)]["status"] == "added"
    assert result.exit_code == 1


@pytest.mark.timeout(120)
def test_hash_time_budget_errors_one_file_and_the_scan_goes_on(tmp_path: Path, run_cli,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "HASH_SECONDS", 0.0)
    monkeypatch.setattr(limits, "HASH_MIN_BYTES_PER_SECOND", 10**18)
    root = tmp_path / "models"
    spec = load_spec("lora_sd15_diffusers")  # 2 MB: hashed in chunks, the budget checked after each
    big = write_safetensors(root / "big.safetensors", spec["tensors"], fill=b"\x05")
    small = H.tensor_zip(root / "small.ckpt", {"w": (2, 2)})  # under 1 MiB: one read, done at once
    result = run_cli("scan", "--json", str(root))
    by_path = {e["path"]: e for e in json.loads(result.stdout)["files"]}
    assert by_path[str(big)]["status"] == "error" and "hashing took longer than 0 s" in by_path[str(big)]["message"]
    assert by_path[str(small)]["status"] == "added"
    assert [r["name"] for r in json.loads(run_cli("list", "--json").stdout)] == ["small.ckpt"]

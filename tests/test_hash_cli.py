"""`sdhub hash`: the table people read, the JSON scripts read, and one-line errors."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import blake3
import pytest
from click.testing import CliRunner

from hub.cli import cli

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def make_safetensors(path: Path, body: bytes) -> Path:
    header = json.dumps({"w": {"dtype": "U8", "shape": [len(body)], "data_offsets": [0, len(body)]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return path


def body_sha256(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little") :]).hexdigest()


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_table_shows_civitai_style_values(runner: CliRunner, tmp_path: Path) -> None:
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello world")
    lora = make_safetensors(tmp_path / "lora.safetensors", bytes(range(256)) * 5000)
    result = runner.invoke(cli, ["hash", str(hello), str(lora)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    lora_sha = hashlib.sha256(lora.read_bytes()).hexdigest()
    assert "CRC32   85114A0D" in out  # Civitai's own test vector, upper-case as Civitai shows it
    assert "AutoV1  E3B0C442" in out
    assert f"AutoV2  {lora_sha[:10].upper()}" in out
    assert f"SHA256  {lora_sha.upper()}" in out
    assert f"AutoV3  {body_sha256(lora)[:12].upper()}\n" in out  # 12-hex short form only
    assert f"BLAKE3  {blake3.blake3(lora.read_bytes()).hexdigest().upper()}" in out
    assert "AutoV3  - (not a safetensors file)" in out  # for hello.txt
    assert out.index(str(hello)) < out.index(str(lora))
    assert result.stderr == ""


def test_json_gives_full_lowercase_values_and_path(runner: CliRunner, tmp_path: Path) -> None:
    lora = make_safetensors(tmp_path / "lora.safetensors", b"\x01" * (3 * MiB))
    data = lora.read_bytes()
    result = runner.invoke(cli, ["hash", "--json", str(lora)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress bar in JSON mode
    entries = json.loads(result.stdout)
    crc = zlib.crc32(data)
    assert entries == [
        {
            "path": str(lora),
            "sha256": hashlib.sha256(data).hexdigest(),
            "autov1": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8],
            "autov2": hashlib.sha256(data).hexdigest()[:10],
            "autov3": body_sha256(lora),
            "autov3_short": body_sha256(lora)[:12],
            "crc32": crc.to_bytes(4, "little").hex(),
            "crc32_zlib": f"{crc:08x}",
            "blake3": blake3.blake3(data).hexdigest(),
            "size": len(data),
            "autov3_error": None,
        }
    ]


def test_invalid_safetensors_reported_in_both_modes(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(struct.pack("<Q", 10_000) + b'{"w": {}}')
    table = runner.invoke(cli, ["hash", str(broken)])
    assert table.exit_code == 0
    assert "AutoV3  - (not a valid safetensors file: header length 10000 runs past the end" in table.stdout
    entry = json.loads(runner.invoke(cli, ["hash", "--json", str(broken)]).stdout)[0]
    assert entry["autov3"] is None
    assert entry["autov3_error"].startswith("not a valid safetensors file")
    assert entry["sha256"] == hashlib.sha256(broken.read_bytes()).hexdigest()


def test_bad_paths_give_one_line_errors_and_the_rest_still_hashed(runner: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    good.write_bytes(b"abc")
    missing = tmp_path / "missing.safetensors"
    result = runner.invoke(cli, ["hash", str(missing), str(tmp_path), str(good)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"Error: {missing}: no such file",
        f"Error: {tmp_path}: is a directory, not a file",
    ]
    assert hashlib.sha256(b"abc").hexdigest().upper() in result.stdout


def test_json_lists_failures_with_their_error(runner: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    good.write_bytes(b"abc")
    missing = tmp_path / "missing.bin"
    result = runner.invoke(cli, ["hash", "--json", str(good), str(missing)])
    assert result.exit_code == 1
    entries = json.loads(result.stdout)
    assert entries[0]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert entries[1] == {"path": str(missing), "error": f"{missing}: no such file"}


def test_needs_at_least_one_path(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["hash"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_progress_bar_for_people_only(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a terminal the bar (bytes/s, ETA) goes to stderr; the table on stdout stays clean."""
    from hub.cli import fingerprint_cmds

    big = tmp_path / "big.ckpt"
    big.write_bytes(bytes(5 * MiB))
    monkeypatch.setattr(fingerprint_cmds, "progress_enabled", lambda as_json=False, quiet=False: not (as_json or quiet))
    result = runner.invoke(cli, ["hash", str(big)])
    assert result.exit_code == 0, result.output
    assert "hashing" in result.stderr and "100%" in result.stderr and "B/s" in result.stderr
    assert "hashing" not in result.stdout
    quiet = runner.invoke(cli, ["hash", "--quiet", str(big)])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout == result.stdout

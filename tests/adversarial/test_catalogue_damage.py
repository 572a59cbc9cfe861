"""A corrupt, truncated or locked catalogue (issue 18): one clear error naming the file and the way out.

sdhub never overwrites a catalogue it cannot read (the bytes stay as they were, for `sqlite3 .recover`),
and a catalogue another process holds is waited for, up to the timeout, then reported as locked.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adversarial_proc import run_sdhub
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors


@pytest.fixture(autouse=True)
def no_civitai(monkeypatch: pytest.MonkeyPatch) -> None:
    """`install` must fail on the catalogue before any request; if it did not, it would reach nothing real."""
    monkeypatch.setenv("SDHUB_CIVITAI_URL", "http://127.0.0.1:9")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_safetensors(tmp_path / "models" / "lora.safetensors", SDXL_LORA_KOHYA,
                             {"ss_base_model_version": "sdxl_base_v1-0"}, fill=b"\x11")


def _db(home: Path) -> Path:
    return home / "registry.db"


def _good_catalogue(home: Path, model: Path) -> bytes:
    """A real catalogue with one file in it, checkpointed so registry.db alone holds everything."""
    done = run_sdhub("scan", model)
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(_db(home))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return _db(home).read_bytes()


def _damage(kind: str, good: bytes) -> bytes:
    if kind == "garbage":
        return hashlib.sha256(b"seed").digest() * 600
    if kind == "text":
        return b"this is my shopping list, not a database\n"
    if kind == "truncated-header":
        return good[:60]
    if kind == "truncated-pages":
        return good[: len(good) // 3]
    if kind == "scribbled-pages":  # a valid header, pages of noise after it
        noise = hashlib.sha256(b"noise").digest() * (len(good) // 32)
        return good[:4096] + noise[: len(good) - 4096]
    raise AssertionError(kind)


DAMAGE = ["garbage", "text", "truncated-header", "truncated-pages", "scribbled-pages"]


# every kind of damage against the command that writes, and every command against one kind (each case is a
# few sdhub processes: the full cross product would cost minutes and find nothing more)
CASES = [(kind, ["scan", "{model}"]) for kind in DAMAGE] + [
    ("garbage", ["list"]), ("scribbled-pages", ["info", "#1"]), ("truncated-pages", ["install", "civitai:1"])]


@pytest.mark.parametrize("kind, command", CASES)
def test_damaged_catalogue_is_one_error_naming_the_file_and_is_left_untouched(
        sdhub_home: Path, model: Path, kind: str, command: list[str]) -> None:
    bad = _damage(kind, _good_catalogue(sdhub_home, model))
    for side in ("registry.db-wal", "registry.db-shm"):
        (sdhub_home / side).unlink(missing_ok=True)
    _db(sdhub_home).write_bytes(bad)
    res = run_sdhub(*[c.format(model=model) for c in command])
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert str(_db(sdhub_home)) in lines[0] and "corrupt" in lines[0]
    assert "move it aside" in lines[0] and "sdhub scan" in lines[0]  # how to recover
    assert _db(sdhub_home).read_bytes() == bad  # nothing overwritten


def test_an_empty_catalogue_file_is_simply_a_new_catalogue(sdhub_home: Path, model: Path) -> None:
    """Zero bytes is what SQLite itself calls an empty database: there is nothing to lose, so sdhub uses it."""
    sdhub_home.mkdir(parents=True)
    _db(sdhub_home).write_bytes(b"")
    res = run_sdhub("scan", model)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(run_sdhub("list", "--json").stdout)) == 1


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes the catalogue's write lock exclusively and keeps it ``seconds``."""
    code = (
        "import sqlite3, sys, time\n"
        f"con = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "con.execute('BEGIN EXCLUSIVE')\n"
        "con.execute('DELETE FROM files WHERE id < 0')\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
        "con.execute('COMMIT')\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _locked_env(home: Path, timeout: float) -> dict[str, str]:
    return {"SDHUB_DB_URL": f"sqlite:///{_db(home)}?timeout={timeout:g}"}


def test_locked_catalogue_is_waited_for_then_one_clear_error(sdhub_home: Path, model: Path, tmp_path: Path) -> None:
    _good_catalogue(sdhub_home, model)
    other = write_safetensors(tmp_path / "models" / "other.safetensors", SDXL_LORA_KOHYA, fill=b"\x12")
    holder = _hold_lock(_db(sdhub_home), 30)
    try:
        t0 = time.monotonic()
        res = run_sdhub("scan", other, env=_locked_env(sdhub_home, 1.5))
        waited = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "locked by another process" in lines[0] and str(_db(sdhub_home)) in lines[0], res.stderr
    assert "waited 1.5 s" in lines[0]
    assert 1.4 < waited < 20, waited  # it waited for the lock, and not forever
    listed = json.loads(run_sdhub("list", "--json").stdout)
    assert [r["name"] for r in listed] == ["lora.safetensors"]  # nothing half-registered


def test_locked_catalogue_released_in_time_lets_the_command_finish(sdhub_home: Path, model: Path,
                                                                  tmp_path: Path) -> None:
    _good_catalogue(sdhub_home, model)
    other = write_safetensors(tmp_path / "models" / "other.safetensors", SDXL_LORA_KOHYA, fill=b"\x13")
    holder = _hold_lock(_db(sdhub_home), 1.5)
    try:
        res = run_sdhub("scan", other, env=_locked_env(sdhub_home, 20))
    finally:
        holder.wait(timeout=30)
    assert res.returncode == 0, res.stderr
    assert sorted(r["name"] for r in json.loads(run_sdhub("list", "--json").stdout)) == [
        "lora.safetensors", "other.safetensors"]


def test_catalogue_on_a_full_disk_is_one_clear_error_and_stays_readable(sdhub_home: Path, model: Path,
                                                                        tmp_path: Path) -> None:
    """The catalogue cannot grow (RLIMIT_FSIZE at its current size: writes past it fail as on a full disk)."""
    _good_catalogue(sdhub_home, model)
    folder = tmp_path / "many"
    for i in range(40):
        write_safetensors(folder / f"l{i:02d}.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "x" * 3000},
                          fill=bytes([i + 20]))
    limit = os.path.getsize(_db(sdhub_home))
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "sys.argv = ['sdhub', 'scan', sys.argv[1]]\n"
            "from hub.cli import main; main()\n")
    res = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "full" in errors[0] and "free some space" in errors[0], res.stderr
    again = run_sdhub("list", "--json")
    assert again.returncode == 0, again.stderr
    names = [r["name"] for r in json.loads(again.stdout)]
    assert "lora.safetensors" in names and len(names) == len(set(names))


_FULL_DISK_DRIVER = r'''
import json, os, subprocess, sys
home, first, folder = sys.argv[1:4]
env = dict(os.environ, SDHUB_HOME=home)
def sdhub(*args):
    done = subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120)
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr}
out = {"first": sdhub("scan", first)}
fd = os.open(os.path.join(home, "filler"), os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
try:
    while True:
        os.write(fd, b"\1" * 4096)
except OSError:
    os.close(fd)
out["scan"] = sdhub("scan", folder)
os.unlink(os.path.join(home, "filler"))
out["list"] = sdhub("list", "--json")
print(json.dumps(out))
'''


@pytest.mark.timeout(300)
def test_catalogue_on_a_really_full_disk_says_disk_full(tmp_path: Path, model: Path) -> None:
    """ENOSPC for real: the sdhub home on a 2 MiB tmpfs (in a user and mount namespace, no root needed)."""
    folder = tmp_path / "many"
    for i in range(40):
        write_safetensors(folder / f"l{i:02d}.safetensors", SDXL_LORA_KOHYA, {"ss_output_name": "x" * 3000},
                          fill=bytes([i + 20]))
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=2m tmpfs "{mnt}" || exit 77; '
                                           f'exec "{sys.executable}" -c "$0" "{mnt}/home" "{model}" "{folder}"',
             _FULL_DISK_DRIVER], capture_output=True, text=True, timeout=240)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here")
    if done.returncode == 77 or "unshare" in done.stderr and not done.stdout:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["first"]["rc"] == 0, out["first"]
    scan = out["scan"]
    assert scan["rc"] == 1 and "Traceback" not in scan["err"], scan
    errors = [line for line in scan["err"].splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "disk full" in errors[0] and "free some space" in errors[0], scan["err"]
    assert out["list"]["rc"] == 0, out["list"]
    names = [r["name"] for r in json.loads(out["list"]["out"])]
    assert "lora.safetensors" in names and len(names) == len(set(names))

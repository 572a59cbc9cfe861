"""`sdhub install` cut short (issue 18): a full disk, a file-size limit, Ctrl-C in the middle of the body.

Each is the real command in a child process against the fake Civitai: one short message, the right
exit code, nothing registered, and the ``.part`` kept so that running the same command again resumes
with a Range request from where it stopped (asserted on the storage server's request log).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adversarial_proc import run_sdhub
from safetensors_files import SDXL_LORA_KOHYA, write_safetensors
from source_helpers import env_for
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401

SIZE = 2 * 1024 * 1024  # big enough that a 256 KiB chunk is well inside it
TOKEN = "good-token"  # the fake's valid token: never in any output, .part state file, catalogue or sidecar
SIGNATURE = "X-Amz-Signature=deadbeef"  # the signed storage link's secret part


def _no_secret_anywhere(home: Path, *texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and SIGNATURE not in text
    for path in home.rglob("*"):
        if path.is_file() and not path.name.endswith((".part", ".safetensors")):
            data = path.read_bytes()
            assert TOKEN.encode() not in data and SIGNATURE.encode() not in data, path


def _big_lora(tmp_path: Path) -> bytes:
    """A real SDXL LoRA made ~2 MiB by padding its metadata (the tensors stay small)."""
    path = write_safetensors(tmp_path / "big.safetensors", SDXL_LORA_KOHYA,
                             {"ss_base_model_version": "sdxl_base_v1-0", "ss_pad": "p" * SIZE}, fill=b"\x21\x07")
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture
def civ(fake_civitai, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    data = _big_lora(tmp_path)
    fake_civitai.add(CModel(801, "Big LoRA", "LORA", versions=[
        CVersion(901, "v1", "SDXL 1.0", files=[CFile(1001, "big.safetensors", data)])]))
    for k, v in env_for(civitai=fake_civitai).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SDHUB_RETRY_MAX_WAIT", "0.02")
    monkeypatch.setenv("SDHUB_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("CIVITAI_API_TOKEN", TOKEN)
    fake_civitai.big = data
    return fake_civitai


def _parts(home: Path) -> list[Path]:
    return sorted(home.rglob("*.part"))


def _listed(home: Path) -> list[dict]:  # type: ignore[type-arg]
    res = run_sdhub("list", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _file_gets(civ) -> list:  # type: ignore[no-untyped-def]
    return [r for r in civ.storage.requests("/files/1001") if r.method == "GET"]


def _resumes_and_verifies(civ, home: Path, resume_from: int) -> None:  # type: ignore[no-untyped-def]
    """The same command again: one ranged GET from the partial size, then the file is catalogued and verifies."""
    before = len(_file_gets(civ))
    again = run_sdhub("install", "civitai:801@901", "--json", timeout=120)
    assert again.returncode == 0, again.stderr
    gets = _file_gets(civ)[before:]
    assert gets and gets[0].header("Range") == f"bytes={resume_from}-", [g.headers for g in gets]
    [result] = json.loads(again.stdout)
    path = Path(result["record"]["path"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(civ.big).hexdigest()
    assert _parts(home) == []
    assert [r["name"] for r in _listed(home)] == ["big.safetensors"]
    _no_secret_anywhere(home, again.stdout, again.stderr)
    verified = run_sdhub("verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.timeout(240)
def test_disk_full_mid_download_is_one_error_keeps_the_part_and_resumes(civ, sdhub_home: Path) -> None:
    limit = 1024 * 1024
    run_sdhub("list")  # the catalogue exists before the limit: only the download can hit it
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "sys.argv = ['sdhub', 'install', 'civitai:801@901']\n"
            "from hub.cli import main; main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    assert "File too large" in errors[0] and "free some space" in errors[0] and "resume" in errors[0]
    _no_secret_anywhere(sdhub_home, res.stdout, res.stderr)  # the .part's state file included
    [part] = _parts(sdhub_home)
    assert part.name == "big.safetensors.part" and part.stat().st_size == limit
    assert _listed(sdhub_home) == []  # nothing registered
    assert not [p for p in sdhub_home.rglob("big.safetensors")]
    _resumes_and_verifies(civ, sdhub_home, limit)


def _start_slow_install(civ) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    civ.served[1001].throttle_bps = 256 * 1024
    return subprocess.Popen([sys.executable, "-c", "from hub.cli import main; main()", "install", "civitai:801@901"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _wait_for_part(home: Path, proc: subprocess.Popen[str], at_least: int) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = _parts(home)
        if parts and parts[0].stat().st_size >= at_least:
            return parts[0]
        if proc.poll() is not None:
            pytest.fail(f"install ended before it was interrupted: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the download never started")


@pytest.mark.timeout(240)
def test_ctrl_c_mid_download_exits_130_and_the_rerun_resumes(civ, sdhub_home: Path) -> None:
    proc = _start_slow_install(civ)
    part = _wait_for_part(sdhub_home, proc, 256 * 1024)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("install did not stop on Ctrl-C")
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err + out
    assert err.strip().splitlines()[-1] == "Interrupted: run the same command again to resume.", err
    assert part.exists() and 0 < part.stat().st_size < len(civ.big)
    assert _listed(sdhub_home) == []
    _no_secret_anywhere(sdhub_home, out, err)
    civ.served[1001].throttle_bps = None
    _resumes_and_verifies(civ, sdhub_home, part.stat().st_size)


@pytest.mark.timeout(240)
def test_second_ctrl_c_while_stopping_is_still_clean(civ, sdhub_home: Path) -> None:
    """Impatient users press Ctrl-C twice: still no traceback, still exit 130, the .part still resumable."""
    proc = _start_slow_install(civ)
    part = _wait_for_part(sdhub_home, proc, 256 * 1024)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err + out
    assert _listed(sdhub_home) == []
    civ.served[1001].throttle_bps = None
    _resumes_and_verifies(civ, sdhub_home, part.stat().st_size)

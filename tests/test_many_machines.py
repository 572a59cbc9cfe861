"""Many machines, one catalogue: processes installing, scanning and linking against one database and one store.

Each process stands for a machine: its own SDHUB_HOME, the shared store folder (an NFS/SMB mount in real
life) and the shared catalogue (PostgreSQL for a team; SQLite when the processes share one machine). They
run the real ``sdhub`` command against a fake Civitai that counts every byte it serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hub.catalogue import Catalogue
from tests.fake_civitai import CFile, CModel, CVersion, fake_civitai  # noqa: F401
from tests.source_helpers import env_for, sdxl_lora_bytes

INSTALLERS = 8
# `sdhub ARGS` in a fresh interpreter; with START_AT set, it waits for that moment after importing, so the
# processes hit the catalogue together rather than one interpreter start-up apart.
CLI = ("import os, sys, time; from hub.cli import main; sys.argv[0] = 'sdhub'; "
       "time.sleep(max(0.0, float(os.environ.get('START_AT', '0')) - time.time())); main()")


@pytest.fixture(params=["postgresql", "sqlite"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'shared' / 'registry.db'}"


@pytest.fixture
def civitai_world(fake_civitai, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Four different files on a fake Civitai; one of them published twice (two versions, the same bytes)."""
    data = {name: sdxl_lora_bytes(tmp_path, seed=seed, name=f"{name}.safetensors")
            for name, seed in (("alpha", 21), ("beta", 22), ("gamma", 23), ("delta", 24))}
    fake_civitai.add(CModel(501, "Alpha", "LORA", tags=["a"], versions=[
        CVersion(601, "v1", "SDXL 1.0", files=[CFile(701, "alpha.safetensors", data["alpha"])])]))
    fake_civitai.add(CModel(502, "Beta", "LORA", versions=[
        CVersion(602, "v1", "SDXL 1.0", files=[CFile(702, "beta.safetensors", data["beta"])])]))
    fake_civitai.add(CModel(503, "Gamma", "LORA", versions=[
        CVersion(604, "v2 (the same file again)", "SDXL 1.0", files=[CFile(704, "gamma.safetensors", data["gamma"])]),
        CVersion(603, "v1", "SDXL 1.0", files=[CFile(703, "gamma.safetensors", data["gamma"])])]))
    fake_civitai.add(CModel(505, "Delta", "LORA", versions=[
        CVersion(605, "v1", "SDXL 1.0", files=[CFile(705, "delta.safetensors", data["delta"])])]))
    for served in fake_civitai.served.values():
        served.throttle_bps = 400_000  # each download takes a while, so the installers really overlap
    sha = {name: hashlib.sha256(b).hexdigest() for name, b in data.items()}
    refs = ["civitai:501", "civitai:501@601", "urn:air:sdxl:lora:civitai:501@601", "civitai:502@602",
            f"sha256:{sha['beta']}", "civitai:503@603", "civitai:503@604", "civitai:505", f"autov2:{sha['delta'][:10]}"]
    return {"fake": fake_civitai, "data": data, "sha": sha, "refs": refs,
            "files": {"alpha": [701], "beta": [702], "gamma": [703, 704], "delta": [705]}}


SCANNER = """
import json, sys
from pathlib import Path
from hub import Hub
store, stop = Path(sys.argv[1]), Path(sys.argv[2])
while True:
    last = stop.exists()
    with Hub() as h:
        print(json.dumps([e.to_dict() for e in h.scan([store]).entries]), flush=True)
    if last:
        break
"""


def machine_env(tmp_path: Path, n: int, db_url: str, store: Path, fake: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDHUB_", "CIVITAI_", "HF_TOKEN"))}
    env.update(env_for(civitai=fake))
    env.update({"SDHUB_HOME": str(tmp_path / f"machine{n}"), "SDHUB_DB_URL": db_url, "SDHUB_STORE": str(store),
                "SDHUB_DOWNLOAD_CONNECTIONS": "1", "SDHUB_PLUGINS": "civitai,families",
                "SDHUB_RETRY_MAX_WAIT": "0.05", "NO_PROXY": "127.0.0.1,localhost"})
    return env


def run_machines(commands: list[tuple[list[str], dict[str, str]]], timeout: float = 240) -> list[tuple[int, str, str]]:
    procs = [subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args, env in commands]
    outs = []
    deadline = time.monotonic() + timeout
    for p in procs:
        out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        outs.append((p.returncode, out, err))
    return outs


def test_eight_installers_of_overlapping_refs_download_each_file_once(shared_db: str, civitai_world: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    fake, refs = civitai_world["fake"], civitai_world["refs"]
    store = tmp_path / "shared" / "store"
    commands = []
    for n in range(INSTALLERS):
        order = refs[:]
        random.Random(n).shuffle(order)
        commands.append((["install", "--json", *order], machine_env(tmp_path, n, shared_db, store, fake)))
    # A ninth machine scans the store over and over while they install: it must never catalogue a file that is
    # still being written (downloads stay in .incoming/ until complete and verified, then are renamed into place).
    store.mkdir(parents=True)
    stop = tmp_path / "stop-scanning"
    scanner = subprocess.Popen([sys.executable, "-c", SCANNER, str(store), str(stop)],
                               env=machine_env(tmp_path, 99, shared_db, store, fake), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        outs = run_machines(commands)
    finally:
        stop.touch()
        scanned, scan_err = scanner.communicate(timeout=120)
    assert scanner.returncode == 0, scan_err
    scans = [json.loads(line) for line in scanned.splitlines()]
    assert scans and all(entry["status"] != "error" for scan in scans for entry in scan), scans
    assert sorted(Path(e["path"]).name for e in scans[-1]) == sorted(f"{n}.safetensors" for n in civitai_world["files"])
    for rc, out, err in outs:
        assert "Traceback" not in err, err
        results = json.loads(out)
        assert rc == 0, (err, [(r["ref"], r["error"]) for r in results if r["error"]])
        assert len(results) == len(refs)
        assert {r["status"] for r in results} <= {"installed", "already-installed"}, [r["error"] for r in results]

    # Every distinct file came over the wire exactly once, whichever ref or machine asked for it.
    for name, file_ids in civitai_world["files"].items():
        gets = [r for fid in file_ids for r in fake.storage.requests(f"/files/{fid}/", "GET")]
        assert len(gets) == 1, (name, [r.path for r in gets])

    cat = Catalogue(shared_db)
    try:
        records = cat.list()
        # One row per content, each at a complete file in the store whose bytes are what Civitai published.
        assert sorted(r.sha256 for r in records) == sorted(civitai_world["sha"].values())
        for rec in records:
            path = Path(rec.path)
            assert store in path.parents and ".incoming" not in path.parts and not path.name.endswith(".part")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.sha256
        # No lost update: each file knows every version it was installed as, once.
        by_sha = {r.sha256: r for r in records}
        gamma = by_sha[civitai_world["sha"]["gamma"]]
        assert sorted(s.version_id for s in gamma.sources) == ["603", "604"]
        for name in ("alpha", "beta", "delta"):
            assert len(by_sha[civitai_world["sha"][name]].sources) == 1, name
        # Nothing half-written is left in the store: no .part, lock or resume state, no quarantine.
        leftovers = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()
                           and (p.name.endswith((".part", ".lock", ".state")) or ".quarantine" in p.parts))
        assert leftovers == []
        assert sorted(p.name for p in store.rglob("*.safetensors")) == sorted(
            ["alpha.safetensors", "beta.safetensors", "gamma.safetensors", "delta.safetensors"])
    finally:
        cat.close()


def test_machines_scanning_linking_and_attaching_at_once(shared_db: str, civitai_world: dict[str, Any],
                                                        tmp_path: Path) -> None:
    fake = civitai_world["fake"]
    shared = tmp_path / "shared"
    folder = shared / "models" / "loras"
    folder.mkdir(parents=True)
    files = {f"mine{n}.safetensors": sdxl_lora_bytes(tmp_path, seed=40 + n) for n in range(5)}
    files["alpha-copy.safetensors"] = civitai_world["data"]["alpha"]  # what Civitai publishes as 501@601
    for name, data in files.items():
        (folder / name).write_bytes(data)

    def together(args: list[str], machines: int) -> list[tuple[int, str, str]]:
        start_at = str(time.time() + 4.0)  # past every interpreter's start-up
        envs = [{**machine_env(tmp_path, n, shared_db, shared / "store", fake), "START_AT": start_at}
                for n in range(machines)]
        return run_machines([(args, env) for env in envs])

    # Four machines scan the same new files at once: each file is catalogued once, nobody fails.
    for rc, out, err in together(["scan", "--json", str(folder)], 4):
        assert rc == 0 and "Traceback" not in err, err
        statuses = {e["path"]: e["status"] for e in json.loads(out)["files"]}
        assert set(statuses) == {str(folder / name) for name in files}
        assert set(statuses.values()) <= {"added", "updated", "unchanged"}, statuses
    cat = Catalogue(shared_db)
    try:
        records = cat.list()
        assert sorted(Path(r.path).name for r in records) == sorted(files)
        assert sorted(r.sha256 for r in records) == sorted(hashlib.sha256(d).hexdigest() for d in files.values())
    finally:
        cat.close()

    # Four machines link the catalogue into one UI folder at once: one link per file, all recorded once.
    ui = shared / "ComfyUI"
    for rc, out, err in together(["link", str(ui), "--layout", "comfyui", "--force", "--json"], 4):
        assert rc == 0 and "Traceback" not in err, err
    loras = ui / "models" / "loras"
    made = sorted(loras.iterdir())
    assert [p.name for p in made] == sorted(files)
    assert all(p.is_symlink() and p.resolve() == (folder / p.name).resolve() for p in made)
    cat = Catalogue(shared_db)
    try:
        links = cat.links()
        assert sorted(Path(link["path"]).name for link in links) == sorted(files)
        assert {link["mode"] for link in links} == {"symlink"}
    finally:
        cat.close()

    # Eight machines install what one of those files is on Civitai, at once: none downloads it (the same SHA-256
    # is catalogued); all attach the source to the one file, and it is recorded once.
    for rc, out, err in together(["install", "--json", "civitai:501@601"], INSTALLERS):
        assert rc == 0 and "Traceback" not in err, err
        [result] = json.loads(out)
        assert result["status"] == "already-installed", result["error"]
        assert result["path"] == str(folder / "alpha-copy.safetensors")
    assert fake.storage.requests("/files/", "GET") == []
    cat = Catalogue(shared_db)
    try:
        [alpha] = [r for r in cat.list() if r.name == "alpha-copy.safetensors"]
        assert [(s.source, s.model_id, s.version_id) for s in alpha.sources] == [("civitai", "501", "601")]
        assert [r.name for r in cat.list(text="alpha")] == ["alpha-copy.safetensors"]
        assert len(cat.list()) == len(files)
    finally:
        cat.close()


def test_threads_of_one_hub_open_one_catalogue(tmp_path: Path) -> None:
    """A server's worker threads asking a fresh Hub for its catalogue at once get one Catalogue, upgraded once."""
    import threading

    from hub import Hub

    with Hub(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'threads.db'}") as h:
        barrier = threading.Barrier(8)
        seen: list[object] = []
        errors: list[BaseException] = []

        def open_it() -> None:
            try:
                barrier.wait()
                seen.append(h.catalogue)
                assert h.catalogue.list() == []  # the tables are there for every thread
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len(seen) == 8 and len({id(c) for c in seen}) == 1
        assert h.catalogue is seen[0]

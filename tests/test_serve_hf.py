"""The Hugging Face-compatible endpoint of ``sdhub serve``, driven by the real huggingface_hub client, ``hf`` and diffusers.

The store is filled the way a studio fills it: the real client downloads a tiny SD1.5 diffusers repo from a fake Hub
into a Hugging Face cache that ``sdhub scan --hf-cache`` registers, and ``sdhub install hf:…`` installs a LoRA. Then
clients pointed at the server must get the same bytes, in the same cache layout, with no request to the fake Hub.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from serve_helpers import running_server
from tests.fake_hf import HFRepo, fake_hub  # noqa: F401
from tests.source_helpers import sdxl_lora_bytes

REPO, COMMIT = "acme/tiny-sd15", "e" * 40
LORA_REPO, LORA_COMMIT = "acme/pixel", "d" * 40
UNET = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def sd15_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from tinymodels import build_sd15

    folder = tmp_path_factory.mktemp("sd15")
    build_sd15().save_pretrained(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def studio(fake_hub, sd15_files, hub_instance, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A store holding the diffusers repo (from a scanned HF cache) and a LoRA installed with ``sdhub install``."""
    from huggingface_hub import snapshot_download

    lora = sdxl_lora_bytes(tmp_path, 3)
    fake_hub.app.add(HFRepo(REPO, sd15_files, commit=COMMIT, tags=["diffusers", "stable-diffusion"]))
    fake_hub.app.add(HFRepo(LORA_REPO, {"pixel-art-xl.safetensors": lora}, commit=LORA_COMMIT,
                            tags=["lora", "stable-diffusion-xl"]))
    cache = tmp_path / "studio-hf-cache"
    snapshot_download(REPO, endpoint=fake_hub.primary.url, cache_dir=cache)
    report = hub_instance.scan_hf_cache(cache)
    assert not report.errors, report.to_dict()
    monkeypatch.setenv("SDHUB_HF_ENDPOINTS", fake_hub.primary.url)
    from hub import Hub

    with Hub() as h:
        assert h.install(f"hf:{LORA_REPO}/pixel-art-xl.safetensors").ok
    hub_instance.close()
    seen = len(fake_hub.primary.all_requests())
    yield {"hub": hub_instance, "fake": fake_hub, "files": sd15_files, "lora": lora, "seen": seen}
    # Nothing a client did against the server reached the real sources.
    assert len(fake_hub.primary.all_requests()) == seen


def test_snapshot_download_gets_the_whole_repo(studio, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import snapshot_download

    with running_server(studio["hub"]) as srv:
        folder = Path(snapshot_download(REPO, endpoint=srv.url, cache_dir=tmp_path / "client"))
    assert folder.name == COMMIT
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert got == studio["files"]


def test_hf_hub_download_by_branch_and_commit(studio, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import hf_hub_download

    unet = studio["files"][UNET]
    with running_server(studio["hub"]) as srv:
        for revision in ("main", COMMIT):
            cache = tmp_path / f"client-{revision[:4]}"
            path = Path(hf_hub_download(REPO, UNET, revision=revision, endpoint=srv.url, cache_dir=cache))
            assert path.read_bytes() == unet
            assert path.parent.parent.name == COMMIT
            # The blob is named by the LFS SHA256 (X-Linked-Etag), as with the real Hub.
            blob = Path(os.path.realpath(path)).name
            assert blob == hashlib.sha256(unet).hexdigest()
        lora = Path(hf_hub_download(LORA_REPO, "pixel-art-xl.safetensors", endpoint=srv.url,
                                    cache_dir=tmp_path / "client-lora"))
        assert lora.read_bytes() == studio["lora"] and lora.parent.name == LORA_COMMIT


def test_resolve_headers_range_and_small_files(studio) -> None:  # type: ignore[no-untyped-def]
    unet, index = studio["files"][UNET], studio["files"]["model_index.json"]
    with running_server(studio["hub"]) as srv:
        head = requests.head(f"{srv.url}/{REPO}/resolve/main/{UNET}", timeout=10)
        assert head.status_code == 200
        sha = hashlib.sha256(unet).hexdigest()
        assert head.headers["X-Repo-Commit"] == COMMIT
        assert head.headers["ETag"] == f'"{sha}"' == head.headers["X-Linked-Etag"]
        assert head.headers["X-Linked-Size"] == str(len(unet)) == head.headers["Content-Length"]
        part = requests.get(f"{srv.url}/{REPO}/resolve/{COMMIT}/{UNET}", headers={"Range": "bytes=100-199"}, timeout=10)
        assert part.status_code == 206 and part.content == unet[100:200]
        small = requests.get(f"{srv.url}/{REPO}/resolve/main/model_index.json", timeout=10)
        git = hashlib.sha1(f"blob {len(index)}\0".encode() + index).hexdigest()
        assert small.content == index and small.headers["ETag"] == f'"{git}"' and "X-Linked-Etag" not in small.headers


def test_api_models_and_tree(studio) -> None:  # type: ignore[no-untyped-def]
    with running_server(studio["hub"]) as srv:
        info = requests.get(f"{srv.url}/api/models/{REPO}", timeout=10).json()
        assert info["sha"] == COMMIT and info["id"] == REPO
        assert sorted(s["rfilename"] for s in info["siblings"]) == sorted(studio["files"])
        assert requests.get(f"{srv.url}/api/models/{REPO}/revision/main", timeout=10).json()["sha"] == COMMIT
        top = requests.get(f"{srv.url}/api/models/{REPO}/tree/{COMMIT}", timeout=10).json()
        assert {"type": "directory", "oid": "0" * 40, "size": 0, "path": "unet"} in top
        assert all("/" not in item["path"] for item in top)
        unet_dir = requests.get(f"{srv.url}/api/models/{REPO}/tree/main/unet", timeout=10).json()
        weights = next(i for i in unet_dir if i["path"] == UNET)
        assert weights["lfs"]["oid"] == hashlib.sha256(studio["files"][UNET]).hexdigest()


def test_misses_answer_as_the_hub_does(studio, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with running_server(studio["hub"]) as srv:
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("acme/nothing", "x.safetensors", endpoint=srv.url, cache_dir=tmp_path / "c1")
        with pytest.raises(EntryNotFoundError):
            hf_hub_download(REPO, "missing.bin", endpoint=srv.url, cache_dir=tmp_path / "c2")
        with pytest.raises(RevisionNotFoundError):
            hf_hub_download(REPO, UNET, revision="v9", endpoint=srv.url, cache_dir=tmp_path / "c3")
        missing = requests.get(f"{srv.url}/api/models/acme/nothing", timeout=10)
        assert missing.status_code == 401 and missing.headers["X-Error-Code"] == "RepoNotFound"


def test_hf_download_and_diffusers_with_hf_endpoint(studio, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`hf download` and `DiffusionPipeline.from_pretrained` read HF_ENDPOINT at import: each runs in its own process."""
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_CACHE": str(tmp_path / "client-cache")}
    env.pop("HF_HUB_OFFLINE", None)
    hf = Path(sys.executable).with_name("hf")
    with running_server(studio["hub"]) as srv:
        env["HF_ENDPOINT"] = srv.url
        out = tmp_path / "downloaded"
        subprocess.run([str(hf), "download", REPO, "--local-dir", str(out)], env=env, check=True, timeout=120,
                       capture_output=True)
        got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
               if p.is_file() and ".cache" not in p.parts}
        assert got == studio["files"]
        code = ("from diffusers import DiffusionPipeline; p = DiffusionPipeline.from_pretrained(%r); "
                "print(type(p).__name__, p.unet.config.block_out_channels)" % REPO)
        run = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=180, capture_output=True,
                             text=True)
    assert run.stdout.split()[0] == "StableDiffusionPipeline" and "16, 32" in run.stdout

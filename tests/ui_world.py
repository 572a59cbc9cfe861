"""A whole sdhub for the web page's tests: fake Civitai, LiblibAI and Hugging Face, a catalogue, the real server.

``ui_world(tmp)`` is a context manager yielding a :class:`World`: the fakes speak their real wire protocols on
127.0.0.1, the hub's settings point at them, and ``sdhub ui``'s app runs under uvicorn on a thread, so the page's
search and installs are real HTTP end to end. Used by tests/test_ui_*.py and docs/make_ui_png.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fake_civitai import CFile, CModel, CVersion, FakeCivitai
from tests.fake_hf import FakeHub, HFApp, HFRepo, HFServer
from tests.fake_liblib import FakeLiblib, LModel, LVersion
from tests.safetensors_files import SDXL_LORA_KOHYA, write_safetensors

SLOW_BYTES_PER_S = 400 * 1024  # the "slow" file takes a few seconds: long enough to watch and to cancel
LIBLIB_MODEL = "3" * 32
LIBLIB_VERSION = "4" * 32


def lora_bytes(tmp: Path, seed: int, pad: int = 0, base: str = "sdxl_base_v1-0") -> bytes:
    """A small real kohya SDXL LoRA; ``pad`` bytes of metadata make it big enough to watch downloading."""
    meta = {"ss_base_model_version": base, "ss_output_name": f"lora{seed}"}
    if pad:
        meta["ss_training_comment"] = "x" * pad
    path = write_safetensors(tmp / f"ui-seed{seed}.safetensors", SDXL_LORA_KOHYA, metadata=meta,
                             fill=bytes([seed % 251 + 1, 5, 9]))
    data = path.read_bytes()
    path.unlink()
    return data


def png_bytes(color: tuple[int, int, int], text: dict[str, str] | None = None, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small PNG (Pillow when installed, else a hand-made one) with optional tEXt chunks."""
    import io

    try:
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo
    except ImportError:  # pragma: no cover - the run extra brings Pillow
        import zlib

        w, h = size
        raw = b"".join(b"\0" + bytes(color) * w for _ in range(h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        chunks = [chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))]
        chunks += [chunk(b"tEXt", k.encode() + b"\0" + v.encode()) for k, v in (text or {}).items()]
        return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    info = PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    img = Image.new("RGB", size, color)
    for x in range(size[0]):  # a diagonal band, so a screenshot shows a picture rather than a flat box
        for y in range(max(0, x * size[1] // size[0] - 8), min(size[1], x * size[1] // size[0] + 8)):
            img.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    out = io.BytesIO()
    img.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


@dataclass
class World:
    root: Path
    civitai: FakeCivitai
    liblib: FakeLiblib
    hf: FakeHub
    hub: Any
    server: Any
    files: dict[str, bytes] = field(default_factory=dict)  # what the fakes serve, by role
    catalogued: dict[str, str] = field(default_factory=dict)  # role -> sha256 of files already in the catalogue

    @property
    def url(self) -> str:
        return self.server.url

    def workflow(self) -> dict[str, Any]:
        """A ComfyUI workflow (UI format) naming one model we have, one a source has, one nobody knows."""
        return {
            "last_node_id": 3, "last_link_id": 0, "version": 0.4, "links": [], "groups": [], "config": {}, "extra": {},
            "nodes": [
                {"id": 1, "type": "CheckpointLoaderSimple", "properties": {}, "widgets_values": ["juggernaut-xl.safetensors"]},
                {"id": 2, "type": "LoraLoader", "properties": {"models": [{
                    "name": "pixel-art-xl.safetensors", "directory": "loras",
                    "url": f"https://civitai.com/api/download/models/2002"}]},
                 "widgets_values": ["pixel-art-xl.safetensors", 0.8, 1]},
                {"id": 3, "type": "LoraLoader", "properties": {}, "widgets_values": ["mystery-style.safetensors", 1, 1]},
            ],
        }


def _catalogue_row(i: int, path: Path, ident: dict[str, Any] | None, *, family: str, kind: str,
                   sha256: str) -> dict[str, Any]:
    st = path.stat()
    return {"id": i, "path": str(path), "name": path.name, "format": "safetensors", "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "device": st.st_dev, "inode": st.st_ino, "sha256": sha256,
            "autov3": sha256[:12], "crc32": sha256[:8], "blake3": hashlib.sha256(sha256.encode()).hexdigest(),
            "family": family, "kind": kind, "variant": (ident or {}).get("variant"),
            "precision": (ident or {}).get("precision"), "identification": ident, "identify_version": 1
            if ident is None else ident.get("version", 1)}


def fill_catalogue(hub: Any, root: Path, *, bulk: int = 0) -> dict[str, str]:
    """A checkpoint (a real SDXL header, sparse), a LoRA with sidecars and a preview, and ``bulk`` plain rows.

    The checkpoint and the bulk rows go in as rows (fingerprinting a sparse 7 GB file would take minutes); the
    LoRA is registered the ordinary way, so its hashes, identification and sidecars are sdhub's own.
    """
    from headers import load_spec, write_sparse

    from hub import identify_path

    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    spec = load_spec("sdxl_base")
    ckpt = write_sparse(models / "juggernaut-xl.safetensors", {k: (d, s) for k, (d, s) in spec["tensors"].items()},
                        spec.get("metadata") or None)
    ident = identify_path(ckpt).to_dict()
    ckpt_sha = hashlib.sha256(b"juggernaut-xl").hexdigest()
    rows = [_catalogue_row(1, ckpt, ident, family=ident["family"], kind=ident["kind"], sha256=ckpt_sha)]
    filler = models / "bulk"
    filler.mkdir(exist_ok=True)
    terms = [("juggernaut", 1), ("xl", 1)]
    for n in range(bulk):
        p = filler / f"bulk-lora-{n:05d}.safetensors"
        p.write_bytes(b"x")
        sha = hashlib.sha256(f"bulk{n}".encode()).hexdigest()
        rows.append(_catalogue_row(n + 2, p, None, family="sd1" if n % 2 else "sdxl", kind="lora", sha256=sha))
        terms.append((f"bulk-lora-{n:05d}", n + 2))
    hub.catalogue.bulk_insert_for_bench(rows, terms)
    # The LoRA: sidecars a UI wrote beside it (trigger words, notes, a preview), then scanned as a user would.
    lora = models / "neon-glow.safetensors"
    lora.write_bytes(lora_bytes(root, seed=31))
    (models / "neon-glow.json").write_text(json.dumps({"activation text": "neonglow, glowing lines",
                                                       "notes": "works best at 0.7"}))
    (models / "neon-glow.preview.png").write_bytes(png_bytes((20, 90, 160)))
    # A second LoRA whose Stability Matrix sidecar says its model is NSFW: its preview starts blurred.
    night = models / "neon-night.safetensors"
    night.write_bytes(lora_bytes(root, seed=32))
    (models / "neon-night.cm-info.json").write_text(json.dumps({"ModelName": "Neon Night", "Nsfw": True,
                                                                "TrainedWords": ["neonnight"]}))
    (models / "neon-night.preview.png").write_bytes(png_bytes((150, 30, 90)))
    report = hub.scan([lora, night])
    ids = {e.path: e.record_id for e in report.entries}
    return {"checkpoint": ckpt_sha, "lora": hub.catalogue.get(ids[str(lora.resolve())]).sha256,
            "nsfw_lora": hub.catalogue.get(ids[str(night.resolve())]).sha256}


@contextlib.contextmanager
def ui_world(root: Path, *, bulk: int = 0, catalogue: bool = True) -> Iterator[World]:
    """Fakes, a hub pointed at them, a filled catalogue and the running ``sdhub ui`` app."""
    from hub.api import Hub
    from hub.config import load_settings
    from hub.server.runner import BackgroundServer
    from hub.server.ui import create_ui_app

    civitai = FakeCivitai().start()
    liblib = FakeLiblib().start()
    app = HFApp()
    hf = FakeHub(app, HFServer(app, "primary").start(), HFServer(app, "mirror").start())
    hub = None
    try:
        files = {"pixel": lora_bytes(root, seed=21), "slow": lora_bytes(root, seed=22, pad=1_200_000),
                 "slow2": lora_bytes(root, seed=26, pad=1_200_000),
                 "early": lora_bytes(root, seed=23), "hf": lora_bytes(root, seed=24), "liblib": lora_bytes(root, seed=25)}
        civitai.add(CModel(1001, "Pixel Art XL", "LORA", tags=["pixel art"], versions=[
            CVersion(2002, "v1.1", "SDXL 1.0", trained_words=["pixel art", "pixelated"],
                     files=[CFile(3003, "pixel-art-xl.safetensors", files["pixel"])])]))
        civitai.add(CModel(1002, "Pixel Slow Motion", "LORA", versions=[
            CVersion(2003, "v2", "SDXL 1.0", files=[CFile(3004, "pixel-slow.safetensors", files["slow"])])]))
        civitai.add(CModel(1005, "Pixel Slow Too", "LORA", versions=[
            CVersion(2006, "v1", "SDXL 1.0", files=[CFile(3007, "pixel-slow-too.safetensors", files["slow2"])])]))
        for file_id in (3004, 3007):
            civitai.served[file_id].throttle_bps = SLOW_BYTES_PER_S
        civitai.add(CModel(1003, "Pixel Early Bird", "LORA", versions=[
            CVersion(2004, "v0.9", "SDXL 1.0", early_access_deadline="2099-01-01T00:00:00.000Z",
                     files=[CFile(3005, "pixel-early.safetensors", files["early"])])]))
        civitai.add(CModel(1004, "Juggernaut XL", "Checkpoint", versions=[
            CVersion(2005, "v9", "SDXL 1.0", files=[CFile(3006, "juggernaut-xl.safetensors", b"not fetched")])]))
        app.add(HFRepo("acme/pixel-lora", {"pixel.safetensors": files["hf"]}, commit="e" * 40))
        liblib.add(LModel(LIBLIB_MODEL, "Pixel 像素", versions=[
            LVersion(LIBLIB_VERSION, "v1", files["liblib"], filename="pixel-liblib.safetensors")]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SDHUB_")}
        env.update({"SDHUB_HOME": str(root / "home"), "SDHUB_CIVITAI_URL": civitai.api.url,
                    "SDHUB_LIBLIB_URL": liblib.site.url, "SDHUB_LIBLIB_OPENAPI_URL": liblib.openapi.url,
                    "SDHUB_HF_ENDPOINTS": ",".join(hf.endpoints)})
        hub = Hub(settings=load_settings(env))
        catalogued = fill_catalogue(hub, root, bulk=bulk) if catalogue else {}
        with BackgroundServer(create_ui_app(hub)) as server:
            yield World(root, civitai, liblib, hf, hub, server, files, catalogued)
    finally:
        if hub is not None:
            hub.close()
        civitai.stop()
        liblib.stop()
        hf.primary.stop()
        hf.mirror.stop()

"""`sdhub link` and sidecar reading at scale.

Usage: python bench/bench_link.py [N_LINK] [N_SCAN]   (defaults 10,000 and 5,000)

1. Links N_LINK catalogued files (real tiny files, registered in bulk) into a fresh ComfyUI layout, then
   re-runs the unchanged link: the re-run should cost about what a re-scan of the same files costs
   (a stat or two per file), never a re-hash. The baseline in the same run: walk + stat the link tree.
2. Scans an N_SCAN-file A1111 tree (models/Lora, each LoRA with a .civitai.info, a .json and a preview),
   then re-scans it unchanged (no sidecar read again), and prints both.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rescan_cache import tiny_lora, walk_and_stat  # noqa: E402


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n_link = int(args[0]) if args else 10000
    n_scan = int(args[1]) if len(args) > 1 else 5000
    workdir = Path(tempfile.mkdtemp(prefix="sdhub-bench-link-"))
    os.environ["SDHUB_HOME"] = str(workdir / "home")
    os.environ.pop("SDHUB_DB_URL", None)
    from hub.api import Hub

    try:
        store = workdir / "store"
        store.mkdir()
        rows = []
        for i in range(n_link):
            p = store / f"lora_{i:05d}.safetensors"
            p.write_bytes(b"x")
            st = p.stat()
            rows.append({"id": i + 1, "path": str(p), "name": p.name, "format": "safetensors", "size": st.st_size,
                         "mtime_ns": st.st_mtime_ns, "device": st.st_dev, "inode": st.st_ino,
                         "sha256": f"{i:064x}", "family": "sdxl" if i % 2 else "sd1", "kind": "lora",
                         "identify_version": 1})
        ui = workdir / "ComfyUI"
        ui.mkdir()
        (ui / "folder_paths.py").write_text("")
        with Hub() as hub:
            hub.catalogue.bulk_insert_for_bench(rows, [(f"lora{i}", i + 1) for i in range(n_link)])
            t0 = time.perf_counter()
            first = hub.link(ui, "comfyui")
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = hub.link(ui, "comfyui")
            t_again = time.perf_counter() - t0
            t0 = time.perf_counter()
            hub.link(ui, "comfyui", check=True)
            t_check = time.perf_counter() - t0
        t0 = time.perf_counter()
        walk_and_stat(ui)
        t_walk = time.perf_counter() - t0
        print(f"link {n_link} files into a fresh ComfyUI layout: {t_first:.2f} s ({n_link / t_first:,.0f} files/s), "
              f"{first.summary()}, modes {first.modes_used()}")
        print(f"re-run unchanged: {t_again:.2f} s ({n_link / t_again:,.0f} files/s), {again.summary()}; "
              f"--check {t_check:.2f} s; baseline walk+stat of the tree {t_walk:.3f} s")

        webui = workdir / "webui"
        lora = webui / "models" / "Lora"
        lora.mkdir(parents=True)
        (webui / "webui.py").write_text("")
        for i in range(n_scan):
            stem = f"a1111_{i:05d}"
            (lora / f"{stem}.safetensors").write_bytes(tiny_lora(100000 + i))
            (lora / f"{stem}.civitai.info").write_text(json.dumps({
                "id": 500000 + i, "modelId": 400000 + i, "name": "v1", "baseModel": "SD 1.5",
                "trainedWords": [f"word{i}"], "model": {"name": f"Model {i}", "type": "LORA"}, "files": []}))
            (lora / f"{stem}.json").write_text(json.dumps({"activation text": f"word{i}", "notes": "bench"}))
            (lora / f"{stem}.preview.png").write_bytes(b"\x89PNG")
        with Hub() as hub:
            t0 = time.perf_counter()
            r1 = hub.scan([webui])
            t_scan = time.perf_counter() - t0
            t0 = time.perf_counter()
            r2 = hub.scan([webui])
            t_rescan = time.perf_counter() - t0
        print(f"scan a {n_scan}-file A1111 tree with 3 sidecars each: {t_scan:.2f} s ({n_scan / t_scan:,.0f} files/s), "
              f"{ {k: v for k, v in r1.summary().items() if v} }")
        print(f"re-scan unchanged: {t_rescan:.2f} s ({n_scan / t_rescan:,.0f} files/s), "
              f"{ {k: v for k, v in r2.summary().items() if v} }")
        print(f"link re-run per file {t_again / n_link * 1e6:.0f} us vs scan re-scan per file "
              f"{t_rescan / n_scan * 1e6:.0f} us")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

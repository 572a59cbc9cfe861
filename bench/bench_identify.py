"""Identification speed: per file vs ``safetensors.torch.load_file``, and files/second over 1,000 files.

All files are header-only sparse safetensors with the true full-size names and shapes
(``tests/data/headers``, see ``tests/make_headers.py``). Three measurements, baselines in the same run:

1. Per fixture: ``identify_path`` (header read + validation + classification), median and best of
   N runs, next to the safetensors library's own header read (``safe_open`` + keys + metadata,
   Rust) for scale.
2. The same files loaded with ``safetensors.torch.load_file`` (what tools that "identify" by
   loading do; InvokeAI's probe does exactly this): time and ratio. Sparse files read from the page
   cache, so this is the *fastest* load can be; real files on disk are slower still.
3. A folder of 1,000 header-only files cycling through every fixture (checkpoints, UNets/DiTs,
   VAEs, text encoders, LoRAs of every format): files/second for ``identify_path`` over the whole
   folder, against ``safe_open`` keys+metadata over the same folder.

    .venv/bin/python bench/bench_identify.py [--files 1000] [--runs 30] [--load-runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.identify import identify_path
from hub.plugins import registered_families
from tests.headers import fixture_names, load_spec, write_fixture

PER_FILE = ["sd15", "sd15_inpaint", "sdxl_base", "sd3_medium", "sd35_large", "flux_dev", "flux_dev_fp8_aio",
            "vae_sdxl", "te_t5xxl", "lora_sd15_kohya", "lora_sdxl_kohya", "lora_sdxl_lokr", "lora_flux_kohya"]
# load_file allocates the whole file in RAM: only the ones that fit comfortably
LOADABLE = ["lora_sd15_kohya", "lora_sdxl_kohya", "lora_flux_kohya", "vae_sdxl", "sd15"]


def timed(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), min(samples)


def lib_header(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        f.keys()
        f.metadata()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--load-runs", type=int, default=2)
    args = parser.parse_args()
    families = registered_families()  # through the plugin manager, as sdhub info does

    with tempfile.TemporaryDirectory(prefix="bench_identify_") as tmp:
        root = Path(tmp)
        print(f"1) identify_path per file (median / best of {args.runs}); safetensors safe_open header read for scale")
        print(f"   {'fixture':22s} {'tensors':>7s} {'file':>9s} {'identify':>9s} {'best':>7s} {'safe_open':>9s}  result")
        per_file: dict[str, float] = {}
        for name in PER_FILE:
            path = write_fixture(root / "single", name)
            identify_path(path, families=families)  # warm the page cache and imports
            med, best = timed(lambda p=path: identify_path(p, families=families), args.runs)
            lib_med, _ = timed(lambda p=path: lib_header(p), max(5, args.runs // 3))
            ident = identify_path(path, families=families)
            per_file[name] = med
            result = f"{ident.family}/{ident.kind}/{ident.variant}"
            print(f"   {name:22s} {len(load_spec(name)['tensors']):7d} {path.stat().st_size / 1e9:7.2f}GB "
                  f"{med * 1e3:7.2f}ms {best * 1e3:5.2f}ms {lib_med * 1e3:7.2f}ms  {result}")
        print(f"   median over these fixtures: {statistics.median(per_file.values()) * 1e3:.2f} ms/file")

        print(f"\n2) vs safetensors.torch.load_file of the same file (median of {args.load_runs}); "
              "backend='pread' reads the bytes, the default 'mmap' maps them lazily (no data read until used)")
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover
            print("   torch not installed: skipped")
            load_file = None
        if load_file is not None:
            for name in LOADABLE:
                path = root / "single" / f"{name}.safetensors"
                load_file(path, backend="pread")  # warm
                lmed, _ = timed(lambda p=path: load_file(p, backend="pread"), args.load_runs)
                mmed, _ = timed(lambda p=path: load_file(p), args.load_runs)
                print(f"   {name:22s} {path.stat().st_size / 1e6:7.0f} MB  load_file(pread) {lmed * 1e3:8.1f} ms "
                      f"= {lmed / per_file[name]:6.0f}x identify ({per_file[name] * 1e3:.2f} ms);  "
                      f"load_file(mmap, lazy) {mmed * 1e3:6.1f} ms = {mmed / per_file[name]:4.0f}x")

        print(f"\n3) a folder of {args.files} header-only files (all {len(fixture_names())} fixtures in turn)")
        folder = root / "folder"
        names = fixture_names()
        t = time.perf_counter()
        paths = [write_fixture(folder, names[i % len(names)], filename=f"{i:04d}_{names[i % len(names)]}.safetensors")
                 for i in range(args.files)]
        print(f"   (wrote the folder in {time.perf_counter() - t:.1f} s; apparent size "
              f"{sum(p.stat().st_size for p in paths) / 1e12:.2f} TB)")
        for p in paths:  # warm the page cache for both contenders
            lib_header(p)
        best_rate = 0.0
        per = []
        for _ in range(3):
            t = time.perf_counter()
            for p in paths:
                identify_path(p, families=families)
            elapsed = time.perf_counter() - t
            per.append(elapsed / len(paths))
            best_rate = max(best_rate, len(paths) / elapsed)
        t = time.perf_counter()
        for p in paths:
            lib_header(p)
        lib_elapsed = time.perf_counter() - t
        print(f"   identify_path: {best_rate:8.0f} files/s  ({min(per) * 1e3:.2f} ms/file, best of 3 passes)")
        print(f"   safe_open keys+metadata only (no validation of offsets by us, no classification): "
              f"{len(paths) / lib_elapsed:8.0f} files/s ({lib_elapsed / len(paths) * 1e3:.2f} ms/file)")
        print(f"   ratio identify / safe_open header read: {min(per) / (lib_elapsed / len(paths)):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Re-scanning unchanged files must cost a stat each, not a read: 10,000 files well under a second.

Usage: python bench/bench_rescan_cache.py [N_FILES] [--profile]   (or SDHUB_BENCH_FILES)

Creates N_FILES (default 10,000) tiny but real safetensors LoRA files (real kohya key names, distinct
bodies) in a temporary folder with its own SDHUB_HOME, scans them once (fingerprint + identify +
register), then re-scans the unchanged folder and prints both times, files/s and the ratio. As the
baseline in the same run it times the least any re-scan must do: walking the folder and one
``stat`` per file. ``--profile`` prints where the re-scan's time goes (cProfile, top 25 by cumulative time).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_SECONDS = 1.0
KEYS = (
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight",
    "lora_unet_down_blocks_0_attentions_0_proj_in.alpha",
)


def tiny_lora(index: int) -> bytes:
    """A valid safetensors file: rank-1 LoRA on one SD1 layer, fp16, the index baked into the body."""
    shapes = {KEYS[0]: [1, 320], KEYS[1]: [320, 1], KEYS[2]: []}
    header: dict[str, object] = {"__metadata__": {"ss_network_dim": "1", "ss_output_name": f"bench{index}"}}
    offset = 0
    for key, shape in shapes.items():
        n = 2
        for dim in shape:
            n *= dim
        header[key] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    body = bytearray(offset)
    body[:4] = struct.pack("<I", index)
    return struct.pack("<Q", len(raw)) + raw + bytes(body)


def walk_and_stat(folder: Path) -> int:
    count = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            os.stat(os.path.join(dirpath, name))
            count += 1
    return count


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    profile = "--profile" in sys.argv
    n_files = int(args[0]) if args else int(os.environ.get("SDHUB_BENCH_FILES", "10000"))
    workdir = Path(tempfile.mkdtemp(prefix="sdhub-bench-rescan-"))
    os.environ["SDHUB_HOME"] = str(workdir / "home")
    os.environ.pop("SDHUB_DB_URL", None)
    from hub.api import Hub

    models = workdir / "models" / "Lora"
    try:
        t0 = time.perf_counter()
        for i in range(n_files):
            sub = models / f"set{i // 1000:02d}"  # 1,000 per folder, as people sort LoRAs
            if i % 1000 == 0:
                sub.mkdir(parents=True, exist_ok=True)
            (sub / f"lora_{i:05d}.safetensors").write_bytes(tiny_lora(i))
        print(f"{n_files} tiny safetensors files written in {time.perf_counter() - t0:.1f} s; "
              f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")

        with Hub() as hub:
            t0 = time.perf_counter()
            first = hub.scan([models])
            first_s = time.perf_counter() - t0
        summary = first.summary()
        print(f"first scan:  {first_s:8.3f} s  {n_files / first_s:10.0f} files/s  {summary}")
        if summary["added"] != n_files:
            print("first scan did not add every file:", [e.to_dict() for e in first.entries[:3]])
            return 1

        baseline_s = min(_timed(lambda: walk_and_stat(models)) for _ in range(3))

        rescans = []
        for _ in range(3):
            with Hub() as hub:  # a new process would open the catalogue afresh too
                t0 = time.perf_counter()
                again = hub.scan([models])
                rescans.append(time.perf_counter() - t0)
            if again.summary()["unchanged"] != n_files:
                print("re-scan did not find every file unchanged:", again.summary())
                return 1
        rescan_s = min(rescans)
        print(f"re-scan:     {rescan_s:8.3f} s  {n_files / rescan_s:10.0f} files/s  (best of 3: "
              f"{', '.join(f'{t:.3f}' for t in rescans)})")
        print(f"walk + stat: {baseline_s:8.3f} s  {n_files / baseline_s:10.0f} files/s  (the floor for any re-scan)")
        print(f"re-scan is {first_s / rescan_s:.0f}x faster than the first scan and {rescan_s / baseline_s:.1f}x "
              f"the walk+stat floor; target < {TARGET_SECONDS:.1f} s: "
              f"{'OK' if rescan_s < TARGET_SECONDS else 'MISSED'}")

        if profile:
            profiler = cProfile.Profile()
            with Hub() as hub:
                profiler.enable()
                hub.scan([models])
                profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return 0 if rescan_s < TARGET_SECONDS else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _timed(func) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory (RSS) of ``sdhub scan`` over 1,000 files and of ``sdhub identify`` on the largest
pickle sdhub accepts and on hostile pickles, against an idle interpreter measured in the same run.

Usage: python bench/bench_memory.py [--files 1000] [--quick]

Every figure is one fresh process (``sdhub …`` through ``python -m``), its peak RSS read from
``wait4``; the baseline is the same interpreter importing sdhub and doing nothing, so ``+MB`` is what
the work itself cost. The goal: memory that does not grow with a hostile file's *claimed* sizes
(a deflate bomb claiming 100 bytes and inflating to 1 GiB, a legacy pickle claiming a 16 GiB
string, a dict-per-byte pickle as large as the cap), and a 1,000-file scan that costs about what a
1-file scan does. ``--quick`` skips the largest-accepted pickle (about 15 s to build and read).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

import hostile_files as H  # noqa: E402
from bench_rescan_cache import tiny_lora  # noqa: E402
from hub import limits  # noqa: E402

SDHUB = [sys.executable, "-c", "import sys; from hub.cli import main; sys.argv[0] = 'sdhub'; main()"]


def peak(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(peak RSS MiB, seconds, exit code, last stderr line) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return rss, time.perf_counter() - start, proc.returncode, lines[-1] if lines else ""


def largest_accepted(path: Path) -> Path:
    """A checkpoint whose data.pkl is just under MAX_PICKLE_BYTES, every byte a real tensor entry:
    written by torch.save (one storage each) where torch is installed, else opcode by opcode."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        n = int(limits.MAX_PICKLE_BYTES * 0.97) // 146  # bytes per tensor entry in torch's data.pkl
        sd = {f"model.diffusion_model.block_{i:06d}.conv.weight": torch.zeros(()).expand(320, 320, 3, 3)
              for i in range(n)}
        torch.save({"state_dict": sd}, path)
        return path
    per_tensor = len(H.pickle_bytes(H.state_dict({"model.diffusion_model.block_100000.conv.weight": (320, 320, 3, 3)})))
    n = int(limits.MAX_PICKLE_BYTES * 0.97) // per_tensor
    H.tensor_zip(path, {f"model.diffusion_model.block_{i:06d}.conv.weight": (320, 320, 3, 3) for i in range(n)})
    return path


def build(work: Path, n_files: int, quick: bool) -> None:
    """Write every file the measurements read (run in a process of its own, see main)."""
    one = work / "one"
    one.mkdir()
    (one / "lora.safetensors").write_bytes(tiny_lora(0))
    many = work / "many"
    for i in range(n_files):
        sub = many / f"d{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 100 == 99:
            H.billion_laughs_zip(sub / f"laughs{i}.ckpt")
        elif i % 5 == 4:
            H.tensor_zip(sub / f"ckpt{i}.ckpt", {f"model.layer{i}.weight": (320, 320), "model.bias": (320,)})
        else:
            (sub / f"lora{i}.safetensors").write_bytes(tiny_lora(i))
    pk = work / "pk"
    pk.mkdir()
    H.tensor_zip(pk / "sdxl_like.ckpt", {f"model.diffusion_model.t{i}.weight": (320, 320, 3, 3) for i in range(2514)})
    if not quick:
        with zipfile.ZipFile(largest_accepted(pk / "largest.ckpt")) as z:
            info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
            assert info.file_size <= limits.MAX_PICKLE_BYTES, info.file_size
            (pk / "largest.size").write_text(f"{info.file_size} {len(z.infolist())}")  # main() must not open the zip: it would grow by 100 MB
    H.billion_laughs_zip(pk / "laughs.ckpt")
    H.tuple_hash_zip(pk / "hash.ckpt")
    H.args_copy_zip(pk / "copies.ckpt")
    for inflated in BOMBS:
        H.deflate_bomb_zip(pk / f"bomb{inflated}.ckpt", inflated=inflated, claimed=100)
    H.deflate_bomb_zip(pk / "bomb_honest.ckpt", inflated=1 << 30, claimed=None)
    for claimed in LEGACY_CLAIMS:
        H.huge_bytes_legacy(pk / f"huge{claimed}.pt", claimed)
    for count in DICT_PICKLES:
        H.many_dicts_pickle(pk / f"dicts{count}.pt", count)


BOMBS = (64 << 20, 256 << 20, 1 << 30)
LEGACY_CLAIMS = (1 << 30, 16 << 30)
DICT_PICKLES = (8 << 20, 60 << 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(Path(args.build), args.files, args.quick)
        return 0
    work = Path(tempfile.mkdtemp(prefix="sdhub-bench-memory-"))
    # Linux credits a child with the peak of the process it was forked from, so this one stays
    # small: the files are written by a process of their own.
    subprocess.run([sys.executable, __file__, "--build", str(work), "--files", str(args.files),
                    *(["--quick"] if args.quick else [])], check=True)
    env = {**os.environ, "SDHUB_HOME": str(work / "home"), "PYTHONPATH": str(ROOT)}
    env.pop("SDHUB_DB_URL", None)

    idle, _, _, _ = peak([sys.executable, "-c", "import hub.cli, hub.files.pickle_scan, hub.identify"], env)
    print(f"baseline: an idle interpreter importing sdhub peaks at {idle:.1f} MiB\n")

    def row(label: str, cmd: list[str], note: str = "") -> float:
        rss, secs, rc, last = peak(cmd, env)
        outcome = "ok" if rc == 0 else (last.split(": ", 2)[-1][:70] if last else f"exit {rc}")
        print(f"  {label:<52} {rss:7.1f} MiB  {rss / idle:5.2f}x  +{rss - idle:6.1f} MiB  {secs:6.2f} s  "
              f"{note}{outcome}")
        return rss

    print("sdhub scan (fresh catalogue each)                        peak         vs idle    work        time")
    row("1 file", [*SDHUB, "scan", "--json", "-q", str(work / "one")])
    env["SDHUB_HOME"] = str(work / "home-many")
    hostile = args.files // 100
    row(f"{args.files} files ({hostile} billion-laughs among them)",
        [*SDHUB, "scan", "--json", "-q", str(work / "many")], "(errors expected) ")
    row(f"{args.files} files again (unchanged)", [*SDHUB, "scan", "--json", "-q", str(work / "many")],
        "(errors expected) ")

    pk = work / "pk"
    print("\nsdhub identify")
    row("a 2,514-tensor checkpoint (SDXL's count)", [*SDHUB, "identify", str(pk / "sdxl_like.ckpt")])
    if not args.quick:
        size, entries = map(int, (pk / "largest.size").read_text().split())
        row(f"largest accepted: {size / 2**20:.1f} MiB data.pkl, {entries:,} entries",
            [*SDHUB, "identify", str(pk / "largest.ckpt")])
    cases = [("billion laughs (1.7 KB)", "laughs.ckpt"), ("tuple hashed in 2**64 steps", "hash.ckpt"),
             ("10**10 argument copies", "copies.ckpt")]
    cases += [(f"deflate bomb: claims 100 B, inflates {n >> 20} MiB", f"bomb{n}.ckpt") for n in BOMBS]
    cases += [("deflate bomb: claims (truly) 1 GiB", "bomb_honest.ckpt")]
    cases += [(f"legacy pickle claiming a {n >> 30} GiB string (sparse)", f"huge{n}.pt") for n in LEGACY_CLAIMS]
    cases += [(f"a dict per byte, {n >> 20} MiB of pickle", f"dicts{n}.pt") for n in DICT_PICKLES]
    results = {label: row(label, [*SDHUB, "identify", str(pk / name)]) for label, name in cases}
    claimed = [v for k, v in results.items() if k.startswith(("deflate", "legacy"))]
    print(f"\nclaimed sizes from 64 MiB to 16 GiB: peak RSS {min(claimed):.1f}-{max(claimed):.1f} MiB "
          f"({max(claimed) / idle:.2f}x idle at most); caps: {limits.human_bytes(limits.MAX_PICKLE_BYTES)} of pickle, "
          f"{limits.human_bytes(limits.IDENTIFY_MEMORY_BYTES)} of memory growth, {limits.IDENTIFY_SECONDS:g} s per file")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

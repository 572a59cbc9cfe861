"""Start-up cost: `import hub` and `sdhub --help` vs a bare interpreter, and proof that no torch is loaded.

    python bench/bench_import.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "import hub": [sys.executable, "-c", "import hub"],
    "import hub, hub.api, hub.cli": [sys.executable, "-c", "import hub, hub.api, hub.cli"],
    "sdhub --help": [sys.executable, "-c", "import sys; sys.argv=['sdhub','--help']; from hub.cli import main; main()"],
}
HEAVY = ("torch", "diffusers", "transformers", "huggingface_hub", "requests", "sqlalchemy")


def median_time(cmd: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    base = median_time(CASES["python -c pass (baseline)"])
    for label, cmd in CASES.items():
        t = median_time(cmd)
        print(f"{label:<32} {t * 1000:7.1f} ms  ({t / base:4.1f}x baseline, +{(t - base) * 1000:.0f} ms)")
    probe = f"import sys, hub; print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    print(f"heavy modules loaded by `import hub`: {loaded}")


if __name__ == "__main__":
    main()

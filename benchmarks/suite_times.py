"""How long the test suite takes, tier by tier, on this machine (the numbers the README states).

Runs pytest once per slice, each in a fresh process, and prints the wall time pytest reports (its last
line) and the process's own wall time. Never a timed test: run it by hand on a quiet machine.

    .venv/bin/python benchmarks/suite_times.py [--workers N] [--slices fast,unit,rehearsal,...]

Slices: ``fast`` (what ``make test-fast`` runs), ``unit``, ``rehearsal`` (quick rehearsal tier),
``slow-rehearsal`` (the rehearsal tier's slow modules), ``notebooks``, ``faults``, ``all`` (what
``make test`` runs after lint and types).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLICES = {
    "fast": ["-m", "(unit or rehearsal) and not slow"],
    "unit": ["-m", "unit"],
    "rehearsal": ["-m", "rehearsal and not slow"],
    "slow-rehearsal": ["-m", "rehearsal and slow"],
    "notebooks": ["-m", "notebooks"],
    "faults": ["-m", "faults"],
    "all": [],
}


def measure(name: str, workers: int) -> tuple[float, str]:
    xdist = ["-n", str(workers), "--dist", "loadgroup"] if workers else []
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *xdist, *SLICES[name]],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    last = next((line for line in reversed(done.stdout.splitlines()) if re.search(r" in [\d.]+s", line)), "")
    return wall, last.strip("= ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="xdist workers (0: one process)")
    parser.add_argument("--slices", default="fast,unit,rehearsal,notebooks,faults", help="comma-separated")
    args = parser.parse_args()
    print(f"workers: {args.workers}")
    for name in args.slices.split(","):
        wall, last = measure(name.strip(), args.workers)
        print(f"{name:<15} {wall:7.1f} s   {last}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

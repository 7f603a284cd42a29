"""How long a service process takes to import its application, against a bare interpreter in the
same run: what a restarted process pays before it can answer (kill -9 of the api in
``make chaos``).

Run: ``uv run python bench/startup.py`` (``--rounds 10``). Each round starts, in turn, a fresh
interpreter for each case (interleaved, so the machine's load weighs on every case alike) and
times it to exit; the table gives the median and the ratio to FastAPI alone (the floor of any
service here; a bare interpreter is too quick to be a useful baseline).

Cases: the bare interpreter; FastAPI alone; the api as shipped (``services.api.main``, the
signing libraries left for a thread once it serves); the api with the signing libraries imported
too (what it paid at start before they were made lazy); the ledger (``services.ledger.main``,
which needs web3 at start).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine

ROOT = Path(__file__).resolve().parent.parent
CASES: list[tuple[str, str]] = [
    ("bare interpreter", "pass"),
    ("FastAPI alone", "import fastapi"),
    ("api as shipped", "import services.api.main"),
    (
        "api + signing libraries (before)",
        "import services.api.main; from services.api.receivables import signatures; "
        "signatures._eth()",
    ),
    ("ledger", "import services.ledger.main"),
]


def once(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    for _, code in CASES:  # warm the page cache once
        once(code)
    for _ in range(args.rounds):
        for name, code in CASES:
            times[name].append(once(code))
    floor = statistics.median(times[CASES[1][0]])
    print(machine())
    print(f"{args.rounds} rounds, interleaved\n")
    print("| process | median s | min s | median / FastAPI alone |")
    print("|---|---:|---:|---:|")
    for name, _ in CASES:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.2f} | {min(times[name]):.2f} | {median / floor:.1f}× |")


if __name__ == "__main__":
    main()

"""The figures of the fault suite: one row per run (a fault on its own, or several together),
collected in a JSON-lines file and written as the table of ``docs/reliability.md``.

``QILIAN_CHAOS_REPORT`` names the JSON-lines file the tests append to (``make chaos`` sets it);
``python -m tests.chaos.report RESULTS DOC`` replaces the table between the markers of ``DOC``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

BEGIN = "<!-- chaos-table:begin -->"
END = "<!-- chaos-table:end -->"


@dataclass
class Row:
    fault: str
    profile: str
    injected: int
    operations: int
    ok: int
    fail: int
    unknown: int
    lost: int
    duplicated: int
    double_financed: int
    violations: int
    recover_seconds: float | None  # worst heal → first ok
    drain_seconds: float  # workload end → outbox delivered and every event anchored
    financings: int


def record(row: Row) -> None:
    target = os.environ.get("QILIAN_CHAOS_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps(asdict(row)) + "\n")


def table(rows: list[Row]) -> str:
    head = (
        "| fault | profile | injected | operations (ok / fail / unknown) | lost | duplicated "
        "| double-financed | other violations | time to recover (s, worst) "
        "| outbox + anchoring drained (s) | financings |\n"
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        recover = "—" if r.recover_seconds is None else f"{r.recover_seconds:.1f}"
        other = r.violations - r.lost - r.duplicated - r.double_financed
        lines.append(
            f"| {r.fault} | {r.profile} | {r.injected} | {r.operations} ({r.ok} / {r.fail} / "
            f"{r.unknown}) | {r.lost} | {r.duplicated} | {r.double_financed} | {other} "
            f"| {recover} | {r.drain_seconds:.1f} | {r.financings} |"
        )
    return head + "\n".join(lines) + "\n"


def write(results: Path, doc: Path) -> None:
    rows = [Row(**json.loads(line)) for line in results.read_text().splitlines() if line.strip()]
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + table(rows) + text[end:])


if __name__ == "__main__":
    write(Path(sys.argv[1]), Path(sys.argv[2]))

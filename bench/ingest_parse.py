"""Parse-only rate of invoice intake, against baselines measured in the same run.

Run: ``uv run python bench/ingest_parse.py`` (``--count 10000``, ``--repeat 5``, ``--no-hostile``).
Prints the Markdown section recorded in docs/benchmarks.md.

Generates ``--count`` distinct UBL 2.1 invoices in memory (numbers, dates, names, amounts vary;
about 2.4 kB each) and times, over the same bytes, in turns within each repeat:

- ``lxml parse``: ``etree.fromstring`` with the hardened parser options only — the floor any XML
  reader pays;
- ``hardened parse_xml``: the above plus the size cap, BOM/encoding and DOCTYPE prolog scan, and
  the XInclude and attribute-size checks;
- ``parse() (full)``: detection, hardened parse, field extraction by XPath, currency checks,
  ``Decimal`` amounts, tax-id checksums and warnings — what ``POST /v1/invoices/parse`` costs before
  HTTP;
- ``parse() corpus mix``: every valid file of the conformance corpus (UBL, CII, ZUGFeRD 1.0,
  Factur-X PDF, 数电票, OFD), when the corpus is present.

Each figure is the median of ``--repeat`` runs; single-threaded, one process. Then each hostile
file of the corpus is refused in a forked child (``tests/unit/invoices/refusal_probe.py``) and its
time and peak RSS growth reported. Peak memory of the whole run is the process's ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from services.api.invoices.parsing import parse
from services.api.invoices.parsing.xml import parse_xml
from tests.unit.invoices.manifest import CORPUS, REPO_ROOT, corpus_available, load_rows
from tests.unit.invoices.samples import ubl_invoice


def generate(count: int, seed: int = 16931) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        net = rng.randrange(100, 10_000_000)  # minor units
        tax = net * 19 // 100
        total = net + tax
        prepaid = rng.choice([0, 0, 0, net // 10])
        month = rng.randrange(1, 13)
        out.append(
            ubl_invoice(
                number=f"BENCH-{i:06d}",
                issue=f"2026-{month:02d}-{rng.randrange(1, 29):02d}",
                due=f"2027-{month:02d}-{rng.randrange(1, 29):02d}",
                seller=f"Supplier {rng.randrange(1000)} GmbH",
                buyer=f"Core Firm {rng.randrange(50)} AG",
                net=f"{net // 100}.{net % 100:02d}",
                tax=f"{tax // 100}.{tax % 100:02d}",
                total=f"{total // 100}.{total % 100:02d}",
                prepaid=f"{prepaid // 100}.{prepaid % 100:02d}",
                payable=f"{(total - prepaid) // 100}.{(total - prepaid) % 100:02d}",
            )
        )
    return out


_LXML = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False
)


def lxml_only(data: bytes) -> object:
    return etree.fromstring(data, parser=_LXML)


def timed(fn: Callable[[bytes], object], documents: list[bytes]) -> float:
    started = time.perf_counter()
    for data in documents:
        fn(data)
    return time.perf_counter() - started


def corpus_documents() -> list[bytes]:
    if not corpus_available():
        return []
    return [r.path.read_bytes() for r in load_rows() if r.expect == "parse"]


def hostile(paths: list[Path]) -> list[dict[str, object]]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.unit.invoices.refusal_probe", *map(str, paths)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-hostile", action="store_true")
    args = ap.parse_args()

    documents = generate(args.count)
    mean_bytes = sum(map(len, documents)) / len(documents)
    mix = corpus_documents()
    for data in documents[:50] + mix:  # warm-up: XPath compilation, imports
        parse(data)

    cases: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
        ("lxml parse (hardened options, no checks)", lxml_only, documents),
        ("hardened `parse_xml`", parse_xml, documents),
        ("`parse()` full", parse, documents),
    ]
    if mix:
        cases.append((f"`parse()` corpus mix ({len(mix)} files)", parse, mix))
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(args.repeat):
        for name, fn, docs in cases:
            times[name].append(timed(fn, docs))

    base = statistics.median(times[cases[0][0]]) / len(documents)
    print(
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs available, "
        f"Python {platform.python_version()}, lxml {'.'.join(map(str, etree.LXML_VERSION))} "
        f"(libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}); {args.count} generated UBL "
        f"invoices of {mean_bytes:.0f} bytes on average; median of {args.repeat} runs, one thread."
    )
    print()
    print("| what | documents | median time | invoices / s | µs / invoice | × lxml parse |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, docs in cases:
        median = statistics.median(times[name])
        per = median / len(docs)
        print(
            f"| {name} | {len(docs):,} | {median:.3f} s | {len(docs) / median:,.0f} "
            f"| {per * 1e6:,.1f} | {per / base:.1f} |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(
        f"Peak RSS of the benchmark process ({args.count:,} documents in memory): {peak:.0f} MiB."
    )

    if args.no_hostile or not corpus_available():
        return
    paths = sorted(
        p
        for p in (CORPUS / "malicious").rglob("*")
        if p.is_file() and not p.name.startswith(("LICENSE", "README"))
    )
    results = hostile(paths)
    refused = [r for r in results if r["outcome"] == "refused"]
    slowest = sorted(results, key=lambda r: -float(str(r["seconds"])))[:5]
    biggest = sorted(results, key=lambda r: -int(str(r["rss_growth_kib"])))[:5]
    print()
    print(
        f"Hostile files: {len(refused)} of {len(results)} refused, each in a forked child. "
        f"Slowest refusal {float(str(slowest[0]['seconds'])) * 1000:.1f} ms, largest peak RSS "
        f"growth {int(str(biggest[0]['rss_growth_kib'])) / 1024:.1f} MiB (bounds: 2 s, 200 MB)."
    )
    print()
    print("| hostile file (slowest five, then largest five) | reason | time | peak RSS growth |")
    print("|---|---|---:|---:|")
    for r in slowest + [b for b in biggest if b not in slowest]:
        rel = Path(str(r["file"])).relative_to(CORPUS / "malicious")
        print(
            f"| `{rel}` | `{r.get('reason')}` | {float(str(r['seconds'])) * 1000:.1f} ms "
            f"| {int(str(r['rss_growth_kib'])) / 1024:.1f} MiB |"
        )


if __name__ == "__main__":
    main()

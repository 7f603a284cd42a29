"""The conformance result table of docs/invoices.md: every manifest row of the invoice corpus,
parsed and compared by exactly the checks of ``tests/unit/invoices/test_invoice_conformance.py``,
then every hostile file with the reason it was refused.

Run: ``uv run python bench/conformance_table.py`` (prints Markdown; exits 1 if any row fails).
"""

from __future__ import annotations

import sys
from collections import Counter

from services.api.invoices.parsing import InvoiceParseError, parse
from tests.unit.invoices.manifest import CORPUS, corpus_available, load_rows, run


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    if not corpus_available():
        print(f"corpus not found at {CORPUS.name} next to the repository", file=sys.stderr)
        return 2
    rows = load_rows()
    outcomes = [run(row) for row in rows]
    print("| file | expected | result | format | fields compared | note |")
    print("|---|---|---|---|---:|---|")
    counts: Counter[tuple[str, bool]] = Counter()
    for out in outcomes:
        row = out.row
        if out.refusal is not None:
            result = "refused" + (" ✓" if out.ok else " ✗")
            fmt = "—"
            note = f"{out.refusal.status} `{out.refusal.reason}`"
        else:
            assert out.parsed is not None
            result = (
                ("match ✓" if out.ok else "mismatch ✗") if row.expect == "parse" else "parsed ✗"
            )
            fmt = out.parsed.format.value
            note = "; ".join(f"{n}: want {w!r} got {g!r}" for n, w, g in out.mismatches)
            codes = sorted({w.code for w in out.parsed.warnings})
            if codes and not note:
                note = "warnings: " + ", ".join(codes)
        counts[(row.expect, out.ok)] += 1
        checked = str(out.checked) if out.parsed is not None else "—"
        print(
            f"| `{_cell(row.local_file)}` | {row.expect} | {result} | {fmt} | {checked} "
            f"| {_cell(note)} |"
        )
    parse_ok = counts[("parse", True)]
    parse_bad = counts[("parse", False)]
    refuse_ok = counts[("refuse", True)]
    refuse_bad = counts[("refuse", False)]
    compared = sum(o.checked for o in outcomes)
    print()
    print(
        f"**{len(outcomes)} rows**: {parse_ok} of {parse_ok + parse_bad} valid files match every "
        f"expected field ({compared} field comparisons), {refuse_ok} of {refuse_ok + refuse_bad} "
        "files marked `refuse` refused."
    )

    hostile = sorted(
        p
        for p in (CORPUS / "malicious").rglob("*")
        if p.is_file() and not p.name.startswith(("LICENSE", "README"))
    )
    print()
    print("| hostile file | status | reason |")
    print("|---|---:|---|")
    reasons: Counter[str] = Counter()
    accepted = 0
    for path in hostile:
        try:
            parse(path.read_bytes())
        except InvoiceParseError as exc:
            reasons[exc.reason] += 1
            rel = path.relative_to(CORPUS / "malicious")
            print(f"| `{rel}` | {exc.status} | `{exc.reason}` |")
            continue
        accepted += 1
        print(f"| `{path.relative_to(CORPUS / 'malicious')}` | **accepted** ✗ | |")
    print()
    by_reason = ", ".join(f"`{r}` {n}" for r, n in reasons.most_common())
    print(f"**{len(hostile)} hostile files**: {len(hostile) - accepted} refused ({by_reason}).")
    return 0 if not (parse_bad or refuse_bad or accepted) else 1


if __name__ == "__main__":
    sys.exit(main())

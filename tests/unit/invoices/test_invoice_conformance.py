"""Every row of the corpus manifests: valid files parse to exactly the expected values (number,
type, dates, currency, seller and buyer, totals, prepaid, amount due, payee, account), and rows
marked ``refuse`` are refused with a reason."""

from __future__ import annotations

import pytest

from .manifest import corpus_available, load_rows, run

ROWS = load_rows() if corpus_available() else []

pytestmark = pytest.mark.skipif(
    not corpus_available(),
    reason="invoice corpus ../shared/conformance/invoices not present next to the repository",
)


def test_manifests_have_rows() -> None:
    assert len(ROWS) >= 69  # 53 real samples + 11 edge cases + 5 synthetic Chinese


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_corpus_file_matches_manifest(row) -> None:
    outcome = run(row)
    if row.expect == "refuse":
        assert outcome.refusal is not None, "a file the manifest marks 'refuse' was accepted"
        assert 400 <= outcome.refusal.status < 500
        assert outcome.refusal.reason
        return
    assert outcome.refusal is None, f"refused: {outcome.refusal!r}"
    assert outcome.mismatches == [], outcome.mismatches
    assert outcome.checked >= 4

"""Every hostile file of the corpus (``malicious/``) is refused: a 4xx refusal with a reason code,
no trace of ``/etc/passwd`` or ``/etc/hostname`` in what goes back, and a bounded peak memory.

Each file is parsed in a forked child (``refusal_probe``) so its peak resident set is its own.
The memory bound (200 MB, the issue's figure) is asserted; times are reported by
``bench/ingest_parse.py`` in docs/benchmarks.md rather than asserted against the 2 s budget, since
a shared machine makes them noisy (only a 30 s hang detector is asserted).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .manifest import CORPUS, REPO_ROOT

MALICIOUS = CORPUS / "malicious"
FILES = (
    sorted(
        p
        for p in MALICIOUS.rglob("*")
        if p.is_file() and not p.name.startswith(("LICENSE", "README"))
    )
    if MALICIOUS.is_dir()
    else []
)
RSS_BOUND_KIB = 200 * 1024
HANG_BOUND_SECONDS = 30  # catches a hang; the 2 s budget is measured in docs/benchmarks.md

pytestmark = [
    pytest.mark.skipif(not FILES, reason="corpus ../shared/conformance/invoices/malicious absent"),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc"),
]


def _secrets() -> list[str]:
    """Lines of the local files the payloads target, long enough to be unmistakable."""
    found: list[str] = []
    for name in ("/etc/passwd", "/etc/hostname"):
        try:
            text = Path(name).read_text(errors="replace")
        except OSError:
            continue
        found += [line.strip() for line in text.splitlines() if len(line.strip()) >= 8]
    return found


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.unit.invoices.refusal_probe", *map(str, FILES)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    assert not any(s in completed.stderr for s in _secrets())
    return {row["file"]: row for row in rows}


def test_the_corpus_has_its_hostile_files() -> None:
    assert len(FILES) >= 51


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(MALICIOUS)) for p in FILES])
def test_hostile_file_is_refused_without_harm(path: Path, results) -> None:
    result = results[str(path)]
    assert result["outcome"] == "refused", result
    assert 400 <= result["status"] < 500
    problem = result["problem"]
    assert problem["status"] == result["status"]
    assert problem["reason"] == result["reason"]
    assert result["reason"]
    rendered = json.dumps(problem, ensure_ascii=False)
    for secret in _secrets():
        assert secret not in rendered
    assert "root:x:0:0" not in rendered
    assert result["rss_growth_kib"] < RSS_BOUND_KIB, result
    assert result["seconds"] < HANG_BOUND_SECONDS, result


EXPECTED_REASONS = {
    "synthetic/internal_entity_amount_ubl.xml": "doctype_forbidden",
    "synthetic/xxe_file_in_ubl_note.xml": "doctype_forbidden",
    "synthetic/xinclude_etc_passwd_ubl.xml": "xinclude_forbidden",
    "synthetic/deep_nesting_100000_ubl.xml": "xml_limit_exceeded",
    "synthetic/amount_comma_decimal_ubl.xml": "invalid_amount",
    "synthetic/amount_exponent_ubl.xml": "invalid_amount",
    "synthetic/amount_currency_mismatch_ubl.xml": "currency_mismatch",
    "synthetic/duplicate_invoice_id_ubl.xml": "duplicate_element",
    "synthetic/duplicate_legal_monetary_total_ubl.xml": "duplicate_element",
    "synthetic/wrong_namespace_invoice3_ubl.xml": "unknown_root_element",
    "synthetic/ubl_invoice_root_in_cii_namespace.xml": "unknown_root_element",
    "synthetic/utf8_bom_but_declares_latin1_ubl.xml": "encoding_conflict",
    "synthetic/facturx_pdf_two_conflicting_xml_attachments.pdf": "pdf_ambiguous_attachments",
    "synthetic/facturx_pdf_deflate_bomb_200mb_attachment.pdf": "decompressed_too_large",
    "synthetic/facturx_pdf_with_xxe_attachment.pdf": "doctype_forbidden",
    "synthetic/bidi_override_seller_ubl.xml": "forbidden_character",
    "synthetic/huge_attribute_1mib_ubl.xml": "attribute_too_large",
}


@pytest.mark.parametrize(("name", "reason"), sorted(EXPECTED_REASONS.items()))
def test_hostile_file_is_refused_for_the_right_reason(name: str, reason: str, results) -> None:
    result = results[str(MALICIOUS / name)]
    assert result["reason"] == reason, result


def test_the_deflate_bomb_is_a_413_and_the_xml_traps_422(results) -> None:
    bomb = results[str(MALICIOUS / "synthetic/facturx_pdf_deflate_bomb_200mb_attachment.pdf")]
    assert bomb["status"] == 413
    xxe = results[str(MALICIOUS / "synthetic/xxe_file_in_ubl_note.xml")]
    assert xxe["status"] == 422

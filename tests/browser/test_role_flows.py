"""Each role's main flow in a real browser, in Chinese and in English: the supplier uploads
invoices (drag-and-drop script, one request per file with its progress) → the core firm confirms
from its queue (bulk) → the supplier splits and transfers a part → the core firm sees the lineage
→ the auditor verifies the receivable (VERIFIED, event by event and for the prev chain) and a
tampered bundle (FAILED). Against the real stack: the verdict comes from the ledger's
verification on the stack's anvil, after the worker and beat anchored the events."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api.organizations.models import Role
from tests.browser.conftest import CHROMIUM, Account, Shots, account, login, problems_of
from tests.e2e.conftest import Stack
from tests.integration.invoices.intake_helpers import invoice_number, ubl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

WORDS = {
    "zh_CN": {
        "upload": "上传",
        "confirm_selected": "确权所选",
        "split": "拆分",
        "transfer": "转让",
        "verify": "核验",
        "receivable_id": "应收账款 ID",
        "verified": "验证通过",
        "failed": "验证失败",
        "created": "已生成应收账款",
        "duplicate": "已上传过（重复）",
    },
    "en": {
        "upload": "Upload",
        "confirm_selected": "Confirm selected",
        "split": "Split",
        "transfer": "Transfer",
        "verify": "Verify",
        "receivable_id": "Receivable id",
        "verified": "VERIFIED",
        "failed": "FAILED",
        "created": "receivable created",
        "duplicate": "already uploaded (duplicate)",
    },
}


def wait_verified(page: Any, stack: Stack, receivable_id: str, timeout: float = 120) -> None:
    """Reload the auditor's page until every event of the receivable is anchored and checked."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{stack.api_url}/web/audit?receivable_id={receivable_id}")
        events = page.locator("section.event")
        verdicts = [events.nth(i).get_attribute("data-verdict") for i in range(events.count())]
        if verdicts and "PENDING" not in verdicts and page.locator("#not-anchored").count() == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not every event was anchored in {timeout}s: {verdicts}")
        time.sleep(2)


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_supplier_core_firm_and_auditor_main_flow(
    browser: Any, stack: Stack, shots: Shots, pages: list[Any], tmp_path: Path, language: str
) -> None:
    words = WORDS[language]
    supplier, core = account(Role.supplier), account(Role.core_firm)
    receiver, auditor = account(Role.supplier), account(Role.auditor)

    # --- the supplier uploads two invoices and one of them again
    first = tmp_path / "invoice-1.xml"
    first.write_bytes(ubl(supplier.party, core.party, number=invoice_number(), payable="1000.00",
                          currency="CNY", due="2026-06-30"))  # fmt: skip
    second = tmp_path / "invoice-2.xml"
    second.write_bytes(ubl(supplier.party, core.party, number=invoice_number(), payable="250.00",
                           currency="CNY", due="2026-05-31"))  # fmt: skip
    page = login(browser, stack, supplier, language)
    pages.append(page)
    shots(page, "supplier-receivables-empty")
    page.goto(f"{stack.api_url}/web/invoices")
    page.set_input_files("#files", [str(first), str(second)])
    page.get_by_role("button", name=words["upload"], exact=True).click()
    page.wait_for_selector('tr[data-file="invoice-1.xml"][data-outcome="created"]')
    page.wait_for_selector('tr[data-file="invoice-2.xml"][data-outcome="created"]')
    page.set_input_files("#files", [str(first)])
    page.get_by_role("button", name=words["upload"], exact=True).click()
    page.wait_for_selector('tr[data-file="invoice-1.xml"][data-outcome="refused"]')
    assert words["duplicate"] in page.inner_text("#upload-results")
    shots(page, "supplier-upload-outcomes")
    link = page.locator('tr[data-file="invoice-1.xml"][data-outcome="created"] a').first
    root_id = link.inner_text().strip()
    assert root_id.startswith("rcv_")
    page.goto(f"{stack.api_url}/web/receivables")
    row = page.locator(f'tr[data-id="{root_id}"]')
    assert row.locator('[data-axis="confirmation"]').get_attribute("data-state") == "pending"
    row.locator("[data-anchor]").wait_for()  # the badge, loaded by htmx
    shots(page, "supplier-receivables-table")

    # --- the core firm confirms both from its queue (bulk)
    core_page = login(browser, stack, core, language)
    pages.append(core_page)
    assert core_page.url.endswith("/web/confirmations")
    for row_id in re.findall(r"rcv_\w+", core_page.inner_text("#queue")):
        core_page.check(f"#sel-{row_id}")
    shots(core_page, "core-firm-queue")
    core_page.get_by_role("button", name=words["confirm_selected"]).click()
    core_page.wait_for_selector(f'#bulk-results li[data-id="{root_id}"][data-status="200"]')
    assert core_page.locator('#bulk-results li[data-status="200"]').count() == 2
    shots(core_page, "core-firm-bulk-confirmed")

    # --- the supplier splits the confirmed receivable and transfers a part
    page.goto(f"{stack.api_url}/web/receivables/{root_id}")
    page.fill("#parts", "abc")
    page.locator("#split-form button[type=submit]").click()
    page.wait_for_selector("#parts-error")  # the refusal, next to the field
    assert page.get_attribute("#parts", "aria-invalid") == "true"
    shots(page, "supplier-split-refused")
    page.fill("#parts", "400.00\n600.00")
    page.locator("#split-form button[type=submit]").click()
    page.wait_for_selector('[data-axis="holding"][data-state="split"]')
    shots(page, "supplier-split-done")
    page.goto(f"{stack.api_url}/web/receivables/{root_id}/lineage")
    parts = [a.inner_text().strip() for a in page.locator("#lineage li li > a").all()]
    assert len(parts) == 2
    page.goto(f"{stack.api_url}/web/receivables/{parts[0]}")
    page.select_option("#to_organization_id", receiver.party.org.id)
    page.locator("#transfer-form button[type=submit]").click()
    page.wait_for_selector('[data-axis="holding"][data-state="transferred"]')
    shots(page, "supplier-transfer-done")

    # --- the core firm sees the tree down to the receiving supplier (tier 2)
    core_page.goto(f"{stack.api_url}/web/receivables/{root_id}/lineage")
    assert core_page.locator("#lineage li").count() == 4  # the root, two parts, the transfer
    assert core_page.locator('#lineage li[data-tier="2"]').count() == 1
    assert receiver.party.name in core_page.inner_text("#lineage")
    shots(core_page, "core-firm-lineage")
    core_page.goto(f"{stack.api_url}/web/payables")
    shots(core_page, "core-firm-payables-calendar")

    # --- the auditor verifies the root receivable: every event and the prev chain
    audit_page = login(browser, stack, auditor, language)
    pages.append(audit_page)
    audit_page.get_by_label(words["receivable_id"]).fill(root_id)
    audit_page.keyboard.press("Enter")
    audit_page.wait_for_url(f"**receivable_id={root_id}*")
    audit_page.wait_for_load_state()
    wait_verified(audit_page, stack, root_id)
    verdict = audit_page.locator("#verdict [data-verdict]").first
    assert verdict.get_attribute("data-verdict") == "VERIFIED"
    assert words["verified"] in verdict.inner_text()
    events = audit_page.locator("section.event")
    assert events.count() >= 3  # created, confirmed, split
    for i in range(events.count()):
        assert events.nth(i).get_attribute("data-verdict") == "VERIFIED"
    history = audit_page.locator(f"#history-{root_id} [data-verdict]")
    assert history.get_attribute("data-verdict") == "VERIFIED"
    commands = audit_page.locator("section.event pre.commands").first.inner_text()
    assert "cast call" in commands
    assert "verifyEntry(uint64,bytes32,bytes32,bytes32[])" in commands
    shots(audit_page, "auditor-verified")

    # --- a bundle with one altered amount is FAILED
    proofs = httpx.get(f"{stack.ledger_url}/v1/proofs/receivables/{root_id}", timeout=10).json()
    bundle = proofs["events"][0]["bundle"]
    bundle["record"]["data"]["face_value"]["amount"] = "1000000.00"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(bundle))
    audit_page.set_input_files("#bundle", str(tampered))
    audit_page.locator("#audit-bundle button[type=submit]").click()
    audit_page.wait_for_selector("#verdict [data-verdict]")
    assert audit_page.locator("#verdict [data-verdict]").first.get_attribute("data-verdict") == (
        "FAILED"
    )
    assert words["failed"] in audit_page.inner_text("#verdict")
    shots(audit_page, "auditor-tampered-bundle-failed")
    assert not problems_of(page, core_page, audit_page)
    for context in {p.context for p in (page, core_page, audit_page)}:
        context.close()


def test_demo_people_of_qilian_seed_log_in(
    browser: Any, stack: Stack, shots: Shots, tmp_path: Path
) -> None:
    """``qilian seed`` writes each demo person's password; the login page accepts them."""
    import subprocess

    from tests.e2e.conftest import BIN

    credentials = tmp_path / "demo-credentials.json"
    subprocess.run(
        [str(BIN / "qilian"), "seed", "--credentials", str(credentials)],
        env=stack.processes["api"].env,
        check=True,
        capture_output=True,
    )
    organizations = json.loads(credentials.read_text())["organizations"]
    for role, start in [
        ("supplier", "/web/receivables"),
        ("auditor", "/web/audit"),
        ("guarantor", "/web/guarantor"),
    ]:
        entry = next(o for o in organizations if o["role"] == role)
        who = Account(party=None, username=entry["username"], password=entry["password"])  # type: ignore[arg-type]
        page = login(browser, stack, who, "zh_CN")
        assert page.url.endswith(start)
        assert entry["name"] in page.inner_text("header")
        shots(page, f"demo-{role}")
        page.context.close()


def test_supplier_drops_files_and_follows_a_bulk_import(
    browser: Any, stack: Stack, shots: Shots, pages: list[Any], tmp_path: Path
) -> None:
    """Files dropped on the page are uploaded one request each; a ZIP is a bulk import whose
    progress the page polls (htmx) until the stack's worker has processed every row."""
    import io
    import zipfile

    supplier, core = account(Role.supplier), account(Role.core_firm)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(5):
            z.writestr(f"bulk-{i}.xml", ubl(supplier.party, core.party, number=invoice_number()))
        z.writestr("broken.xml", b"<not an invoice")
    single = ubl(supplier.party, core.party, number=invoice_number())
    page = login(browser, stack, supplier, "en")
    pages.append(page)
    page.goto(f"{stack.api_url}/web/invoices")
    page.evaluate(
        """([zip, xml]) => {
            const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const files = new DataTransfer();
            files.items.add(new File([bytes(zip)], "batch.zip", {type: "application/zip"}));
            files.items.add(new File([bytes(xml)], "single.xml", {type: "application/xml"}));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true}));
        }""",
        [_b64(archive.getvalue()), _b64(single)],
    )
    page.wait_for_selector('tr[data-file="single.xml"][data-outcome="created"]')
    page.wait_for_selector('tr[data-file="batch.zip"][data-outcome="import"]')
    shots(page, "dropped-files")
    page.wait_for_selector(".import[data-status='done']", timeout=90_000)
    progress = page.inner_text(".import[data-status='done']")
    assert "6 / 6" in progress
    assert "created 5" in progress
    assert "refused 1" in progress
    shots(page, "bulk-import-done")
    assert not problems_of(page)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()

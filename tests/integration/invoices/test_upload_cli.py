"""``qilian upload``: files and folders through the real API (over ASGI), outcomes per file, the
summary, and exit status 1 when anything was refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from qilian.cli import upload as upload_cli
from qilian.cli.main import app as cli
from services.api.organizations.models import Role
from tests.integration.invoices.intake_helpers import (
    cii_invoice,
    invoice_number,
    new_party,
    ubl,
)


async def test_upload_files_and_folders(app, tmp_path: Path):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    number = invoice_number()
    folder = tmp_path / "invoices"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.xml").write_bytes(ubl(supplier, core, number=number))
    (folder / "sub" / "b.xml").write_bytes(ubl(supplier, core, number=invoice_number()))
    (folder / ".hidden.xml").write_bytes(b"ignored")
    same_as_a = tmp_path / "a-as-cii.xml"
    same_as_a.write_bytes(
        cii_invoice(
            supplier.tax_id,
            core.tax_id,
            number=number,
            issue="2026-01-15",
            due="2026-03-15",
            payable="119.00",
        )
    )
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00not an invoice")
    files = upload_cli.collect([folder, same_as_a, junk])
    assert [f.name for f in files] == ["a.xml", "b.xml", "a-as-cii.xml", "junk.bin"]

    outcomes = await upload_cli.upload_all(
        "https://test",
        files,
        supplier.org.client_id,
        supplier.org.client_secret,
        concurrency=1,
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
    )
    assert [o.outcome for o in outcomes] == ["created", "created", "duplicate", "refused"]
    assert outcomes[2].receivable_id == outcomes[0].receivable_id
    assert outcomes[3].status == 415
    totals, details = upload_cli.summary(outcomes)
    assert details is not None
    assert totals.row_count == 1

    # running it again creates nothing new (idempotency keys and the fingerprint)
    again = await upload_cli.upload_all(
        "https://test",
        files[:2],
        supplier.org.client_id,
        supplier.org.client_secret,
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
    )
    assert [o.receivable_id for o in again] == [o.receivable_id for o in outcomes[:2]], again


def test_exit_status_is_one_when_anything_was_refused(tmp_path: Path, monkeypatch: Any):
    paper = tmp_path / "x.xml"
    paper.write_bytes(b"<x/>")

    def fake(outcome: str) -> Any:
        async def upload_all(api: str, files: list[Path], *args: Any, **kwargs: Any) -> Any:
            return [upload_cli.Outcome(f, outcome, 0, reason="r") for f in files]

        return upload_all

    runner = CliRunner()
    args = ["upload", str(paper), "--api", "http://127.0.0.1:9", "--client-id", "c"]
    env = {"QILIAN_CLIENT_SECRET": "s"}
    monkeypatch.setattr(upload_cli, "upload_all", fake("refused"))
    refused = runner.invoke(cli, args, env=env)
    assert refused.exit_code == 1, refused.output
    assert "Refused" in refused.output
    monkeypatch.setattr(upload_cli, "upload_all", fake("duplicate"))
    fine = runner.invoke(cli, args, env=env)
    assert fine.exit_code == 0, fine.output
    missing = runner.invoke(cli, ["upload", str(paper), "--api", "http://x"], env={})
    assert missing.exit_code == 2

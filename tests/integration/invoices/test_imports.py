"""Bulk imports: a ZIP of files, a CSV and an NDJSON with good and bad rows; every row gets its
outcome, bad rows never block the good ones, and the same import submitted again is one job."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

from sqlalchemy import select

from qilian.kit import db
from qilian.kit.outbox import OutboxEvent
from qilian.kit.settings import get_settings
from services.api.invoices import imports
from services.api.invoices.settings import IntakeSettings
from services.api.organizations.models import Role
from services.ledger.anchoring.service import validate_payload
from tests.integration.invoices.intake_helpers import (
    invoice_number,
    json_invoice,
    new_party,
    token,
    ubl,
)

CONFIG = IntakeSettings(import_chunk_size=3)


async def run(app: Any, dispatched: list[str]) -> list[str]:
    done = []
    while dispatched:
        import_id = dispatched.pop(0)
        done.append(
            await imports.process(import_id, get_settings(), CONFIG, store=app.state.blob_store)
        )
    return done


async def submit(http: Any, headers: dict[str, str], data: bytes, name: str) -> Any:
    response = await http.post("/v1/invoice-imports", files={"file": (name, data)}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


async def status(http: Any, headers: dict[str, str], import_id: str, **params: Any) -> Any:
    response = await http.get(f"/v1/invoice-imports/{import_id}", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def csv_of(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    columns = sorted({k for r in rows for k in r})
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def flat(body: dict[str, Any]) -> dict[str, str]:
    row = {k: v for k, v in body.items() if k not in ("seller", "buyer")}
    for party in ("seller", "buyer"):
        for key, value in body[party].items():
            row[f"{party}_{key}"] = value
    return row


async def test_csv_import_with_good_and_bad_rows(http, app, dispatched):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    headers = await token(http, supplier)
    good = [json_invoice(supplier, core) for _ in range(5)]
    bad_amount = {**json_invoice(supplier, core), "payable_amount": "12,50"}
    not_mine = json_invoice(await new_party(Role.supplier), core)
    rows = [flat(good[0]), flat(bad_amount), flat(good[1]), flat(not_mine)]
    rows += [flat(g) for g in good[2:]] + [flat(good[0])]  # the last repeats the first
    job = await submit(http, headers, csv_of(rows), "invoices.csv")
    assert job["status"] == "queued"
    assert job["total"] == 8
    assert job["kind"] == "csv"
    assert dispatched == [job["id"]]
    assert await run(app, dispatched) == ["done"]

    result = await status(http, headers, job["id"])
    assert result["status"] == "done"
    assert (result["done"], result["total"]) == (8, 8)
    assert result["counts"] == {"created": 5, "diluted": 0, "duplicate": 1, "refused": 2}
    outcomes = {r["row"]: (r["outcome"], r["reason"]) for r in result["rows"]}
    assert outcomes[2] == ("refused", "invalid_amount")
    assert outcomes[4] == ("refused", "uploader_not_seller")
    assert outcomes[8][0] == "duplicate"
    created = [r for r in result["rows"] if r["outcome"] == "created"]
    assert all(r["receivable_id"].startswith("rcv_") for r in created)

    listed = await http.get("/v1/receivables", params={"limit": 200}, headers=headers)
    assert len(listed.json()["items"]) == 5

    # the same file again: the same job, nothing imported twice
    again = await submit(http, headers, csv_of(rows), "copy.csv")
    assert again["id"] == job["id"]
    assert again["status"] == "done"
    assert dispatched == []
    # running the task again is harmless
    assert await imports.process(job["id"], get_settings(), CONFIG) == "done"


async def test_zip_import_of_files_and_rows_paged(http, app, dispatched):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    headers = await token(http, supplier)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(4):
            archive.writestr(f"good/{n}.xml", ubl(supplier, core, number=invoice_number()))
        archive.writestr(
            "evil.xml", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
        )
        archive.writestr("notes.txt", b"hello")
        archive.writestr("bomb.xml", b"<" + b" " * (8 * 1024 * 1024))
        archive.writestr(
            "late.xml",
            ubl(supplier, core, number=invoice_number(), issue="2026-01-01", due="2026-12-31"),
        )
    job = await submit(http, headers, buffer.getvalue(), "batch.zip")
    assert job["kind"] == "zip"
    assert job["total"] == 8
    await run(app, dispatched)
    first = await status(http, headers, job["id"], limit=4)
    assert first["counts"] == {"created": 4, "diluted": 0, "duplicate": 0, "refused": 4}
    assert len(first["rows"]) == 4
    rest = await status(http, headers, job["id"], cursor=first["next_rows_cursor"])
    reasons = {r["name"]: r["reason"] for r in first["rows"] + rest["rows"]}
    assert reasons["evil.xml"] == "doctype_forbidden"
    assert reasons["late.xml"] == "term_too_long"
    assert reasons["bomb.xml"] == "zip_compression_ratio"
    assert "root:" not in json.dumps(rest)
    # another supplier cannot see the job
    other = await token(http, await new_party(Role.supplier))
    assert (await http.get(f"/v1/invoice-imports/{job['id']}", headers=other)).status_code == 404


async def test_ndjson_import_and_a_corrupt_file(http, app, dispatched):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    headers = await token(http, supplier)
    lines = [json.dumps(json_invoice(supplier, core)) for _ in range(3)]
    lines.insert(1, "{not json")
    lines.insert(3, lines[2])  # the same invoice twice within one chunk
    job = await submit(http, headers, ("\n".join(lines) + "\n").encode(), "x.ndjson")
    assert job["kind"] == "ndjson"
    await run(app, dispatched)
    result = await status(http, headers, job["id"])
    assert result["counts"]["created"] == 3
    assert result["counts"]["refused"] == 1
    assert result["counts"]["duplicate"] == 1
    assert result["rows"][1]["reason"] == "json_invalid"
    assert result["rows"][3]["receivable_id"] == result["rows"][2]["receivable_id"]

    # the created events of an import are valid receivable.event payloads naming their origin
    async with db.transaction() as session:
        outbox_rows = (
            (
                await session.execute(
                    select(OutboxEvent).where(
                        OutboxEvent.payload["receivable_id"].astext
                        == result["rows"][0]["receivable_id"]
                    )
                )
            )
            .scalars()
            .all()
        )
    (event,) = outbox_rows
    assert validate_payload(event.event_id, event.topic, event.payload) is None
    assert event.payload["data"]["import_id"] == job["id"]
    assert event.payload["data"]["row"] == 1
    assert event.payload["data"]["sha256"] == job["sha256"]

    corrupt = await submit(http, headers, b"PK\x03\x04 this is no zip", "broken.zip")
    await run(app, dispatched)
    failed = await status(http, headers, corrupt["id"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("zip_invalid")

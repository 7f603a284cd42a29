"""The audit log: every write appends a chained row; the database refuses UPDATE/DELETE/TRUNCATE;
a row changed behind the trigger's back is found by the verifier and ``qilian admin verify-audit``;
concurrent appends form one unbroken chain."""

import asyncio
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from qilian.kit import db
from services.api.audit import service as audit
from services.api.audit.models import AuditEntry
from services.api.organizations.models import Role
from tests.integration.auth.conftest import bearer, get_token


async def _entries_for(object_id: str) -> list[AuditEntry]:
    async with db.transaction() as session:
        result = await session.execute(
            select(AuditEntry)
            .where(col(AuditEntry.object_id) == object_id)
            .order_by(col(AuditEntry.seq))
        )
        return list(result.scalars())


async def test_writes_append_attributable_rows(http, make_org):
    operator = await make_org(Role.operator)
    token = await get_token(http, operator)
    target = await make_org(Role.bank)
    issued = await http.post(
        f"/v1/organizations/{target.id}/clients",
        headers=bearer(token) | {"X-Request-ID": "req-audit-1"},
    )
    client_id = issued.json()["client_id"]
    await http.post(
        f"/v1/organizations/{target.id}/clients/{client_id}/rotate", headers=bearer(token)
    )
    await http.post(
        f"/v1/organizations/{target.id}/clients/{client_id}/revoke", headers=bearer(token)
    )
    rows = await _entries_for(client_id)
    assert [r.action for r in rows] == ["client.issued", "client.rotated", "client.revoked"]
    first = rows[0]
    assert (first.actor_type, first.actor_id, first.organization_id) == (
        "client",
        operator.client_id,
        operator.id,
    )
    assert first.request_id == "req-audit-1"
    assert first.details == {"organization_id": target.id}
    assert all(r.outcome == "success" for r in rows)

    log = await http.get("/v1/audit-log", params={"limit": 200}, headers=bearer(token))
    assert log.status_code == 200
    assert set(log.json()["items"][0]) >= {"seq", "hash", "prev_hash", "action", "actor_id"}


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE platform.audit_log SET action = 'x' WHERE seq = 1",
        "DELETE FROM platform.audit_log WHERE seq = 1",
        "TRUNCATE platform.audit_log",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_database_refuses_to_change_the_audit_log(db_engine, sql):
    async with db.transaction() as session:
        await audit.append(session, audit.SYSTEM, "test.row")
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.transaction() as session:
            await session.execute(text(sql))


def _cli_verify() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qilian.cli.main", "audit", "verify"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )


async def test_a_row_changed_in_sql_is_found_and_named(db_engine):
    async with db.transaction() as session:
        entry = await audit.append(
            session, audit.SYSTEM, "test.tamper_target", details={"amount": "100.00"}
        )
    async with db.transaction() as session:
        before = await audit.verify(session)
    assert before.ok, before

    clean = await asyncio.to_thread(_cli_verify)
    assert clean.returncode == 0, clean.stderr
    assert "intact" in clean.stdout

    engine = db.get_engine()

    async def tamper(value: str) -> None:
        async with engine.begin() as conn:  # as the table's owner (a superuser in tests)
            await conn.execute(
                text("ALTER TABLE platform.audit_log DISABLE TRIGGER audit_log_append_only")
            )
            await conn.execute(
                text("UPDATE platform.audit_log SET details = :d WHERE seq = :seq"),
                {"d": json.dumps({"amount": value}), "seq": entry.seq},
            )
            await conn.execute(
                text("ALTER TABLE platform.audit_log ENABLE TRIGGER audit_log_append_only")
            )

    await tamper("999999.00")
    try:
        async with db.transaction() as session:
            after = await audit.verify(session)
        assert not after.ok
        assert after.first_bad_seq == entry.seq
        assert "hash" in (after.reason or "")
        broken = await asyncio.to_thread(_cli_verify)
        assert broken.returncode == 1
        assert f"seq {entry.seq}" in broken.stderr
    finally:
        await tamper("100.00")
    async with db.transaction() as session:
        assert (await audit.verify(session)).ok


async def test_fifty_concurrent_appends_form_one_unbroken_chain(db_engine):
    async def one(n: int) -> int:
        async with db.transaction() as session:
            entry = await audit.append(session, audit.SYSTEM, "test.concurrent", details={"n": n})
        return entry.seq  # numbered as its transaction commits

    seqs = await asyncio.gather(*(one(n) for n in range(50)))
    assert len(set(seqs)) == 50
    assert max(seqs) - min(seqs) == 49  # contiguous: no fork, no gap
    async with db.transaction() as session:
        result = await audit.verify(session)
    assert result.ok, result


async def test_refused_writes_of_known_principals_are_audited(http, make_org):
    bank, other = await make_org(Role.bank), await make_org(Role.bank)
    token = await get_token(http, bank)
    path = f"/v1/organizations/{other.id}/clients/{other.client_id}/revoke"
    assert (await http.post(path, headers=bearer(token))).status_code == 404
    assert (await http.post("/v1/organizations", headers=bearer(token), json={})).status_code == 403
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(AuditEntry)
                .where(
                    col(AuditEntry.action) == "request.refused",
                    col(AuditEntry.actor_id) == bank.client_id,
                )
                .order_by(col(AuditEntry.seq))
            )
        ).scalars()
        refused = [(r.outcome, r.details["path"], r.details["status"]) for r in rows]
    assert refused == [("failure", path, 404), ("failure", "/v1/organizations", 403)]

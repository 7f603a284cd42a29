"""The risk ledger's rules held by the database, and its verifier: entries and lines cannot be
changed or deleted, an unbalanced entry cannot commit, no account goes beyond its limit, a
line's currency is its entry's; and a line hand-edited in SQL (the triggers disabled, as a
superuser could) is caught by ``GET /v1/risk-pool/ledger/verify``."""

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import db, ids
from services.api.risk import ledger
from services.api.risk.models import EntryKind
from tests.integration.invoices.intake_helpers import Party
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import World


async def top_up(http: httpx.AsyncClient, world: World, amount: str, currency: str) -> Any:
    response = await call(
        http,
        world.operator,
        "POST",
        "/v1/risk-pool/top-ups",
        {"amount": {"amount": amount, "currency": currency}, "reference": "top-up"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def verify(http: httpx.AsyncClient, who: Party) -> Any:
    response = await call(http, who, "GET", "/v1/risk-pool/ledger/verify")
    assert response.status_code == 200, response.text
    return response.json()


async def last_entry(currency: str) -> str:
    async with db.transaction() as session:
        row = await session.execute(
            text(
                "SELECT id FROM platform.risk_ledger_entries WHERE currency = :c "
                "ORDER BY seq DESC LIMIT 1"
            ),
            {"c": currency},
        )
        return str(row.scalar_one())


async def test_the_verifier_catches_a_line_hand_edited_with_the_triggers_disabled(http, world):
    await top_up(http, world, "250.00", "SGD")
    assert (await verify(http, world.regulator))["ok"] is True
    entry_id = await last_entry("SGD")
    edit = (
        "ALTER TABLE platform.risk_ledger_lines DISABLE TRIGGER USER; "
        "UPDATE platform.risk_ledger_lines SET debit_minor = debit_minor + {d} "
        "WHERE entry_id = '{e}' AND line = 1; "
        "ALTER TABLE platform.risk_ledger_lines ENABLE TRIGGER USER"
    )
    async with db.get_engine().begin() as conn:  # the superuser's session
        for statement in edit.format(d=100_000, e=entry_id).split("; "):
            await conn.execute(text(statement))
    try:
        found = await verify(http, world.operator)
        assert found["ok"] is False
        reasons = {(p.get("entry_id"), p.get("account_id"), p["reason"]) for p in found["problems"]}
        assert (entry_id, None, "hash does not recompute") in reasons
        assert (entry_id, None, "entry does not balance") in reasons
        assert (None, "pool:SGD", "stored balance differs from its lines") in reasons
        auditor = await call(http, world.extra["auditor"], "GET", "/v1/risk-pool/ledger/verify")
        assert auditor.json()["ok"] is False
    finally:
        async with db.get_engine().begin() as conn:
            for statement in edit.format(d=-100_000, e=entry_id).split("; "):
                await conn.execute(text(statement))
    assert (await verify(http, world.regulator))["ok"] is True


async def test_entries_and_lines_are_append_only(http, world):
    await top_up(http, world, "10.00", "SGD")
    entry_id = await last_entry("SGD")
    for statement in (
        "UPDATE platform.risk_ledger_entries SET memo = 'changed' WHERE id = :e",
        "DELETE FROM platform.risk_ledger_entries WHERE id = :e",
        "UPDATE platform.risk_ledger_lines SET credit_minor = 1 WHERE entry_id = :e AND line = 2",
        "DELETE FROM platform.risk_ledger_lines WHERE entry_id = :e",
        "TRUNCATE platform.risk_ledger_lines CASCADE",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(text(statement), {"e": entry_id})


async def _raw_entry(
    session: AsyncSession, currency: str, lines: list[tuple[str, int, int]]
) -> None:
    entry_id = ids.new_id("jnl")
    seq = (
        await session.execute(
            text("SELECT coalesce(max(seq), 0) + 1000000 FROM platform.risk_ledger_entries")
        )
    ).scalar_one()
    await session.execute(
        text(
            "INSERT INTO platform.risk_ledger_entries (id, seq, kind, currency, actor, posted_at, "
            "prev_hash, hash) VALUES (:id, :seq, 'top_up', :c, 'test', now(), :h, :h)"
        ),
        {"id": entry_id, "seq": seq, "c": currency, "h": "0" * 64},
    )
    for n, (account, debit, credit) in enumerate(lines, start=1):
        await session.execute(
            text(
                "INSERT INTO platform.risk_ledger_lines (entry_id, line, account_id, "
                "debit_minor, credit_minor) VALUES (:e, :n, :a, :d, :c)"
            ),
            {"e": entry_id, "n": n, "a": account, "d": debit, "c": credit},
        )


async def test_an_unbalanced_entry_cannot_commit(db_engine):
    async with db.transaction() as session:
        await ledger.ensure_account(session, ledger.pool("HKD"))
        await ledger.ensure_account(session, ledger.pool_contributions("HKD"))
    with pytest.raises(DBAPIError, match="does not balance"):
        async with db.transaction() as session:
            await _raw_entry(
                session, "HKD", [("pool:HKD", 500, 0), ("pool_contributions:HKD", 0, 499)]
            )
    with pytest.raises(DBAPIError, match="does not balance"):
        async with db.transaction() as session:
            await _raw_entry(session, "HKD", [("pool:HKD", 500, 0)])
    with pytest.raises(ValueError, match="does not balance"):
        async with db.transaction() as session:
            await ledger.post(
                session,
                EntryKind.top_up,
                "HKD",
                [
                    ledger.debit(ledger.pool("HKD"), 2),
                    ledger.credit(ledger.pool_contributions("HKD"), 1),
                ],
                actor="test",
            )


async def test_the_pool_never_goes_below_zero_and_currencies_never_mix(db_engine):
    async with db.transaction() as session:
        await ledger.ensure_account(session, ledger.pool("KWD"))
        await ledger.ensure_account(session, ledger.pool_contributions("KWD"))
        await ledger.ensure_account(session, ledger.pool_contributions("HKD"))
        await ledger.ensure_account(session, ledger.claims_payable("pool", None, "KWD"))
    with pytest.raises(DBAPIError, match="account_within_limits"):
        async with db.transaction() as session:
            # pay 1 fils from an empty pool: the CHECK on the balance refuses the line
            await _raw_entry(
                session, "KWD", [("claims_payable:pool:KWD", 1, 0), ("pool:KWD", 0, 1)]
            )
    with pytest.raises(DBAPIError, match="account_within_limits"):
        async with db.transaction() as session:
            await ledger.post(
                session,
                EntryKind.claim_paid,
                "KWD",
                [
                    ledger.debit(ledger.claims_payable("pool", None, "KWD"), 5),
                    ledger.credit(ledger.pool("KWD"), 5),
                ],
                actor="test",
            )
    with pytest.raises(DBAPIError, match="is in HKD"):
        async with db.transaction() as session:
            await _raw_entry(session, "KWD", [("pool:KWD", 7, 0), ("pool_contributions:HKD", 0, 7)])
    async with db.transaction() as session:
        assert await ledger.balance(session, ledger.pool("KWD")) == 0


def test_qilian_risk_verify_ledger_exits_1_while_an_entry_is_hand_edited(migrated):
    from typer.testing import CliRunner

    from qilian.cli.main import app as cli

    async def post_and_edit(delta: int) -> str:
        try:
            async with db.transaction() as session:
                entry = await ledger.post(
                    session,
                    EntryKind.top_up,
                    "SGD",
                    [
                        ledger.debit(ledger.pool("SGD"), 700),
                        ledger.credit(ledger.pool_contributions("SGD"), 700),
                    ],
                    actor="test",
                )
                entry_id = entry.id
            async with db.get_engine().begin() as conn:
                await conn.execute(
                    text("ALTER TABLE platform.risk_ledger_lines DISABLE TRIGGER USER")
                )
                await conn.execute(
                    text(
                        "UPDATE platform.risk_ledger_lines SET credit_minor = credit_minor + :d "
                        "WHERE entry_id = :e AND line = 2"
                    ),
                    {"d": delta, "e": entry_id},
                )
                await conn.execute(
                    text("ALTER TABLE platform.risk_ledger_lines ENABLE TRIGGER USER")
                )
            return entry_id
        finally:
            await db.dispose_engine()

    async def restore(entry_id: str) -> None:
        try:
            async with db.get_engine().begin() as conn:
                await conn.execute(
                    text("ALTER TABLE platform.risk_ledger_lines DISABLE TRIGGER USER")
                )
                await conn.execute(
                    text(
                        "UPDATE platform.risk_ledger_lines SET credit_minor = 700 "
                        "WHERE entry_id = :e AND line = 2"
                    ),
                    {"e": entry_id},
                )
                await conn.execute(
                    text("ALTER TABLE platform.risk_ledger_lines ENABLE TRIGGER USER")
                )
        finally:
            await db.dispose_engine()

    entry_id = asyncio.run(post_and_edit(1))
    try:
        broken = CliRunner().invoke(cli, ["risk", "verify-ledger"])
        assert broken.exit_code == 1, broken.output
        assert f"hash does not recompute: entry_id={entry_id}" in broken.output
        assert "risk ledger BROKEN" in broken.output
    finally:
        asyncio.run(restore(entry_id))
    intact = CliRunner().invoke(cli, ["risk", "verify-ledger"])
    assert intact.exit_code == 0, intact.output
    assert "risk ledger intact" in intact.output


async def test_top_ups_and_recoveries_refuse_inexact_money_and_control_characters_by_field(
    http, world
):
    """Refusals, not server errors: more decimals than the currency has, and a NUL in the
    reference (which PostgreSQL cannot store), each a 422 naming its field; nothing posted."""
    before = await last_entry("KWD") if await _has_entry("KWD") else None
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/risk-pool/top-ups", {"amount": {"amount": "0.001", "currency": "CNY"}}, "amount"),
        ("/v1/risk-pool/top-ups", {"amount": {"amount": "1.0001", "currency": "KWD"}}, "amount"),
        ("/v1/risk-pool/top-ups", {"reference": "T\x00-1"}, "reference"),
        ("/v1/risk-pool/recoveries", {"claim_id": "clm_x", "reference": "R\x00"}, "reference"),
        ("/v1/risk-pool/recoveries", {"claim_id": "clm_x", "amount": {"amount": "1.001",
                                       "currency": "EUR"}}, "amount"),
    ]  # fmt: skip
    for path, body, field in cases:
        full = {"amount": {"amount": "1.000", "currency": "KWD"}, "reference": "ok", **body}
        response = await call(http, world.operator, "POST", path, full)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == [field], (path, body)
    assert (await last_entry("KWD") if await _has_entry("KWD") else None) == before


async def _has_entry(currency: str) -> bool:
    async with db.transaction() as session:
        row = await session.execute(
            text("SELECT 1 FROM platform.risk_ledger_entries WHERE currency = :c LIMIT 1"),
            {"c": currency},
        )
        return row.first() is not None

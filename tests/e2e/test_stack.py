"""The whole stack as separate processes over HTTP: readiness follows the chain; a worker killed
with SIGKILL while the relay holds claimed outbox rows loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from qilian.kit import db, outbox
from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e


def test_api_and_ledger_report_every_dependency_ready(stack: Stack):
    for url in (stack.api_url, stack.ledger_url):
        response = httpx.get(f"{url}/readyz", timeout=10)
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "broker": "ok", "chain": "ok"}
        assert "x-request-id" in response.headers


def test_readiness_turns_503_naming_the_chain_while_anvil_is_down(stack: Stack):
    stack.anvil.stop()
    try:
        for url in (stack.api_url, stack.ledger_url):
            response = httpx.get(f"{url}/readyz", timeout=15)
            assert response.status_code == 503
            body = response.json()
            assert body["failed"] == ["chain"]
            assert body["checks"]["database"] == "ok"
    finally:
        stack.anvil.start()
    wait_for(stack.ready, 30, "readiness after anvil returned")
    assert httpx.get(f"{stack.api_url}/readyz", timeout=10).json()["status"] == "ready"


async def scalar(sql: str) -> int:
    async with db.transaction() as session:
        return int((await session.execute(text(sql))).scalar_one())


def rows(query: str) -> list[str]:
    async def run() -> list[str]:
        try:
            async with db.transaction() as session:
                return [str(r[0]) for r in (await session.execute(text(query))).all()]
        finally:
            await db.dispose_engine()

    return asyncio.run(run())


def sql(query: str) -> int:
    async def run() -> int:
        try:
            return await scalar(query)
        finally:
            await db.dispose_engine()

    return asyncio.run(run())


def test_worker_killed_while_relay_holds_claims_loses_and_duplicates_nothing(stack: Stack):
    total = 1500

    async def emit_all() -> None:
        try:
            async with db.transaction() as session:
                await session.execute(text("TRUNCATE platform.outbox, ledger.event_inbox"))
            async with db.transaction() as session:
                for n in range(total):
                    await outbox.emit(session, "receivable.event", {"n": n})
        finally:
            await db.dispose_engine()

    asyncio.run(emit_all())
    claimed_unacked = (
        "SELECT count(*) FROM platform.outbox WHERE attempts > 0 AND delivered_at IS NULL"
    )
    wait_for(lambda: sql(claimed_unacked) > 0, 60, "the relay to hold claimed rows")
    held = rows("SELECT event_id FROM platform.outbox WHERE attempts > 0 AND delivered_at IS NULL")
    stack.processes["worker"].kill()
    assert held, "the relay held claimed, unacknowledged rows at the kill"
    delivered_before_restart = sql(
        "SELECT count(*) FROM platform.outbox WHERE delivered_at IS NOT NULL"
    )
    assert delivered_before_restart < total
    stack.processes["worker"].start()

    wait_for(
        lambda: sql("SELECT count(*) FROM platform.outbox WHERE delivered_at IS NULL") == 0,
        180,
        "every event to be delivered after the restart",
    )
    assert sql("SELECT count(*) FROM ledger.event_inbox") == total
    assert sql("SELECT count(DISTINCT payload->>'n') FROM ledger.event_inbox") == total
    assert sql("SELECT count(*) FROM platform.outbox WHERE dead_at IS NOT NULL") == 0
    # what was in flight at the kill arrived after all, once each (redelivered by the broker, or
    # published again by the relay when the broker lost it with the worker)
    in_flight = ", ".join(f"'{event_id}'" for event_id in held)
    assert sql(f"SELECT count(*) FROM ledger.event_inbox WHERE event_id IN ({in_flight})") == len(
        held
    )


def test_worker_serves_the_task_counts_of_its_pool_processes(stack: Stack):
    def relay_counted() -> bool:
        try:
            text_ = httpx.get(stack.worker_metrics_url, timeout=5).text
        except httpx.HTTPError:
            return False
        return 'qilian_task_total{outcome="ok",task="outbox.relay"}' in text_

    wait_for(relay_counted, 60, "the worker's metrics to count relay runs")

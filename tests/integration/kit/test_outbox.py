"""The outbox on real PostgreSQL: one transaction with the change, SKIP LOCKED claims, leases,
idempotent consumption under concurrency, and the dead-letter state."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from qilian.kit import db, outbox
from qilian.kit.outbox import Envelope
from services.ledger.ingest.tasks import ingest_receivable_event

pytestmark = pytest.mark.usefixtures("db_engine")

LEASE = timedelta(seconds=30)


@pytest.fixture(autouse=True)
async def clean_outbox():
    async with db.transaction() as session:
        await session.execute(text("TRUNCATE platform.outbox, ledger.event_inbox"))


async def count(sql: str) -> int:
    async with db.transaction() as session:
        return int((await session.execute(text(sql))).scalar_one())


async def test_event_is_written_only_when_its_transaction_commits():
    async with db.transaction() as session:
        await outbox.emit(session, "receivable.event", {"n": 1})

    async def failing_change() -> None:
        async with db.transaction() as session:
            await outbox.emit(session, "receivable.event", {"n": 2})
            raise RuntimeError("business rule failed after the change")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert await count("SELECT count(*) FROM platform.outbox") == 1


async def test_unknown_topic_is_refused():
    async with db.transaction() as session:
        with pytest.raises(ValueError, match="no consumer"):
            await outbox.emit(session, "nobody.listens", {})


async def test_concurrent_relays_claim_disjoint_rows():
    async with db.transaction() as session:
        for n in range(60):
            await outbox.emit(session, "receivable.event", {"n": n})

    async def relay() -> list[str]:
        async with db.transaction() as session:
            claimed = await outbox.claim(session, limit=20, lease=LEASE, max_attempts=5)
            await asyncio.sleep(0.05)  # hold the row locks while the others claim
            return [e.event_id for e in claimed]

    results = await asyncio.gather(*(relay() for _ in range(5)))
    claimed = [event_id for batch in results for event_id in batch]
    assert len(claimed) == 60
    assert len(set(claimed)) == 60


async def test_leased_rows_are_not_claimed_again_until_the_lease_ends():
    async with db.transaction() as session:
        await outbox.emit(session, "receivable.event", {"n": 1})
    async with db.transaction() as session:
        first = await outbox.claim(session, limit=10, lease=LEASE, max_attempts=5)
    async with db.transaction() as session:
        again = await outbox.claim(session, limit=10, lease=LEASE, max_attempts=5)
        assert again == []
        await session.execute(text("UPDATE platform.outbox SET next_attempt_at = now()"))
    async with db.transaction() as session:
        after_lease = await outbox.claim(session, limit=10, lease=LEASE, max_attempts=5)
    assert [e.event_id for e in after_lease] == [e.event_id for e in first]


async def test_fifty_concurrent_deliveries_of_one_event_have_one_effect():
    async with db.transaction() as session:
        event_id = await outbox.emit(session, "receivable.event", {"n": 1})
    envelope = Envelope(event_id, "receivable.event", {"n": 1})
    effects: list[str] = []

    async def handler(session, env):
        effects.append(env.event_id)
        await ingest_receivable_event.handler(session, env)

    async def deliver() -> bool:
        async with db.transaction() as session:
            return await outbox.consume(session, envelope, handler)

    engine_pool = [deliver() for _ in range(50)]
    outcomes = await asyncio.gather(*engine_pool)
    assert outcomes.count(True) == 1
    assert effects == [event_id]
    assert await count("SELECT count(*) FROM ledger.event_inbox") == 1
    assert await count("SELECT count(*) FROM platform.outbox WHERE delivered_at IS NOT NULL") == 1


async def test_unacknowledged_event_goes_dead_after_max_attempts():
    async with db.transaction() as session:
        await outbox.emit(session, "receivable.event", {"n": 1})
    for _ in range(3):
        async with db.transaction() as session:
            assert len(await outbox.claim(session, limit=10, lease=LEASE, max_attempts=3)) == 1
            await session.execute(text("UPDATE platform.outbox SET next_attempt_at = now()"))
    async with db.transaction() as session:
        assert await outbox.claim(session, limit=10, lease=LEASE, max_attempts=3) == []
        stats = await outbox.stats(session)
    assert (stats.pending, stats.dead) == (0, 1)


async def test_dead_letters_can_be_requeued_and_metrics_show_them():
    from qilian.kit.metrics import OUTBOX_DEAD, refresh_outbox_gauges

    async with db.transaction() as session:
        await outbox.emit(session, "receivable.event", {"n": 1})
        await session.execute(text("UPDATE platform.outbox SET dead_at = now(), attempts = 9"))
    await refresh_outbox_gauges()
    assert OUTBOX_DEAD._value.get() == 1
    async with db.transaction() as session:
        assert await outbox.requeue_dead(session) == 1
    async with db.transaction() as session:
        claimed = await outbox.claim(session, limit=10, lease=LEASE, max_attempts=3)
    assert len(claimed) == 1
    await refresh_outbox_gauges()
    assert OUTBOX_DEAD._value.get() == 0


async def test_only_rows_delivered_before_the_retention_are_pruned():
    async with db.transaction() as session:
        old = await outbox.emit(session, "receivable.event", {"n": "old"})
        recent = await outbox.emit(session, "receivable.event", {"n": "recent"})
        await outbox.emit(session, "receivable.event", {"n": "undelivered"})
        await outbox.emit(session, "receivable.event", {"n": "dead"})
        await session.execute(
            text(
                "UPDATE platform.outbox SET delivered_at = now() - interval '8 days' "
                "WHERE event_id = :old"
            ),
            {"old": old},
        )
        await session.execute(
            text("UPDATE platform.outbox SET delivered_at = now() WHERE event_id = :r"),
            {"r": recent},
        )
        await session.execute(
            text(
                "UPDATE platform.outbox SET dead_at = now() - interval '30 days' "
                "WHERE payload->>'n' = 'dead'"
            )
        )
    async with db.transaction() as session:
        assert await outbox.prune(session, timedelta(days=7)) == 1
    assert await count("SELECT count(*) FROM platform.outbox") == 3
    assert await count(f"SELECT count(*) FROM platform.outbox WHERE event_id = '{old}'") == 0


async def test_a_failing_event_is_recorded_and_does_not_block_the_rest_of_its_batch():
    from sqlalchemy.exc import OperationalError

    from qilian.kit.tasks import apply_batch

    async with db.transaction() as session:
        ids = [await outbox.emit(session, "receivable.event", {"n": n}) for n in range(3)]
    batch = [Envelope(event_id, "receivable.event", {"n": n}) for n, event_id in enumerate(ids)]

    async def handler(session, envelope):
        if envelope.payload["n"] == 1:
            raise ValueError("this event is malformed")
        await ingest_receivable_event.handler(session, envelope)

    assert await apply_batch(batch, handler) == 2
    assert await count("SELECT count(*) FROM ledger.event_inbox") == 2
    assert (
        await count(
            "SELECT count(*) FROM platform.outbox WHERE delivered_at IS NULL "
            "AND last_error LIKE '%this event is malformed%'"
        )
        == 1
    )

    async def unreachable(session, envelope):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database down"))

    with pytest.raises(OperationalError):  # transient: the whole message is retried
        await apply_batch([batch[1]], unreachable)


async def test_overlapping_batches_delivered_concurrently_apply_each_event_once():
    from qilian.kit.tasks import apply_batch

    async with db.transaction() as session:
        ids = [await outbox.emit(session, "receivable.event", {"n": n}) for n in range(30)]
    envelopes = [Envelope(e, "receivable.event", {"n": n}) for n, e in enumerate(ids)]
    # twenty redeliveries of overlapping slices, in different orders, at the same time
    slices = [envelopes[(k * 7) % 30 :] + envelopes[: (k * 7) % 30] for k in range(20)]
    slices = [s[: 10 + k] for k, s in enumerate(slices)] + [envelopes]
    applied = await asyncio.gather(
        *(apply_batch(list(s), ingest_receivable_event.handler) for s in slices)
    )
    assert sum(applied) == 30
    assert await count("SELECT count(*) FROM ledger.event_inbox") == 30
    assert await count("SELECT count(*) FROM platform.outbox WHERE delivered_at IS NULL") == 0

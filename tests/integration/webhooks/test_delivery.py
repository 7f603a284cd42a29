"""Delivery over real HTTP: a published event arrives signed (Standard Webhooks) and verifies;
failing receivers (5xx, timeout, refused connection, redirect) are retried on the schedule and
dead-lettered; replay delivers again with the same webhook-id; two dispatchers never send one
attempt twice; a lease taken over is not recorded twice; metrics count the outcomes."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from standardwebhooks import Webhook, WebhookVerificationError

from qilian.kit import db
from services.api.organizations.models import Role
from services.api.webhooks import delivery, repository, service
from tests.integration.webhooks.conftest import FAST, Receiver
from tests.integration.webhooks.helpers import (
    attempts,
    caller,
    messages,
    new_endpoint,
    settle,
)


async def publish(org_ids: list[str], event_type: str = "offer.received", **data: object) -> int:
    async with db.transaction() as session:
        return await service.publish(session, org_ids, event_type, dict(data) or {"n": 1})


async def test_a_published_event_arrives_signed_and_verifies(http, receiver: Receiver):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url, ["offer.*"])
    assert await publish([bank.org.id], "offer.received", offer_id="ofr_1", rate="0.0385") == 1
    [message] = await settle(FAST, endpoint["id"])
    assert message.state == "delivered"
    [got] = receiver.received
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "offer.received"
    assert payload["data"] == {"offer_id": "ofr_1", "rate": "0.0385"}
    assert payload["timestamp"].endswith("Z")
    assert got.headers["webhook-id"] == message.id
    assert message.id.startswith("msg_")
    assert got.headers["content-type"] == "application/json"
    assert got.body.decode() == message.payload  # the body fixed at publish time, as signed
    with pytest.raises(WebhookVerificationError):
        Webhook(service.new_secret()).verify(got.body, got.headers)
    tampered = got.body.replace(b"0.0385", b"0.0001")
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(tampered, got.headers)
    [row] = await attempts(message.id)
    assert (row.attempt, row.outcome, row.status_code, row.error) == (1, "delivered", 204, None)


async def test_a_failing_receiver_is_retried_with_backoff_then_dead(http, receiver: Receiver):
    receiver.answer = lambda r: (500, 0.0)
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [message] = await settle(FAST, endpoint["id"])
    assert message.state == "dead"
    assert message.dead_at is not None
    assert message.attempts == FAST.max_attempts == 3
    rows = await attempts(message.id)
    assert [(a.attempt, a.outcome, a.status_code) for a in rows] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
    ]
    assert all(a.error == "the receiver answered 500" for a in rows)
    # the same webhook-id on every attempt; the gaps follow the schedule (0.2 s, 0.4 s ± 10 %)
    assert receiver.ids() == [message.id] * 3
    times = [r.at for r in receiver.received]
    assert times[1] - times[0] >= 0.2 * 0.9
    assert times[2] - times[1] >= 0.4 * 0.9


async def test_a_receiver_that_recovers_gets_the_message(http, receiver: Receiver):
    receiver.answer = lambda r: (503, 0.0) if len(receiver.received) == 1 else (200, 0.0)
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [message] = await settle(FAST, endpoint["id"])
    assert message.state == "delivered"
    assert [(a.outcome, a.status_code) for a in await attempts(message.id)] == [
        ("failed", 503),
        ("delivered", 200),
    ]


async def test_a_timeout_is_a_failed_attempt(http, receiver: Receiver):
    receiver.answer = lambda r: (200, 6.0)  # far longer than the 1 s timeout
    short = FAST.model_copy(update={"timeout_seconds": 1.0, "connect_timeout_seconds": 0.5})
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [message] = await settle(short, endpoint["id"], timeout=90)
    assert message.state == "dead"
    rows = await attempts(message.id)
    assert len(rows) == 3
    assert all("timed out" in (a.error or "") and a.status_code is None for a in rows)
    assert all(a.duration_ms < 5500 for a in rows)  # cut by the timeout, not the answer


async def test_a_refused_connection_is_retried_then_dead(http, refused_url: str):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, refused_url)
    await publish([bank.org.id])
    [message] = await settle(FAST, endpoint["id"])
    assert message.state == "dead"
    rows = await attempts(message.id)
    assert [a.attempt for a in rows] == [1, 2, 3]
    assert all((a.error or "").startswith("connection failed") for a in rows)
    assert message.last_error == rows[-1].error


async def test_redirects_are_not_followed(http, receiver: Receiver):
    receiver.answer = lambda r: (302, 0.0)
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [message] = await settle(FAST, endpoint["id"])
    assert message.state == "dead"
    assert len(receiver.received) == 3  # never the Location
    assert all(r.headers.get("webhook-id") == message.id for r in receiver.received)
    assert "redirects are not followed" in (message.last_error or "")


async def test_replay_delivers_again_with_the_same_webhook_id(http, receiver: Receiver):
    receiver.answer = lambda r: (500, 0.0)
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [dead] = await settle(FAST, endpoint["id"])
    assert dead.state == "dead"
    receiver.answer = lambda r: (200, 0.0)
    replayed = await http.post(f"/v1/webhook-messages/{dead.id}/replay", headers=bank.headers)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["state"] == "pending"
    again = await http.post(f"/v1/webhook-messages/{dead.id}/replay", headers=bank.headers)
    assert again.status_code == 409  # still queued
    [delivered] = await settle(FAST, endpoint["id"])
    assert delivered.state == "delivered"
    assert delivered.attempts == 4
    # and a delivered one can be replayed too: the receiver dedupes on webhook-id
    assert (
        await http.post(f"/v1/webhook-messages/{dead.id}/replay", headers=bank.headers)
    ).status_code == 202
    await settle(FAST, endpoint["id"])
    assert receiver.ids() == [dead.id] * 5
    assert [r.body for r in receiver.received[-2:]] == [receiver.received[0].body] * 2
    verified = receiver.received[-1]
    Webhook(endpoint["secret"]).verify(verified.body, verified.headers)
    assert [a.attempt for a in await attempts(dead.id)] == [1, 2, 3, 4, 5]


async def test_two_dispatchers_never_send_one_attempt_twice(http, receiver: Receiver):
    receiver.answer = lambda r: (200, 0.05)
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    for n in range(40):
        await publish([bank.org.id], n=n)
    narrow = FAST.model_copy(update={"batch_size": 15, "concurrency": 5})
    for _ in range(3):
        await asyncio.gather(*(delivery.dispatch_once(narrow) for _ in range(3)))
    rows = await settle(narrow, endpoint["id"])
    assert len(rows) == 40
    assert {m.state for m in rows} == {"delivered"}
    counts = Counter(receiver.ids())
    assert set(counts) == {m.id for m in rows}
    # each attempt is sent once: a receiver never sees a message more often than it was attempted
    # (on a loaded machine an attempt may time out after reaching the receiver and be retried —
    # a second attempt, recorded as such, which the receiver dedupes on webhook-id)
    assert all(counts[m.id] <= m.attempts for m in rows), [
        (m.id, counts[m.id], m.attempts) for m in rows if counts[m.id] > m.attempts
    ]


async def test_a_leased_message_is_not_claimed_again_and_a_lost_lease_records_nothing(
    http, receiver: Receiver
):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [message] = await messages(endpoint_id=endpoint["id"])
    now = delivery.utcnow()
    async with db.transaction() as session:
        claimed = await repository.claim(session, now, 1000, timedelta(seconds=0.3))
    first = next(c for c in claimed if c.message_id == message.id)
    async with db.transaction() as session:  # another dispatcher while the lease holds
        again = await repository.claim(session, delivery.utcnow(), 1000, timedelta(seconds=5))
    assert message.id not in {c.message_id for c in again}
    await asyncio.sleep(0.4)  # the first dispatcher is presumed dead: its lease ends
    async with db.transaction() as session:
        taken = await repository.claim(session, delivery.utcnow(), 1000, timedelta(seconds=5))
    second = next(c for c in taken if c.message_id == message.id)
    assert second.attempt == 2
    assert second.lease_id != first.lease_id
    late = delivery.Outcome(True, 200, None, now, 5)
    assert await delivery.record(first, late, FAST) == "lost"
    assert await delivery.record(second, late, FAST) == "delivered"
    assert [a.attempt for a in await attempts(message.id)] == [2]


async def test_a_disabled_endpoint_gets_nothing_new_and_its_queue_waits(http, receiver: Receiver):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    off = await http.patch(path, json={"enabled": False}, headers=bank.headers)
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    assert await publish([bank.org.id]) == 0
    await delivery.dispatch_once(FAST)
    assert receiver.received == []
    assert (await http.patch(path, json={"enabled": True}, headers=bank.headers)).status_code == 200
    [message] = await settle(FAST, endpoint["id"])
    assert message.state == "delivered"
    assert len(receiver.received) == 1


async def test_rotation_signs_with_both_secrets_during_the_grace(http, receiver: Receiver):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    rotated = await http.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=bank.headers
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != endpoint["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    await publish([bank.org.id])
    await settle(FAST, endpoint["id"])
    got = receiver.received[-1]
    for secret in (new_secret, endpoint["secret"]):
        Webhook(secret).verify(got.body, got.headers)


async def test_rotation_without_grace_drops_the_old_secret(http, app, receiver: Receiver):
    app.state.webhook_settings = FAST.model_copy(update={"secret_grace_seconds": 0})
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    rotated = await http.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=bank.headers
    )
    await publish([bank.org.id])
    await settle(FAST, endpoint["id"])
    got = receiver.received[-1]
    Webhook(rotated.json()["secret"]).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body, got.headers)


async def test_the_test_message_is_sent_whatever_the_filter(http, receiver: Receiver):
    supplier = await caller(http, Role.supplier)
    endpoint = await new_endpoint(http, supplier, receiver.url, ["receivable.confirmed"])
    sent = await http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=supplier.headers)
    assert sent.status_code == 202, sent.text
    assert sent.json()["event_type"] == "webhook.test"
    assert sent.json()["state"] == "pending"
    await settle(FAST, endpoint["id"])
    got = receiver.received[-1]
    body = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert body["type"] == "webhook.test"
    assert body["data"]["endpoint_id"] == endpoint["id"]
    assert got.headers["webhook-id"] == sent.json()["id"]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_outcomes_and_the_queue(http, receiver: Receiver, refused_url: str):
    bank = await caller(http)
    good = await new_endpoint(http, bank, receiver.url, ["offer.received"])
    bad = await new_endpoint(http, bank, refused_url, ["offer.received"])
    before = {
        o: _sample("qilian_webhook_deliveries_total", outcome=o)
        for o in ("delivered", "retry", "dead")
    }
    await publish([bank.org.id])
    stats = await delivery.refresh_gauges()
    assert stats.pending >= 2
    assert stats.oldest_pending_age >= 0
    assert _sample("qilian_webhook_queue_depth") == stats.pending
    await settle(FAST, good["id"])
    await settle(FAST, bad["id"])
    after = {
        o: _sample("qilian_webhook_deliveries_total", outcome=o)
        for o in ("delivered", "retry", "dead")
    }
    assert after["delivered"] - before["delivered"] >= 1
    assert after["retry"] - before["retry"] >= 2
    assert after["dead"] - before["dead"] >= 1
    stats = await delivery.refresh_gauges()
    assert stats.dead >= 1
    assert _sample("qilian_webhook_dead") == stats.dead
    assert json.loads((await messages(endpoint_id=bad["id"]))[0].payload)["type"] == (
        "offer.received"
    )


async def test_addresses_are_checked_again_at_delivery(http, receiver: Receiver):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)  # accepted under the test rules
    strict = FAST.model_copy(update={"allow_loopback": False, "allow_private_networks": False})
    await publish([bank.org.id])
    [message] = await settle(strict, endpoint["id"])
    assert message.state == "dead"
    assert receiver.received == []
    assert all(
        (a.error or "").startswith("refused target: the host is a loopback address")
        for a in await attempts(message.id)
    )


async def test_a_host_name_is_resolved_checked_and_pinned(http, receiver: Receiver):
    bank = await caller(http)
    url = receiver.url.replace("127.0.0.1", "localhost")
    endpoint = await new_endpoint(http, bank, url)
    pinned = FAST.model_copy(update={"allow_private_networks": False})  # loopback still allowed
    await publish([bank.org.id])
    [message] = await settle(pinned, endpoint["id"])
    assert message.state == "delivered"
    [got] = receiver.received
    assert got.headers["host"] == f"localhost:{receiver.port}"  # the name, though pinned
    Webhook(endpoint["secret"]).verify(got.body, got.headers)
    refusing = FAST.model_copy(update={"allow_loopback": False, "allow_private_networks": False})
    await publish([bank.org.id], n=2)
    [_, second] = await settle(refusing, endpoint["id"])
    assert second.state == "dead"
    assert "resolves to a loopback address" in (second.last_error or "")
    assert len(receiver.received) == 1


async def test_a_message_whose_last_attempt_never_reported_is_dead_lettered(
    http, receiver: Receiver
):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id])
    [message] = await messages(endpoint_id=endpoint["id"])
    for _ in range(FAST.max_attempts):  # claimed, then the dispatcher dies before recording
        async with db.transaction() as session:
            await repository.claim(session, delivery.utcnow(), 1000, timedelta(seconds=0.05))
        await asyncio.sleep(0.1)
    await delivery.dispatch_once(FAST)
    [dead] = await messages(endpoint_id=endpoint["id"])
    assert dead.id == message.id
    assert dead.state == "dead"
    assert dead.attempts == FAST.max_attempts
    assert dead.last_error == "no outcome recorded for the last attempt"
    assert receiver.received == []


async def test_no_test_message_to_a_disabled_endpoint(http, receiver: Receiver):
    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    await http.patch(path, json={"enabled": False}, headers=bank.headers)
    refused = await http.post(path + "/test", headers=bank.headers)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"


async def test_the_beat_pass_and_pruning(http, receiver: Receiver):
    from sqlalchemy import text

    from services.api.webhooks import tasks

    bank = await caller(http)
    endpoint = await new_endpoint(http, bank, receiver.url)
    await publish([bank.org.id], n=1)
    counts = await tasks.dispatch_pass()  # what the beat task runs: a pass, then the gauges
    assert counts.get("delivered", 0) >= 1
    [delivered] = await messages(endpoint_id=endpoint["id"])
    assert delivered.state == "delivered"
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE platform.webhook_messages SET delivered_at = now() - interval '31 days' "
                "WHERE id = :id"
            ),
            {"id": delivered.id},
        )
    assert await tasks.prune_delivered() >= 1
    assert await messages(endpoint_id=endpoint["id"]) == []
    assert await attempts(delivered.id) == []

"""Delivering messages: claim the due ones, POST each (signed), record the attempt, schedule the
next or dead-letter.

One pass (:func:`dispatch_once`, run by the beat task ``webhooks.dispatch``):

1. in one transaction, dead-letter messages whose last attempt never recorded an outcome, and
   claim up to ``batch_size`` due messages with ``FOR UPDATE SKIP LOCKED``; each is leased (its
   ``next_attempt_at`` moves past the lease, ``lease_id`` names the claim), so two dispatchers
   never send the same attempt at once;
2. send them, at most ``concurrency`` at a time: ``POST`` the stored body with the Standard
   Webhooks headers (``webhook-id`` = the message id, the same on every attempt;
   ``webhook-timestamp`` = now; ``webhook-signature`` = ``v1,<base64 HMAC-SHA256>`` with the
   endpoint's secret, and with the previous secret too during a rotation's grace period); a
   bounded timeout, no redirects followed, at most ``max_response_bytes`` of the answer read;
3. record each attempt in its own transaction: a 2xx delivers; anything else (another status, a
   timeout, a refused connection, a refused address) schedules the next attempt after the
   schedule's delay ± jitter, or dead-letters the message when the schedule has run out.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from prometheus_client import Counter, Gauge, Histogram
from standardwebhooks import Webhook

from qilian.kit import db
from qilian.kit.settings import Settings, get_settings
from services.api.webhooks import repository, service
from services.api.webhooks.models import MessageState, WebhookAttempt
from services.api.webhooks.settings import WebhookSettings, get_webhook_settings
from services.api.webhooks.targets import Target, TargetRefused, resolve

log = structlog.get_logger(__name__)

USER_AGENT = "Qilian-Webhooks/1"

DELIVERIES = Counter(
    "qilian_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retry, dead)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "qilian_webhook_attempt_duration_seconds", "Duration of webhook delivery attempts"
)
QUEUE_DEPTH = Gauge("qilian_webhook_queue_depth", "Webhook messages waiting for delivery")
QUEUE_AGE = Gauge(
    "qilian_webhook_oldest_pending_seconds", "Age of the oldest webhook message not delivered"
)
DEAD = Gauge("qilian_webhook_dead", "Webhook messages in the dead-letter state")


def utcnow() -> datetime:
    return datetime.now(UTC)


def retry_delay(round_attempts: int, settings: WebhookSettings) -> float | None:
    """Seconds until the next attempt after ``round_attempts`` failed ones; None: dead."""
    if round_attempts > len(settings.retry_schedule):
        return None
    base = settings.retry_schedule[round_attempts - 1]
    return base * (1 + random.uniform(-settings.jitter, settings.jitter))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    started_at: datetime
    duration_ms: int


def signature(claimed: repository.Claimed, timestamp: datetime, secret_key: str) -> str:
    """``v1,<sig>``, and a second ``v1,<sig>`` with the previous secret during its grace."""
    secret = service.unseal_secret(secret_key, claimed.endpoint_id, claimed.secret_sealed)
    signatures = [Webhook(secret).sign(claimed.message_id, timestamp, claimed.payload)]
    expires = claimed.previous_secret_expires_at
    if claimed.previous_secret_sealed and expires and expires > timestamp:
        previous = service.unseal_secret(
            secret_key, claimed.endpoint_id, claimed.previous_secret_sealed
        )
        signatures.append(Webhook(previous).sign(claimed.message_id, timestamp, claimed.payload))
    return " ".join(signatures)


async def _read_bounded(response: httpx.Response, limit: int) -> None:
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            break


async def _post(
    client: httpx.AsyncClient,
    target: Target,
    headers: dict[str, str],
    payload: str,
    settings: WebhookSettings,
) -> int:
    """POST to the first of the target's addresses that accepts a connection; its status."""
    for index, url in enumerate(target.urls):
        request = client.build_request(
            "POST", url, content=payload.encode(), headers=headers, extensions=target.extensions
        )
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError:
            if index == len(target.urls) - 1:
                raise
            continue
        try:
            await _read_bounded(response, settings.max_response_bytes)
        finally:
            await response.aclose()
        return response.status_code
    raise TargetRefused("the host has no address")


async def attempt(
    client: httpx.AsyncClient,
    claimed: repository.Claimed,
    settings: WebhookSettings,
    platform: Settings,
) -> Outcome:
    """One POST of one claimed message; never raises for the receiver's failures."""
    started = utcnow()
    clock = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            target = await resolve(claimed.url, settings, platform.env)
            timestamp = utcnow()
            headers = {
                **target.headers,
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": claimed.message_id,
                "webhook-timestamp": str(int(timestamp.timestamp())),
                "webhook-signature": signature(claimed, timestamp, platform.secret_key),
            }
            status = await _post(client, target, headers, claimed.payload, settings)
        if not 200 <= status < 300:
            error = f"the receiver answered {status}"
            if 300 <= status < 400:
                error += " (redirects are not followed)"
    except TargetRefused as exc:
        error = f"refused target: {exc}"
    except TimeoutError:
        error = f"timed out after {settings.timeout_seconds:g} s"
    except httpx.TimeoutException:
        error = "timed out"
    except httpx.ConnectError as exc:
        error = f"connection failed: {exc}" if str(exc) else "connection failed"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration = time.perf_counter() - clock
    ATTEMPT_SECONDS.observe(duration)
    return Outcome(
        delivered=error is None,
        status_code=status,
        error=error[:500] if error else None,
        started_at=started,
        duration_ms=int(duration * 1000),
    )


async def record(claimed: repository.Claimed, outcome: Outcome, settings: WebhookSettings) -> str:
    """Store the attempt and the message's next state; returns that state (or ``lost`` when
    this dispatcher's lease had been taken over)."""
    now = utcnow()
    next_at: datetime | None = None
    if outcome.delivered:
        state = MessageState.delivered.value
    else:
        delay = retry_delay(claimed.round_attempts, settings)
        if delay is None:
            state = MessageState.dead.value
        else:
            state = MessageState.pending.value
            next_at = now + timedelta(seconds=delay)
    row = WebhookAttempt(
        message_id=claimed.message_id,
        attempt=claimed.attempt,
        started_at=outcome.started_at,
        duration_ms=outcome.duration_ms,
        outcome="delivered" if outcome.delivered else "failed",
        status_code=outcome.status_code,
        error=outcome.error,
    )
    async with db.transaction() as session:
        kept = await repository.record_attempt(
            session, claimed, row, state=state, next_attempt_at=next_at, now=now
        )
    if not kept:
        log.warning("webhook_lease_lost", message_id=claimed.message_id)
        return "lost"
    DELIVERIES.labels(
        "delivered" if outcome.delivered else "dead" if state == "dead" else "retry"
    ).inc()
    if not outcome.delivered:
        log.info(
            "webhook_attempt_failed",
            message_id=claimed.message_id,
            endpoint_id=claimed.endpoint_id,
            attempt=claimed.attempt,
            error=outcome.error,
            state=state,
        )
    return state


def new_client(settings: WebhookSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=settings.concurrency * 2),
    )


async def dispatch_once(
    settings: WebhookSettings | None = None,
    platform: Settings | None = None,
    client: httpx.AsyncClient | None = None,
) -> dict[str, int]:
    """One pass: claim, send, record. Returns how many messages ended in each state."""
    settings = settings or get_webhook_settings()
    platform = platform or get_settings()
    now = utcnow()
    async with db.transaction() as session:
        buried = await repository.bury_abandoned(session, now, settings.max_attempts)
        claimed = await repository.claim(
            session, now, settings.batch_size, timedelta(seconds=settings.lease_seconds)
        )
    counts: dict[str, int] = {"dead": buried} if buried else {}
    if buried:
        DELIVERIES.labels("dead").inc(buried)
    if not claimed:
        return counts
    gate = asyncio.Semaphore(settings.concurrency)
    own_client = client is None
    http = client or new_client(settings)

    async def one(item: repository.Claimed) -> str:
        async with gate:
            outcome = await attempt(http, item, settings, platform)
        return await record(item, outcome, settings)

    try:
        # every attempt runs to its end even when recording another fails (the database went
        # away): the failed ones are sent again once their lease ends
        results = await asyncio.gather(*(one(item) for item in claimed), return_exceptions=True)
    finally:
        if own_client:
            await http.aclose()
    failures = [r for r in results if isinstance(r, BaseException)]
    for result in results:
        if isinstance(result, str):
            counts[result] = counts.get(result, 0) + 1
    if failures:
        log.error("webhook_record_failed", failures=len(failures), error=repr(failures[0]))
        raise failures[0]
    return counts


async def refresh_gauges() -> repository.QueueStats:
    async with db.transaction() as session:
        stats = await repository.stats(session)
    QUEUE_DEPTH.set(stats.pending)
    QUEUE_AGE.set(stats.oldest_pending_age)
    DEAD.set(stats.dead)
    return stats

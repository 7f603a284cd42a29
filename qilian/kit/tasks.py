"""Background-task plumbing shared by every service's ``tasks.py``.

Tasks are declared with :func:`celery.shared_task` so a service never imports the worker; the
worker's Celery app includes the task modules by name. Async work runs on one event loop per worker
process (the database engine lives on it), in one transaction per task. Retries back off
exponentially with jitter; a task that exhausts them is logged and counted as ``dead``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog
from celery import Task, shared_task
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import db, outbox
from qilian.kit.metrics import TASKS

log = structlog.get_logger(__name__)
T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None

# Transient failures worth a retry: connection trouble with the database, broker or chain
# (requests' and httpx's connection errors are OSErrors). Not integrity or programming errors:
# retrying those would only repeat them.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, OperationalError, InterfaceError)

RETRY_POLICY: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on this process's loop (created lazily, after any fork)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def reset_after_fork() -> None:
    """Forget the parent's loop and engine in a freshly forked worker process."""
    global _loop
    _loop = None
    db._engine, db._sessionmaker = None, None


class QilianTask(Task[Any, Any]):
    """Counts outcomes; logs the final failure so it is visible (the dead-letter state)."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        TASKS.labels(self.name, "ok").inc()

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        TASKS.labels(self.name, "retry").inc()
        log.warning("task_retry", task=self.name, task_id=task_id, error=repr(exc))

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        TASKS.labels(self.name, "dead").inc()
        log.error("task_dead", task=self.name, task_id=task_id, error=repr(exc))


def task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """A shared task with the platform's retry policy."""
    return shared_task(name=name, base=QilianTask, **{**RETRY_POLICY, **options})


async def apply_batch(envelopes: list[outbox.Envelope], handler: outbox.Handler) -> int:
    """Apply a message's events; returns how many took effect now.

    First all together, in one transaction (one commit for the batch). If that fails for a reason
    other than a transient one, each event is applied in its own transaction, so that one bad event
    does not hold back the others: its error is recorded on its row, the relay redelivers it after
    its lease, and after max attempts it is dead-lettered with that error. A transient failure
    (database, broker or chain unreachable) propagates, so the whole message is retried (events
    already done are skipped then).
    """
    try:
        async with db.transaction() as session:
            return await outbox.consume_all(session, envelopes, handler)
    except TRANSIENT:
        raise
    except Exception:  # one of them is bad: find it, apply the others
        log.warning("outbox_batch_failed_isolating", events=len(envelopes))
    applied = 0
    for envelope in envelopes:
        try:
            async with db.transaction() as session:
                applied += await outbox.consume(session, envelope, handler)
        except TRANSIENT:
            raise
        except Exception as exc:
            log.exception("outbox_event_failed", event_id=envelope.event_id, topic=envelope.topic)
            async with db.transaction() as session:
                await outbox.record_failure(session, envelope.event_id, repr(exc))
    return applied


def outbox_consumer(topic: str) -> Callable[[outbox.Handler], Any]:
    """Declare the consumer of an outbox topic: effect and acknowledgement in one transaction."""
    name = outbox.CONSUMERS[topic]

    def decorate(handler: outbox.Handler) -> Any:
        @task(name)
        def consume(envelopes: list[dict[str, Any]]) -> int:
            """Apply a batch of events; each in its own transaction with its acknowledgement."""
            batch = [outbox.Envelope.from_json(e) for e in envelopes]
            return run_async(apply_batch(batch, handler))

        consume.handler = handler
        return consume

    return decorate


async def in_transaction(work: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
    async with db.transaction() as session:
        return await work(session)

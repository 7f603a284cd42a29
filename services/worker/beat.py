"""Beat's scheduler, made to outlive a broker outage.

Celery's ``PersistentScheduler`` publishes every due entry through one producer on one broker
connection, created once (``cached_property``). When the broker goes away — with the embedded
broker, PostgreSQL restarting is enough — kombu closes that channel, and every later publish fails
at once with ``RecoverableConnectionError('channel disconnected')``: beat keeps running and logging,
and never schedules anything again (the outbox relay among it), until someone restarts it.

``RecoveringScheduler`` drops the broken producer and connection when a publish fails on a
connection error or a database error of the embedded broker (a SQLAlchemy session that failed
once refuses every later statement until it is rolled back, and kombu keeps it for the channel's
life); the next due entry builds fresh ones (``ensure_connection`` retries while the
broker is still away). Nothing else changes: entries, timing and the schedule file are Celery's.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery.beat import PersistentScheduler, SchedulingError
from kombu.exceptions import OperationalError
from sqlalchemy.exc import SQLAlchemyError


class RecoveringScheduler(PersistentScheduler):
    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kw: Any) -> Any:
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kw)
        except SchedulingError as exc:
            if _connection_error(exc):
                self._forget_connection()
            raise

    def _forget_connection(self) -> None:
        connection = self.__dict__.pop("connection", None)
        self.__dict__.pop("producer", None)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()


def _connection_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OperationalError | ConnectionError | OSError | SQLAlchemyError):
            return True
        if type(seen).__name__ in ("RecoverableConnectionError", "OperationalError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

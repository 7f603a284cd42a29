"""The embedded broker: kombu's SQLAlchemy transport, made safe for several processes.

kombu creates a queue's row on first use (``_get_or_create``): it reads the row, and inserts it
when missing, under a lock that only serialises the threads of one process. The worker and beat
start together, so both can read "missing" and insert: the loser's ``commit`` raises
``IntegrityError`` (unique ``kombu_queue.name``), which kombu lets through without a rollback —
the channel's session then refuses every later statement (``PendingRollbackError``) and the
process never publishes or consumes again. :class:`Channel` rolls back and reads the row the
other process made. The transport also polls every 0.1 s instead of kombu's 1 s.

:func:`register` points the ``sqla+…`` URL scheme at :class:`Transport`; call it before the first
connection (``services.worker.app.create_celery`` and the api's task producer do).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sql
from sqlalchemy.exc import IntegrityError

SCHEME = "sqla"


class Channel(kombu_sql.Channel):
    def _get_or_create(self, queue: str) -> Any:
        try:
            return super()._get_or_create(queue)  # type: ignore[misc]
        except IntegrityError:  # another process inserted the queue between our read and insert
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()


class Transport(kombu_sql.Transport):
    Channel = Channel
    polling_interval = 0.1


def register() -> None:
    """Make ``sqla+…`` broker URLs use :class:`Transport`."""
    TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"

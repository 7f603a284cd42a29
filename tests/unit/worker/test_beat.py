"""Beat drops its broker connection after any error of the embedded broker's database, so a
failed SQLAlchemy session (refusing every statement until rolled back) is not kept for good."""

from __future__ import annotations

from celery.beat import SchedulingError
from sqlalchemy.exc import IntegrityError, PendingRollbackError

from services.worker.beat import _connection_error


def _raised_from(cause: BaseException) -> SchedulingError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise SchedulingError("Couldn't apply scheduled task outbox-relay") from exc
    except SchedulingError as scheduling:
        return scheduling


def test_a_failed_broker_session_is_a_reason_to_reconnect():
    stuck = PendingRollbackError("This Session's transaction has been rolled back")
    assert _connection_error(_raised_from(stuck))
    assert _connection_error(_raised_from(IntegrityError("INSERT", {}, Exception("dup"))))


def test_a_task_error_is_not():
    assert not _connection_error(_raised_from(ValueError("bad schedule entry")))

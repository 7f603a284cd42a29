"""The embedded broker (kombu's SQLAlchemy transport on PostgreSQL) when two processes create the
same queue at once — the worker and beat starting together: the loser of the race reads the
winner's row instead of keeping a failed session that refuses every later statement."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from kombu import Connection
from sqlalchemy.engine import make_url

from qilian.kit import broker
from tests.conftest import _psycopg_dsn, create_database, drop_database


@pytest.fixture
def broker_database(postgres_server: str) -> Iterator[tuple[str, str]]:
    """A fresh broker database: (its sqla+ broker URL, a libpq DSN for a second client)."""
    name = f"qilian_test_kombu_{uuid.uuid4().hex[:10]}"
    create_database(postgres_server, name)
    url = make_url(postgres_server).set(database=name)
    sqla = "sqla+" + url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    try:
        yield sqla, _psycopg_dsn(url.render_as_string(hide_password=False))
    finally:
        drop_database(postgres_server, name)


def _wait_for_lock_waiter(dsn: str, timeout: float = 20.0) -> None:
    """Until some session of the database waits on a lock (the insert behind ours)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the channel's insert never waited on the other client's row")


def test_a_queue_created_by_another_process_meanwhile_is_read_not_fatal(
    broker_database: tuple[str, str],
):
    url, dsn = broker_database
    broker.register()
    queue = "race"
    with Connection(url) as conn:
        assert isinstance(conn.transport, broker.Transport)
        channel: Any = conn.default_channel
        assert channel.session is not None  # opening it creates kombu's tables
        with psycopg.connect(dsn) as other:  # the other process: its row not yet committed
            other.execute(
                "INSERT INTO kombu_queue (id, name) VALUES (nextval('queue_id_sequence'), %s)",
                (queue,),
            )
            outcome: dict[str, Any] = {}

            def declare() -> None:
                try:
                    outcome["queue"] = channel._get_or_create(queue)
                except Exception as exc:  # the failure the test is about
                    outcome["error"] = exc

            # our read finds nothing, our insert waits on the other row's unique key …
            declaring = threading.Thread(target=declare)
            declaring.start()
            _wait_for_lock_waiter(dsn)
            other.commit()  # … and fails once the other process commits
            declaring.join(timeout=30)
        assert "error" not in outcome, repr(outcome.get("error"))
        with psycopg.connect(dsn) as check:
            rows = check.execute("SELECT id FROM kombu_queue WHERE name = %s", (queue,)).fetchall()
        assert [row[0] for row in rows] == [outcome["queue"].id]
        # the channel still works: a message goes through the queue
        producer = conn.SimpleQueue(queue)
        producer.put({"n": 1})
        assert producer.get(timeout=5).payload == {"n": 1}
        producer.close()

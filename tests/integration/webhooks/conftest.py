"""Fixtures of the webhook tests: the API app (shared api fixtures) with a fast retry schedule,
and real HTTP receivers: a threaded ``http.server`` on a free loopback port that records every
request and answers as the test tells it (a status, after a delay)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text

from qilian.kit import db
from services.api.webhooks.settings import WebhookSettings
from tests.integration.api_fixtures import app, dispatched, http

__all__ = ["app", "dispatched", "http"]

# short retry gaps; timeouts long enough that a loaded machine never turns an answer into a
# timeout (the timeout test shortens them itself)
FAST = WebhookSettings(
    retry_schedule=[0.2, 0.4],
    jitter=0.1,
    timeout_seconds=10.0,
    connect_timeout_seconds=5.0,
    lease_seconds=30.0,
)


@pytest.fixture
def webhook_settings() -> WebhookSettings:
    return FAST


@pytest.fixture(autouse=True)
def _fast_webhooks(app: Any, webhook_settings: WebhookSettings) -> None:
    app.state.webhook_settings = webhook_settings


@pytest.fixture(autouse=True)
async def _only_this_tests_endpoints() -> None:
    """A delivery pass serves every enabled endpoint in the database: messages other tests of
    the session left pending (to hosts that refuse or do not resolve) would share this test's
    passes and its time. They are switched off; each test here makes its own endpoints."""
    async with db.transaction() as session:
        await session.execute(
            text("UPDATE platform.webhook_endpoints SET enabled = false WHERE enabled")
        )


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A real HTTP server; ``answer`` decides (status, delay in seconds) per request."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], tuple[int, float]] = lambda r: (204, 0.0)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/qilian"

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            request = Received(
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
                time.monotonic(),
            )
            with receiver.lock:
                receiver.received.append(request)
            status, delay = receiver.answer(request)
            if delay:
                time.sleep(delay)
            body = b"ok"
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", receiver.url + "/elsewhere")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # the dispatcher may have given up (timeout) and closed the connection
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops connections of concurrent dispatchers
    daemon_threads = True


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(made))
    made.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield made
    server.shutdown()
    server.server_close()


@pytest.fixture
def refused_url() -> str:
    """A loopback port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hooks"

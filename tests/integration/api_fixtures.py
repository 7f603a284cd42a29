"""Fixtures of the api's domain tests (intake, receivables), imported by their conftests: the
API app on the session database (relaxed rate limits, as in
the identity tests) with a blob store under the test's temp dir, the ledger unreachable unless a
test says otherwise, and bulk imports dispatched to a list the test drains by running the import
task's coroutine itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from qilian.kit.settings import get_settings
from services.api.auth import ratelimit
from services.api.invoices.blobs import LocalBlobStore
from services.api.main import create_app
from tests.integration.auth.conftest import RELAXED, client_for


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("ledger down (test)", request=request)


@pytest.fixture
def dispatched() -> list[str]:
    return []


@pytest.fixture
async def app(db_engine: None, tmp_path: Any, dispatched: list[str]) -> AsyncIterator[Any]:
    application = create_app(get_settings())
    application.state.auth_settings = RELAXED
    application.state.blob_store = LocalBlobStore(tmp_path / "blobs")
    application.state.ledger_transport = httpx.MockTransport(_unreachable)
    application.state.import_dispatcher = dispatched.append
    yield application
    await ratelimit.dispose()


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client

"""Fixtures of the risk-sharing tests: the API app on the session database with short auction
windows (as the marketplace tests), and a world of parties for covered financings."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.financing.settings import FinancingSettings
from tests.integration.api_fixtures import app, dispatched, http
from tests.integration.risk.helpers import World, new_world

__all__ = ["app", "dispatched", "http", "world"]

SHORT = FinancingSettings(min_auction_seconds=1, min_days_after_close=7)


@pytest.fixture
async def world(app: Any, db_engine: None) -> World:
    app.state.financing_settings = SHORT
    return await new_world()

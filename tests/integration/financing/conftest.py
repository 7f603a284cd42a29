"""Fixtures of the marketplace tests: the API app on the session database with short auction
windows, and a market of one core firm, one supplier and three banks."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.financing.settings import FinancingSettings
from services.api.organizations.models import Role
from tests.integration.api_fixtures import app, dispatched, http
from tests.integration.financing.market import Market
from tests.integration.invoices.intake_helpers import new_party

__all__ = ["app", "dispatched", "http", "market"]

SHORT = FinancingSettings(min_auction_seconds=1, min_days_after_close=7)


@pytest.fixture
async def market(app: Any, db_engine: None) -> Market:
    app.state.financing_settings = SHORT
    return Market(
        supplier=await new_party(Role.supplier),
        other_supplier=await new_party(Role.supplier),
        core=await new_party(Role.core_firm),
        banks=[await new_party(Role.bank) for _ in range(3)],
    )

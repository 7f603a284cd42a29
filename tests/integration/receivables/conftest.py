"""Fixtures: the API app on the session database, shared with the other api domain tests."""

from tests.integration.api_fixtures import app, dispatched, http

__all__ = ["app", "dispatched", "http"]

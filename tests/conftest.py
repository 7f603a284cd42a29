"""Session fixtures shared by every test layer: a real anvil chain (more are added per layer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qilian.kit.anvil import Anvil


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """A throwaway anvil on a free port for the whole test session."""
    with Anvil() as chain:
        yield chain

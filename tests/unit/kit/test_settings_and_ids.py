import pytest
from pydantic import ValidationError

from qilian.kit import ids
from qilian.kit.settings import Settings


def test_production_refuses_development_secrets():
    with pytest.raises(ValidationError, match="QILIAN_SECRET_KEY"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="ANCHORER_PRIVATE_KEY"):
        Settings(env="production", secret_key="a-real-secret")


def test_development_defaults_start():
    assert Settings(env="development").chain_id == 31337


def test_ids_are_prefixed_and_unique():
    a, b = ids.new_id("rcv"), ids.new_id("rcv")
    assert a != b
    assert ids.is_id(a, "rcv")
    assert not ids.is_id(a, "org")
    with pytest.raises(ValueError, match="prefix"):
        ids.new_id("zzz")

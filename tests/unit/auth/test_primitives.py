"""Pure pieces of identity: cursors, sealing, scopes, request fingerprints, the audit hash."""

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from qilian.kit.errors import InvalidInput
from services.api.audit import service as audit
from services.api.audit.models import GENESIS_HASH, AuditEntry
from services.api.auth import keys
from services.api.auth.idempotency import request_hash
from services.api.auth.models import Scope, scopes_for
from services.api.auth.pagination import decode_cursor, encode_cursor
from services.api.organizations.models import Role


@given(st.text(min_size=1, max_size=80))
def test_cursor_round_trips(key):
    assert decode_cursor(encode_cursor(key)) == key


@pytest.mark.parametrize("cursor", ["", "%%%", "e30", "bnVsbA", "W10"])
def test_foreign_cursors_are_invalid_input(cursor):
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)


def test_sealed_data_opens_only_with_the_same_secret_and_associated_data():
    sealed = keys.seal("secret-a", b"purpose", b"plaintext", b"kid-1")
    assert keys.unseal("secret-a", b"purpose", sealed, b"kid-1") == b"plaintext"
    assert b"plaintext" not in sealed
    for secret, purpose, associated in [
        ("secret-b", b"purpose", b"kid-1"),
        ("secret-a", b"other", b"kid-1"),
        ("secret-a", b"purpose", b"kid-2"),
    ]:
        with pytest.raises(InvalidTag):
            keys.unseal(secret, purpose, sealed, associated)


def test_read_only_roles_never_get_the_write_scope():
    assert scopes_for(Role.auditor) == scopes_for(Role.regulator) == {Scope.read}
    for role in (Role.supplier, Role.core_firm, Role.bank, Role.guarantor, Role.operator):
        assert Scope.write in scopes_for(role)


def test_request_fingerprint_separates_its_parts():
    assert request_hash("POST", "/a", b"", b"bc") != request_hash("POST", "/ab", b"", b"c")
    assert request_hash("POST", "/a", b"x=1", b"") != request_hash("POST", "/a", b"", b"x=1")
    assert request_hash("POST", "/a", b"", b"{}") == request_hash("POST", "/a", b"", b"{}")


def _entry(**override: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "seq": 1,
        "occurred_at": datetime(2026, 11, 29, 6, 0, tzinfo=UTC),
        "actor_type": "client",
        "actor_id": "cli_1",
        "organization_id": "org_1",
        "action": "client.issued",
        "object_type": "api_client",
        "object_id": "cli_2",
        "outcome": "success",
        "request_id": "r1",
        "details": {"organization_id": "org_1"},
        "prev_hash": GENESIS_HASH,
        "hash": "",
    }
    return AuditEntry(**(fields | override))


def test_audit_hash_covers_every_column_and_the_previous_hash():
    base = audit.chain_hash(GENESIS_HASH, _entry())
    assert base == audit.chain_hash(GENESIS_HASH, _entry())
    assert len(base) == 64
    changes: list[dict[str, Any]] = [
        {"seq": 2},
        {"occurred_at": datetime(2026, 11, 29, 6, 0, 0, 1, tzinfo=UTC)},
        {"actor_id": "cli_9"},
        {"action": "client.revoked"},
        {"object_id": "cli_3"},
        {"outcome": "failure"},
        {"details": {"organization_id": "org_2"}},
    ]
    for change in changes:
        assert audit.chain_hash(GENESIS_HASH, _entry(**change)) != base, change
    assert audit.chain_hash("11" * 32, _entry()) != base


def test_canonical_form_is_rfc8785_json():
    assert audit.canonical(_entry()).startswith(b'{"action":"client.issued","actor_id":"cli_1"')

"""Authorisation matrix: every route of the API × every role × own/other organisation's object.

The expected status of each cell is written below. The route list is read from the application,
so a new route with no entry in ``MATRIX`` (or ``PUBLIC``) fails
``test_every_route_has_a_matrix_entry``: authorisation is decided for each route, never forgotten.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from qilian.kit import db
from qilian.kit.settings import get_settings
from services.api.audit import service as audit
from services.api.auth import service as auth_service
from services.api.auth.dependencies import get_principal
from services.api.main import create_app
from services.api.organizations.models import Role
from tests.integration.auth.conftest import Org, bearer, create_org, get_token

ROLES = list(Role)
WRITERS = {Role.supplier, Role.core_firm, Role.bank, Role.guarantor, Role.operator}
READERS = {Role.auditor, Role.regulator, Role.operator}

# routes that take no principal: how to get one, and public keys
PUBLIC = {
    ("POST", "/v1/oauth/token"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


@dataclass
class World:
    own: Org  # the caller's organisation
    spare_client: str  # a second client of the caller's organisation (safe to revoke)
    other: Org  # another organisation (a bank)
    other_clients: list[str]  # clients of `other` (targets for the operator)


def _only(roles: set[Role], yes: int, no: int) -> dict[Role, int]:
    return {role: yes if role in roles else no for role in ROLES}


def _writers(yes: int) -> dict[Role, int]:
    """Writers get ``yes`` on their own objects; read-only roles are 403 for any write."""
    return {role: yes if role in WRITERS else 403 for role in ROLES}


def _org_body() -> dict[str, Any]:
    return {"name": "Matrix Co", "role": "supplier", "tax_id": uuid.uuid4().hex, "tax_scheme": "T"}


# (method, route) -> list of cells: (label, path builder, body builder, expected by role)
Cell = tuple[str, Callable[[World], str], Callable[[], Any] | None, dict[Role, int]]
MATRIX: dict[tuple[str, str], list[Cell]] = {
    ("GET", "/v1/me"): [("self", lambda w: "/v1/me", None, _only(set(ROLES), 200, 0))],
    ("GET", "/v1/organizations"): [
        ("directory", lambda w: "/v1/organizations", None, _only(set(ROLES), 200, 0))
    ],
    ("POST", "/v1/organizations"): [
        ("register", lambda w: "/v1/organizations", _org_body, _only({Role.operator}, 201, 403))
    ],
    ("GET", "/v1/organizations/{organization_id}"): [
        ("own", lambda w: f"/v1/organizations/{w.own.id}", None, _only(set(ROLES), 200, 0)),
        ("other", lambda w: f"/v1/organizations/{w.other.id}", None, _only(set(ROLES), 200, 0)),
        ("missing", lambda w: "/v1/organizations/org_nope", None, _only(set(ROLES), 404, 0)),
    ],
    ("POST", "/v1/organizations/{organization_id}/clients"): [
        (
            "other",
            lambda w: f"/v1/organizations/{w.other.id}/clients",
            None,
            _only({Role.operator}, 201, 403),
        ),
    ],
    ("GET", "/v1/organizations/{organization_id}/clients"): [
        ("own", lambda w: f"/v1/organizations/{w.own.id}/clients", None, _only(set(ROLES), 200, 0)),
        (
            "other",
            lambda w: f"/v1/organizations/{w.other.id}/clients",
            None,
            _only({Role.operator}, 200, 404),
        ),
    ],
    ("POST", "/v1/organizations/{organization_id}/clients/{client_id}/rotate"): [
        (
            "own",
            lambda w: f"/v1/organizations/{w.own.id}/clients/{w.spare_client}/rotate",
            None,
            _writers(200),
        ),
        (
            "other",
            lambda w: f"/v1/organizations/{w.other.id}/clients/{w.other_clients[0]}/rotate",
            None,
            {r: 200 if r == Role.operator else 404 if r in WRITERS else 403 for r in ROLES},
        ),
    ],
    ("POST", "/v1/organizations/{organization_id}/clients/{client_id}/revoke"): [
        (
            "own",
            lambda w: f"/v1/organizations/{w.own.id}/clients/{w.spare_client}/revoke",
            None,
            _writers(200),
        ),
        (
            "other",
            lambda w: f"/v1/organizations/{w.other.id}/clients/{w.other_clients[1]}/revoke",
            None,
            {r: 200 if r == Role.operator else 404 if r in WRITERS else 403 for r in ROLES},
        ),
    ],
    ("POST", "/v1/organizations/{organization_id}/users"): [
        (
            "other",
            lambda w: f"/v1/organizations/{w.other.id}/users",
            lambda: {"username": f"m{uuid.uuid4().hex[:10]}", "password": "correct horse battery"},
            _only({Role.operator}, 201, 403),
        ),
    ],
    ("POST", "/v1/invoices"): [
        ("empty", lambda w: "/v1/invoices", None, _only({Role.supplier}, 422, 403))
    ],
    ("POST", "/v1/invoices/parse"): [
        ("empty", lambda w: "/v1/invoices/parse", None, _only({Role.supplier}, 422, 403))
    ],
    ("POST", "/v1/invoice-imports"): [
        ("empty", lambda w: "/v1/invoice-imports", None, _only({Role.supplier}, 422, 403))
    ],
    ("GET", "/v1/invoice-imports/{import_id}"): [
        (
            "missing",
            lambda w: "/v1/invoice-imports/imp_nope",
            None,
            _only({Role.supplier}, 404, 403),
        )
    ],
    ("PUT", "/v1/core-firms/{organization_id}/payment-terms"): [
        (
            "own",
            lambda w: f"/v1/core-firms/{w.own.id}/payment-terms",
            lambda: {"payment_terms_days": 30},
            {r: 200 if r == Role.core_firm else 404 if r == Role.operator else 403 for r in ROLES},
        ),
        (
            "other",
            lambda w: f"/v1/core-firms/{w.other.id}/payment-terms",
            lambda: {"payment_terms_days": 30},
            _only({Role.core_firm, Role.operator}, 404, 403),
        ),
    ],
    ("GET", "/v1/receivables"): [
        ("own", lambda w: "/v1/receivables", None, _only(set(ROLES), 200, 0))
    ],
    ("GET", "/v1/receivables/{receivable_id}"): [
        ("missing", lambda w: "/v1/receivables/rcv_nope", None, _only(set(ROLES), 404, 0))
    ],
    ("GET", "/v1/receivables/{receivable_id}/events"): [
        ("missing", lambda w: "/v1/receivables/rcv_nope/events", None, _only(set(ROLES), 404, 0))
    ],
    ("GET", "/v1/receivables/{receivable_id}/proof"): [
        ("missing", lambda w: "/v1/receivables/rcv_nope/proof", None, _only(set(ROLES), 404, 0))
    ],
    ("POST", "/v1/receivables/bulk-confirm"): [
        (
            "missing",
            lambda w: "/v1/receivables/bulk-confirm",
            lambda: {"items": [{"receivable_id": "rcv_nope"}]},
            _only({Role.core_firm}, 200, 403),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/confirm"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/confirm",
            dict,
            _only({Role.core_firm}, 404, 403),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/reject"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/reject",
            lambda: {"reason": "not ours"},
            _only({Role.core_firm}, 404, 403),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/cancel"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/cancel",
            lambda: {"reason": "sent by mistake"},
            _only({Role.supplier}, 404, 403),
        )
    ],
    ("GET", "/v1/receivables/{receivable_id}/confirmation-message"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/confirmation-message",
            None,
            _only(set(ROLES), 404, 0),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/split"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/split",
            lambda: {"parts": [{"amount": "1.00"}, {"amount": "2.00"}]},
            _only({Role.supplier}, 404, 403),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/transfer"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/transfer",
            lambda: {"to_organization_id": "org_nope"},
            _only({Role.supplier}, 404, 403),
        )
    ],
    ("GET", "/v1/receivables/{receivable_id}/lineage"): [
        ("missing", lambda w: "/v1/receivables/rcv_nope/lineage", None, _only(set(ROLES), 404, 0))
    ],
    ("POST", "/v1/receivables/{receivable_id}/payments"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/payments",
            lambda: {"amount": "1.00", "paid_at": "2026-03-15", "reference": "r1"},
            _only({Role.core_firm}, 404, 403),
        )
    ],
    ("GET", "/v1/receivables/{receivable_id}/payments"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/payments",
            None,
            _only(set(ROLES), 404, 0),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/write-off"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/write-off",
            lambda: {"reason": "insolvent"},
            _only({Role.supplier, Role.bank}, 404, 403),
        )
    ],
    ("POST", "/v1/receivables/{receivable_id}/disputes"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/disputes",
            lambda: {"reason": "goods damaged"},
            _only({Role.supplier, Role.core_firm}, 404, 403),
        )
    ],
    ("GET", "/v1/receivables/{receivable_id}/disputes"): [
        (
            "missing",
            lambda w: "/v1/receivables/rcv_nope/disputes",
            None,
            _only(set(ROLES), 404, 0),
        )
    ],
    ("POST", "/v1/disputes/{dispute_id}/resolve"): [
        (
            "missing",
            lambda w: "/v1/disputes/dsp_nope/resolve",
            lambda: {"resolution": "credit note issued"},
            _only({Role.supplier, Role.core_firm}, 404, 403),
        )
    ],
    ("GET", "/v1/audit-log"): [("log", lambda w: "/v1/audit-log", None, _only(READERS, 200, 403))],
    ("GET", "/v1/audit-log/verify"): [
        ("verify", lambda w: "/v1/audit-log/verify", None, _only(READERS, 200, 403))
    ],
}

# the marketplace: requesters (suppliers) and banks; a request, offer or financing the caller
# may not see is 404 like a missing one (tests/integration/financing/test_isolation.py)
SUPPLIER_OR_BANK = {Role.supplier, Role.bank}
FINANCING_PARTIES = {Role.supplier, Role.bank, Role.core_firm, Role.guarantor}
_FRQ = "/v1/financing-requests/frq_nope"
_REQUEST = {"receivable_ids": ["rcv_nope"], "closes_at": "2099-01-01T00:00:00Z"}
_OFFER = {
    "advance_rate": "0.9",
    "annual_rate": "0.05",
    "fee": {"amount": "0.00", "currency": "CNY"},
    "day_count": "ACT/360",
    "recourse": False,
}
MATRIX.update(
    {
        ("POST", "/v1/financing-requests"): [
            (
                "missing",
                lambda w: "/v1/financing-requests",
                lambda: dict(_REQUEST),
                _only({Role.supplier}, 422, 403),  # closes_at beyond the longest auction
            )
        ],
        ("GET", "/v1/financing-requests"): [
            ("list", lambda w: "/v1/financing-requests", None, _only(SUPPLIER_OR_BANK, 200, 403))
        ],
        ("GET", "/v1/financing-requests/{request_id}"): [
            ("missing", lambda w: _FRQ, None, _only(SUPPLIER_OR_BANK, 404, 403))
        ],
        ("POST", "/v1/financing-requests/{request_id}/cancel"): [
            ("missing", lambda w: _FRQ + "/cancel", None, _only({Role.supplier}, 404, 403))
        ],
        ("POST", "/v1/financing-requests/{request_id}/offers"): [
            (
                "missing",
                lambda w: _FRQ + "/offers",
                lambda: dict(_OFFER),
                _only({Role.bank}, 404, 403),
            )
        ],
        ("GET", "/v1/financing-requests/{request_id}/offers"): [
            ("missing", lambda w: _FRQ + "/offers", None, _only(SUPPLIER_OR_BANK, 404, 403))
        ],
        ("GET", "/v1/offers"): [
            ("own", lambda w: "/v1/offers", None, _only(SUPPLIER_OR_BANK, 200, 403))
        ],
        ("GET", "/v1/offers/{offer_id}"): [
            ("missing", lambda w: "/v1/offers/ofr_nope", None, _only(SUPPLIER_OR_BANK, 404, 403))
        ],
        ("POST", "/v1/offers/{offer_id}/withdraw"): [
            (
                "missing",
                lambda w: "/v1/offers/ofr_nope/withdraw",
                None,
                _only({Role.bank}, 404, 403),
            )
        ],
        ("POST", "/v1/offers/{offer_id}/accept"): [
            (
                "missing",
                lambda w: "/v1/offers/ofr_nope/accept",
                None,
                _only({Role.supplier}, 404, 403),
            )
        ],
        ("GET", "/v1/financings"): [
            ("own", lambda w: "/v1/financings", None, _only(FINANCING_PARTIES, 200, 403))
        ],
        ("GET", "/v1/financings/{financing_id}"): [
            (
                "missing",
                lambda w: "/v1/financings/fin_nope",
                None,
                _only(FINANCING_PARTIES, 404, 403),
            )
        ],
        ("POST", "/v1/financings/{financing_id}/disbursement"): [
            (
                "missing",
                lambda w: "/v1/financings/fin_nope/disbursement",
                lambda: {"reference": "WIRE-1"},
                _only({Role.bank}, 404, 403),
            )
        ],
    }
)

# webhooks: an organisation's own endpoints and messages (bank, supplier, core firm, guarantor);
# another organisation's are 404 like missing ones (tests/integration/webhooks)
WEBHOOK_OWNERS = {Role.bank, Role.supplier, Role.core_firm, Role.guarantor}
_WHK = "/v1/webhook-endpoints/whk_nope"
MATRIX.update(
    {
        ("GET", "/v1/webhook-event-types"): [
            ("catalogue", lambda w: "/v1/webhook-event-types", None, _only(set(ROLES), 200, 0))
        ],
        ("POST", "/v1/webhook-endpoints"): [
            (
                "create",
                lambda w: "/v1/webhook-endpoints",
                lambda: {"url": "http://127.0.0.1:9/q", "event_types": ["*"]},  # refused at once
                _only(WEBHOOK_OWNERS, 201, 403),
            )
        ],
        ("GET", "/v1/webhook-endpoints"): [
            ("own", lambda w: "/v1/webhook-endpoints", None, _only(WEBHOOK_OWNERS, 200, 403))
        ],
        ("GET", "/v1/webhook-endpoints/{endpoint_id}"): [
            ("missing", lambda w: _WHK, None, _only(WEBHOOK_OWNERS, 404, 403))
        ],
        ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): [
            ("missing", lambda w: _WHK, lambda: {"enabled": False}, _only(WEBHOOK_OWNERS, 404, 403))
        ],
        ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): [
            ("missing", lambda w: _WHK, None, _only(WEBHOOK_OWNERS, 404, 403))
        ],
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): [
            ("missing", lambda w: _WHK + "/rotate-secret", None, _only(WEBHOOK_OWNERS, 404, 403))
        ],
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"): [
            ("missing", lambda w: _WHK + "/test", None, _only(WEBHOOK_OWNERS, 404, 403))
        ],
        ("GET", "/v1/webhook-endpoints/{endpoint_id}/messages"): [
            ("missing", lambda w: _WHK + "/messages", None, _only(WEBHOOK_OWNERS, 404, 403))
        ],
        ("POST", "/v1/webhook-messages/{message_id}/replay"): [
            (
                "missing",
                lambda w: "/v1/webhook-messages/msg_nope/replay",
                None,
                _only(WEBHOOK_OWNERS, 404, 403),
            )
        ],
    }
)


# risk sharing: programmes (guarantors open them, everyone reads them), the pool (the operator
# writes, the regulator and operator read; auditors verify the ledger), claims (their parties
# read them; the guarantor that owes one records paying it)
# (tests/integration/risk)
SUPERVISORS = {Role.regulator, Role.operator}
_PROGRAMME = {
    "name": "Matrix programme",
    "fee_rate": "0.01",
    "loss_shares": [{"party": "guarantor", "share": "1"}],
}
MATRIX.update(
    {
        ("POST", "/v1/guarantee-programmes"): [
            (
                "create",
                lambda w: "/v1/guarantee-programmes",
                lambda: dict(_PROGRAMME),
                _only({Role.guarantor}, 201, 403),
            )
        ],
        ("GET", "/v1/guarantee-programmes"): [
            ("list", lambda w: "/v1/guarantee-programmes", None, _only(set(ROLES), 200, 0))
        ],
        ("GET", "/v1/guarantee-programmes/{programme_id}"): [
            (
                "missing",
                lambda w: "/v1/guarantee-programmes/gpr_nope",
                None,
                _only(set(ROLES), 404, 0),
            )
        ],
        ("GET", "/v1/risk-pool"): [
            ("state", lambda w: "/v1/risk-pool", None, _only(SUPERVISORS, 200, 403))
        ],
        ("POST", "/v1/risk-pool/top-ups"): [
            (
                "top-up",
                lambda w: "/v1/risk-pool/top-ups",
                lambda: {"amount": {"amount": "0.01", "currency": "CNY"}, "reference": "M"},
                _only({Role.operator}, 201, 403),
            )
        ],
        ("POST", "/v1/risk-pool/recoveries"): [
            (
                "missing",
                lambda w: "/v1/risk-pool/recoveries",
                lambda: {
                    "claim_id": "clm_nope",
                    "amount": {"amount": "1.00", "currency": "CNY"},
                    "reference": "M",
                },
                _only({Role.operator}, 404, 403),
            )
        ],
        ("GET", "/v1/risk-pool/ledger/verify"): [
            (
                "verify",
                lambda w: "/v1/risk-pool/ledger/verify",
                None,
                _only(SUPERVISORS | {Role.auditor}, 200, 403),
            )
        ],
        ("GET", "/v1/risk-claims"): [
            (
                "own",
                lambda w: "/v1/risk-claims",
                None,
                _only(SUPERVISORS | {Role.bank, Role.guarantor}, 200, 403),
            )
        ],
        ("POST", "/v1/risk-claims/{claim_id}/payment"): [
            (
                "missing",
                lambda w: "/v1/risk-claims/clm_nope/payment",
                lambda: {"amount": {"amount": "1.00", "currency": "CNY"}, "reference": "M"},
                _only({Role.guarantor}, 404, 403),
            )
        ],
        ("GET", "/v1/stats/clusters"): [
            ("stats", lambda w: "/v1/stats/clusters", None, _only(SUPERVISORS, 200, 403))
        ],
        ("GET", "/v1/alerts"): [
            ("alerts", lambda w: "/v1/alerts", None, _only(SUPERVISORS, 200, 403))
        ],
    }
)


def api_routes(app: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, path, dependant) of every API route, also inside included routers.

    The web pages (``/web``, left out of the OpenAPI document) are not API routes: they resolve
    people by session cookie and answer HTML, and tests/integration/web checks their
    authorisation (roles, CSRF, another organisation's receivable as the 404 page)."""
    for route in app.routes:
        contexts = (
            [route]
            if isinstance(route, APIRoute)
            else list(getattr(route, "effective_route_contexts", list)())
        )
        for ctx in contexts:
            if ctx.path.startswith("/web") and not getattr(ctx, "include_in_schema", True):
                continue
            for method in sorted(ctx.methods or ()):
                if method != "HEAD":
                    yield method, ctx.path, ctx.dependant


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def test_every_route_has_a_matrix_entry(db_engine):
    routes = {(m, p) for m, p, _ in api_routes(create_app(get_settings()))}
    documented = routes - {
        ("GET", p) for p in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
    }
    missing = documented - PUBLIC - set(MATRIX)
    assert not missing, f"routes without an authorisation matrix entry: {sorted(missing)}"
    stale = set(MATRIX) - documented
    assert not stale, f"matrix entries for routes that no longer exist: {sorted(stale)}"


def test_every_non_public_route_resolves_a_principal(db_engine):
    for method, path, dependant in api_routes(create_app(get_settings())):
        if (method, path) in PUBLIC or dependant is None:
            continue
        assert get_principal in set(_calls(dependant)), f"{method} {path} has no principal"


async def _world(role: Role, http: httpx.AsyncClient) -> tuple[World, str]:
    own = await create_org(role)
    other = await create_org(Role.bank)
    async with db.transaction() as session:
        spare = await auth_service.issue_client(session, audit.SYSTEM, own.id)
        extra = [await auth_service.issue_client(session, audit.SYSTEM, other.id) for _ in range(2)]
    world = World(own, spare.client_id, other, [c.client_id for c in extra])
    return world, await get_token(http, own)


CASES = [
    pytest.param(key, cell, id=f"{key[0]} {key[1]} [{cell[0]}]")
    for key, cells in MATRIX.items()
    for cell in cells
]


@pytest.mark.parametrize(("key", "cell"), CASES)
async def test_matrix(http, key, cell):
    method, _ = key
    _label, path_of, body_of, expected = cell
    unexpected = []
    for role in ROLES:
        world, token = await _world(role, http)
        path = path_of(world)
        body = body_of() if body_of else None
        response = await http.request(method, path, json=body, headers=bearer(token))
        if response.status_code != expected[role]:
            unexpected.append(
                (role.value, response.status_code, expected[role], response.text[:200])
            )
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
        anonymous = await http.request(method, path, json=body)
        if anonymous.status_code != 401:
            unexpected.append(("anonymous", anonymous.status_code, 401, anonymous.text[:200]))
    assert not unexpected, unexpected

"""Rate limits counted in PostgreSQL, shared by every replica: 429 problem+json, Retry-After."""

import asyncio
import uuid

import pytest

from services.api.auth import ratelimit
from services.api.auth.settings import AuthSettings
from services.api.main import create_app
from services.api.organizations.models import Role
from tests.integration.auth.conftest import RELAXED, bearer, client_for, get_token

HOUR = 3600  # a long window, so that no test straddles a window boundary


def _ip() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}"


async def test_token_endpoint_is_limited_per_ip(app, make_org):
    org = await make_org(Role.bank)
    app.state.auth_settings = RELAXED.model_copy(
        update={"rate_window_seconds": HOUR, "token_per_ip": 3}
    )
    form = {"grant_type": "client_credentials", "client_id": "cli_x", "client_secret": "nope"}
    async with client_for(app, ip=_ip()) as http:
        statuses = [(await http.post("/v1/oauth/token", data=form)).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        limited = await http.post(
            "/v1/oauth/token",
            data=form | {"client_id": org.client_id, "client_secret": org.client_secret},
        )
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= HOUR
    assert limited.json()["status"] == 429
    async with client_for(app, ip=_ip()) as other_ip:  # another caller is unaffected
        assert (await get_token(other_ip, org)).count(".") == 2


async def test_token_endpoint_is_limited_per_client_across_ips(app, make_org):
    org = await make_org(Role.bank)
    app.state.auth_settings = RELAXED.model_copy(
        update={"rate_window_seconds": HOUR, "token_per_client": 2}
    )
    for _ in range(2):
        async with client_for(app, ip=_ip()) as http:
            await get_token(http, org)
    async with client_for(app, ip=_ip()) as http:
        response = await http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": org.client_id,
                "client_secret": org.client_secret,
            },
        )
    assert response.status_code == 429
    assert "retry-after" in response.headers


async def test_writes_are_limited_per_principal_and_shared_by_replicas(make_org, db_engine):
    """Two app instances (two replicas) count against one PostgreSQL counter."""
    operator, target = await make_org(Role.operator), await make_org(Role.supplier)
    limits = RELAXED.model_copy(update={"rate_window_seconds": HOUR, "writes_per_principal": 3})
    replicas = [create_app(), create_app()]
    for replica in replicas:
        replica.state.auth_settings = limits
    async with client_for(replicas[0], ip=_ip()) as http:
        token = await get_token(http, operator)
    statuses = []
    for n in range(4):
        async with client_for(replicas[n % 2], ip=_ip()) as http:
            response = await http.post(
                f"/v1/organizations/{target.id}/clients", headers=bearer(token)
            )
            statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 429]
    assert "retry-after" in response.headers
    # reads are not counted as writes
    async with client_for(replicas[0], ip=_ip()) as http:
        assert (await http.get("/v1/me", headers=bearer(token))).status_code == 200


async def test_writes_are_limited_per_ip(app, make_org):
    app.state.auth_settings = RELAXED.model_copy(
        update={"rate_window_seconds": HOUR, "writes_per_ip": 2}
    )
    target = await make_org(Role.bank)
    ip = _ip()
    statuses = []
    for _ in range(3):
        operator = await make_org(Role.operator)  # a fresh principal each time
        async with client_for(app, ip=ip) as http:
            token = await get_token(http, operator)
            response = await http.post(
                f"/v1/organizations/{target.id}/clients", headers=bearer(token)
            )
            statuses.append(response.status_code)
    assert statuses == [201, 201, 429]


def test_default_limits_are_set():
    config = AuthSettings()
    assert config.token_per_ip > 0
    assert config.writes_per_principal > 0


async def test_many_concurrent_writes_do_not_starve_the_connection_pool(http, make_org):
    """Each write holds a connection of the main pool (5 + 10 overflow) while it counts its rate
    limit; the counters use a pool of their own, so 40 concurrent writes all complete."""
    operator, target = await make_org(Role.operator), await make_org(Role.bank)
    token = await get_token(http, operator)
    responses = await asyncio.wait_for(
        asyncio.gather(
            *(
                http.post(f"/v1/organizations/{target.id}/clients", headers=bearer(token))
                for _ in range(40)
            )
        ),
        timeout=25,
    )
    assert [r.status_code for r in responses] == [201] * 40


async def test_a_count_whose_request_is_cancelled_still_commits_and_leaves_no_lock(app):
    """The request is cancelled (its client gone, a timeout) as the counter's upsert goes out:
    the count still runs to its commit (a request cut off is still counted — else cancelling
    would be a way round the limit), no connection is left idle in transaction on the bucket's
    row, and the next count goes through."""
    from sqlalchemy import event, text

    bucket = f"test:cancel:{uuid.uuid4().hex}"
    engine = ratelimit._engine()
    request: dict[str, asyncio.Task[None]] = {}

    def cancel_at_upsert(conn, cursor, statement, parameters, context, executemany) -> None:
        if "rate_limit_counters" in statement and bucket in str(parameters):
            request["task"].cancel()

    event.listen(engine.sync_engine, "before_cursor_execute", cancel_at_upsert)
    try:
        request["task"] = asyncio.create_task(ratelimit.hit(ratelimit.Limit(bucket, 100, HOUR)))
        with pytest.raises(asyncio.CancelledError):
            await request["task"]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", cancel_at_upsert)
    await asyncio.wait_for(ratelimit.hit(ratelimit.Limit(bucket, 100, HOUR)), timeout=10)
    async with engine.connect() as conn:
        hits = await conn.scalar(
            text("SELECT hits FROM platform.rate_limit_counters WHERE bucket = :b"), {"b": bucket}
        )
        idle = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
                " AND application_name = 'qilian-ratelimit'"
            )
        )
    assert hits == 2  # the cancelled request was counted too
    assert idle == 0


async def test_a_bucket_locked_elsewhere_lets_the_request_through_after_the_lock_timeout(app):
    """A bucket's row held by a transaction that never ends (a stuck replica): the count gives up
    after the lock timeout and the request is served instead of queueing for ever."""
    from sqlalchemy import text

    bucket = f"test:stuck:{uuid.uuid4().hex}"
    await ratelimit.hit(ratelimit.Limit(bucket, 100, HOUR))
    engine = ratelimit._engine()
    async with engine.connect() as holder:
        await holder.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
        await holder.execute(
            text("SELECT 1 FROM platform.rate_limit_counters WHERE bucket = :b FOR UPDATE"),
            {"b": bucket},
        )
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(ratelimit.hit(ratelimit.Limit(bucket, 100, HOUR)), timeout=30)
        waited = asyncio.get_running_loop().time() - started
        await holder.rollback()
    assert waited >= ratelimit._LOCK_MS / 1000 * 0.9  # it did wait for the lock, then gave up

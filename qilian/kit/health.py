"""Liveness and readiness shared by every HTTP service.

``/healthz`` answers while the process runs. ``/readyz`` answers 200 only when the database, the
broker and the chain all answer, and 503 naming what failed otherwise. Each check has its own
short timeout and runs concurrently with the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from kombu import Connection

from qilian.kit import broker, db
from qilian.kit.settings import Settings

Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT = 3.0


class CheckFailed(Exception):
    """A dependency answered, but not as it should."""


async def check_database() -> None:
    await db.ping()


def _broker_roundtrip(url: str, queue: str) -> None:
    broker.register()  # declaring the queue races the worker's and beat's on a fresh broker
    with Connection(url, connect_timeout=CHECK_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1, timeout=int(CHECK_TIMEOUT))
        if conn.transport.driver_type == "sqlalchemy":
            # a virtual transport connects lazily: make it touch its database
            channel: Any = conn.default_channel
            channel.queue_declare(queue=queue)


def broker_check(settings: Settings) -> Check:
    async def check_broker() -> None:
        await asyncio.to_thread(_broker_roundtrip, settings.broker_url, settings.task_queue)

    return check_broker


async def rpc_call(rpc_url: str, method: str, params: list[object]) -> object:
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        response = await client.post(
            rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        )
        response.raise_for_status()
        body = response.json()
    if "error" in body:
        raise CheckFailed(str(body["error"]))
    return body["result"]


def chain_check(
    settings: Settings, contract: Callable[[], Awaitable[str | None]] | None = None
) -> Check:
    """The RPC answers with the configured chain id (and, if given, code is at the contract)."""

    async def check_chain() -> None:
        chain_id = int(str(await rpc_call(settings.rpc_url, "eth_chainId", [])), 16)
        if chain_id != settings.chain_id:
            raise CheckFailed(f"chain id {chain_id}, expected {settings.chain_id}")
        if contract is not None:
            address = await contract()
            if address is None:
                raise CheckFailed("contracts not deployed")
            code = await rpc_call(settings.rpc_url, "eth_getCode", [address, "latest"])
            if code in ("0x", "0x0", None):
                raise CheckFailed(f"no contract code at {address}")

    return check_chain


async def _run(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT + 1)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # any failure makes the check fail, by name
        return f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return "ok"


def health_router(checks: dict[str, Check]) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: database, broker and chain",
        responses={503: {"description": "a dependency failed; `checks` names it"}},
    )
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run(checks[name]) for name in names))
        report = dict(zip(names, results, strict=True))
        ready = all(result == "ok" for result in results)
        body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": report}
        if not ready:
            body["failed"] = [name for name, result in report.items() if result != "ok"]
        return JSONResponse(body, status_code=200 if ready else 503)

    return router

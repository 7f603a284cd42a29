"""Deploy the contracts once per chain and remember where they are.

``ensure_deployed`` is idempotent: a contract recorded for this chain whose code is still there is
kept; one missing (a wiped development chain) is deployed again and the record updated.
"""

from __future__ import annotations

import asyncio

import structlog
from eth_account import Account
from sqlalchemy.ext.asyncio import AsyncSession
from web3 import Web3

from qilian.kit.settings import Settings
from services.ledger.chain.artifacts import deploy_contract
from services.ledger.deployments import repository

log = structlog.get_logger(__name__)

CONTRACTS = ("ReceivableAnchor", "FinancingRegistry")


def _has_code(w3: Web3, address: str) -> bool:
    return len(w3.eth.get_code(Web3.to_checksum_address(address))) > 0


async def ensure_deployed(session: AsyncSession, settings: Settings) -> dict[str, str]:
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 30}))
    chain_id = await asyncio.to_thread(lambda: w3.eth.chain_id)
    if chain_id != settings.chain_id:
        raise RuntimeError(
            f"RPC chain id {chain_id} differs from QILIAN_CHAIN_ID {settings.chain_id}"
        )
    operator = Account.from_key(settings.anchorer_private_key).address
    known = await repository.for_chain(session, chain_id)
    addresses: dict[str, str] = {}
    for name in CONTRACTS:
        pinned = settings.contract_address(name)
        if pinned:
            addresses[name] = pinned
            continue
        record = known.get(name)
        if record is not None and await asyncio.to_thread(_has_code, w3, record.address):
            addresses[name] = record.address
            continue
        if record is not None:
            log.warning("contract_missing_redeploying", name=name, address=record.address)
        address, tx_hash = await asyncio.to_thread(
            deploy_contract, w3, name, settings.anchorer_private_key, operator
        )
        await repository.upsert(session, chain_id, name, address, tx_hash)
        log.info("contract_deployed", name=name, address=address, tx_hash=tx_hash)
        addresses[name] = address
    return addresses


async def addresses(session: AsyncSession, settings: Settings) -> dict[str, str]:
    known = await repository.for_chain(session, settings.chain_id)
    result = {name: row.address for name, row in known.items()}
    for name in CONTRACTS:
        pinned = settings.contract_address(name)
        if pinned:
            result[name] = pinned
    return result

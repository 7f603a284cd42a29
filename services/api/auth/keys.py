"""Access-token signing keys: Ed25519 (JWS ``EdDSA``), kept in ``platform.signing_keys``.

The private key is stored encrypted with AES-256-GCM under a key derived from
``settings.secret_key`` by HKDF-SHA256 (the ``kid`` is the associated data, so a ciphertext cannot
be moved to another row). The newest key not retired signs; every key not retired verifies and is
published at ``/.well-known/jwks.json``. Rotation adds a key (it signs from then on) and retires the
keys that were superseded longer ago than an access token lives, so no valid token loses its key.
Keys are read from the database on each use, so every replica sees a rotation at once.
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.api.auth.models import SigningKey

ALGORITHM = "EdDSA"
_CREATE_LOCK = 0x5149_4C49_414E_0B01  # serialises key creation across replicas


def _aead(secret_key: str, purpose: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"qilian/" + purpose)
    return AESGCM(hkdf.derive(secret_key.encode()))


def seal(secret_key: str, purpose: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM under a key derived from the platform secret: nonce ‖ ciphertext."""
    nonce = os.urandom(12)
    return nonce + _aead(secret_key, purpose).encrypt(nonce, plaintext, associated)


def unseal(secret_key: str, purpose: bytes, sealed: bytes, associated: bytes) -> bytes:
    return _aead(secret_key, purpose).decrypt(sealed[:12], sealed[12:], associated)


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    private_key: Ed25519PrivateKey


def new_kid() -> str:
    return f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(6)}"


async def create_key(session: AsyncSession, secret_key: str) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = new_kid()
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    row = SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_jwk=jwk,
        private_key_encrypted=seal(secret_key, b"signing-key", raw, kid.encode()),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return row


async def live_keys(session: AsyncSession) -> list[SigningKey]:
    """Keys not retired, newest first."""
    result = await session.execute(
        select(SigningKey)
        .where(col(SigningKey.retired_at).is_(None))
        .order_by(col(SigningKey.created_at).desc(), col(SigningKey.kid).desc())
    )
    return list(result.scalars())


async def signing_key(session: AsyncSession, secret_key: str) -> ActiveKey:
    """The newest live key; the first one is made on first use."""
    keys = await live_keys(session)
    if not keys:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
        keys = await live_keys(session) or [await create_key(session, secret_key)]
    newest = keys[0]
    raw = unseal(secret_key, b"signing-key", newest.private_key_encrypted, newest.kid.encode())
    return ActiveKey(newest.kid, Ed25519PrivateKey.from_private_bytes(raw))


async def verification_key(session: AsyncSession, kid: str) -> Ed25519PublicKey | None:
    row = await session.get(SigningKey, kid)
    if row is None or row.retired_at is not None or row.algorithm != ALGORITHM:
        return None
    key = OKPAlgorithm.from_jwk(row.public_jwk)
    return key if isinstance(key, Ed25519PublicKey) else None


async def jwks(session: AsyncSession) -> dict[str, Any]:
    return {"keys": [row.public_jwk for row in await live_keys(session)]}


@dataclass(frozen=True)
class Rotation:
    new_kid: str
    retired: list[str]


async def rotate(session: AsyncSession, secret_key: str, token_seconds: int) -> Rotation:
    """A new key signs from now; keys superseded longer ago than a token lives are retired."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
    keys = await live_keys(session)
    new = await create_key(session, secret_key)
    now = datetime.now(UTC)
    retired = []
    # keys[i] was superseded when keys[i-1] was created; keys[0] is superseded now
    for newer, older in itertools.pairwise(keys):
        assert newer.created_at is not None
        if newer.created_at < now - timedelta(seconds=token_seconds):
            retired.append(older.kid)
    if retired:
        await retire(session, retired)
    return Rotation(new.kid, retired)


async def retire(session: AsyncSession, kids: list[str]) -> int:
    """Stop verifying with these keys at once (a compromised key, or one no token can still use)."""
    result = await session.execute(
        update(SigningKey)
        .where(col(SigningKey.kid).in_(kids), col(SigningKey.retired_at).is_(None))
        .values(retired_at=datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0)

"""Content-addressed storage of original files: the key of a blob is the sha256 of its bytes.

:class:`BlobStore` is the small interface intake needs; two implementations:

- :class:`LocalBlobStore` (the default): ``<root>/ab/cd/<sha256>`` under ``QILIAN_VAR_DIR/blobs``
  (or ``QILIAN_INTAKE_BLOB_DIR``), written to a temporary file and renamed, so a reader never sees
  half a blob and two writers of the same bytes are harmless;
- :class:`S3BlobStore`: any S3-compatible bucket (AWS S3, MinIO, Ceph RGW …) over plain HTTPS with
  AWS Signature Version 4, path-style addressing (``QILIAN_INTAKE_BLOB_STORE=s3`` and the
  ``QILIAN_INTAKE_S3_*`` settings).

Putting the same bytes twice stores them once. A blob written by a transaction that then rolled
back stays, unreferenced: harmless, since its name is its content.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx

from qilian.kit.settings import Settings
from services.api.invoices.settings import IntakeSettings


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_key(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("a blob key is a lowercase hex sha256")
    return sha256


class BlobStore(Protocol):
    async def put(self, data: bytes) -> str:
        """Store ``data``; returns its sha256 (hex)."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; ``FileNotFoundError`` when absent."""
        ...

    async def exists(self, sha256: str) -> bool: ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        key = _check_key(sha256)
        return self.root / key[:2] / key[2:4] / key

    def _put(self, data: bytes, key: str) -> None:
        target = self.path(key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        await asyncio.to_thread(self._put, data, key)
        return key

    async def get(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.path(sha256).read_bytes)

    async def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()


class S3BlobStore:
    """An S3-compatible bucket, objects ``<prefix><sha256>``, signed with SigV4."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key_id: str,
        secret_access_key: str,
        *,
        region: str = "us-east-1",
        prefix: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint_url.rstrip("/")
        self.bucket = bucket
        self.access_key_id = access_key_id
        self.secret = secret_access_key
        self.region = region
        self.prefix = prefix
        self.transport = transport

    def _path(self, sha256: str) -> str:
        return f"/{quote(self.bucket)}/{quote(self.prefix + _check_key(sha256))}"

    def sign(
        self, method: str, path: str, body: bytes, now: datetime | None = None
    ) -> dict[str, str]:
        """The headers of an AWS Signature Version 4 request (service ``s3``)."""
        now = now or datetime.now(UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = now.strftime("%Y%m%d")
        host = httpx.URL(self.endpoint).netloc.decode()
        payload_hash = sha256_hex(body)
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                path,
                "",
                "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                signed,
                payload_hash,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, sha256_hex(canonical.encode())])
        key = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key_id}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers

    async def _request(self, method: str, sha256: str, body: bytes = b"") -> httpx.Response:
        path = self._path(sha256)
        headers = self.sign(method, path, body)
        async with httpx.AsyncClient(transport=self.transport, timeout=30.0) as client:
            return await client.request(
                method, self.endpoint + path, content=body or None, headers=headers
            )

    async def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        if not await self.exists(key):
            response = await self._request("PUT", key, data)
            response.raise_for_status()
        return key

    async def get(self, sha256: str) -> bytes:
        response = await self._request("GET", sha256)
        if response.status_code == 404:
            raise FileNotFoundError(sha256)
        response.raise_for_status()
        return response.content

    async def exists(self, sha256: str) -> bool:
        response = await self._request("HEAD", sha256)
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True


def blob_store(settings: Settings, intake: IntakeSettings) -> BlobStore:
    """The configured store."""
    if intake.blob_store == "s3":
        missing = [
            name
            for name, value in {
                "QILIAN_INTAKE_S3_ENDPOINT_URL": intake.s3_endpoint_url,
                "QILIAN_INTAKE_S3_BUCKET": intake.s3_bucket,
                "QILIAN_INTAKE_S3_ACCESS_KEY_ID": intake.s3_access_key_id,
                "QILIAN_INTAKE_S3_SECRET_ACCESS_KEY": intake.s3_secret_access_key,
            }.items()
            if not value
        ]
        if missing:
            raise ValueError(f"the S3 blob store needs {', '.join(missing)}")
        return S3BlobStore(
            str(intake.s3_endpoint_url),
            str(intake.s3_bucket),
            str(intake.s3_access_key_id),
            str(intake.s3_secret_access_key),
            region=intake.s3_region,
            prefix=intake.s3_prefix,
        )
    return LocalBlobStore(intake.blob_dir or settings.var_dir / "blobs")

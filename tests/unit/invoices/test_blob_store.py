"""The blob stores: content-addressed, idempotent puts, the S3 store's requests (against a fake
S3 endpoint: path-style object URLs, SigV4 headers)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest

from qilian.kit.settings import Settings
from services.api.invoices.blobs import LocalBlobStore, S3BlobStore, blob_store
from services.api.invoices.settings import IntakeSettings


async def test_local_store_is_content_addressed(tmp_path: Path):
    store = LocalBlobStore(tmp_path)
    key = await store.put(b"invoice")
    assert key == hashlib.sha256(b"invoice").hexdigest()
    assert await store.put(b"invoice") == key
    assert store.path(key) == tmp_path / key[:2] / key[2:4] / key
    assert await store.get(key) == b"invoice"
    assert await store.exists(key)
    assert not await store.exists("0" * 64)
    with pytest.raises(FileNotFoundError):
        await store.get("0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        store.path("../../etc/passwd")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [key]


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        assert re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=AKID/\d{8}/eu-west-1/s3/aws4_request, "
            r"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}",
            auth,
        ), auth
        assert (
            request.headers["x-amz-content-sha256"] == hashlib.sha256(request.content).hexdigest()
        )
        path = request.url.path
        assert path.startswith("/bucket/inv/")
        if request.method == "PUT":
            self.puts += 1
            self.objects[path] = request.content
            return httpx.Response(200)
        if path not in self.objects:
            return httpx.Response(404)
        return httpx.Response(200, content=b"" if request.method == "HEAD" else self.objects[path])


async def test_s3_store_puts_once_and_reads_back():
    fake = FakeS3()
    store = S3BlobStore(
        "https://s3.example.test",
        "bucket",
        "AKID",
        "secret",
        region="eu-west-1",
        prefix="inv/",
        transport=httpx.MockTransport(fake),
    )
    key = await store.put(b"<Invoice/>")
    assert await store.put(b"<Invoice/>") == key
    assert fake.puts == 1
    assert await store.get(key) == b"<Invoice/>"
    assert await store.exists(key)
    with pytest.raises(FileNotFoundError):
        await store.get("f" * 64)


def test_the_configured_store(tmp_path: Path):
    settings = Settings(var_dir=tmp_path)
    local = blob_store(settings, IntakeSettings())
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / "blobs"
    with pytest.raises(ValueError, match="QILIAN_INTAKE_S3_BUCKET"):
        blob_store(settings, IntakeSettings(blob_store="s3", s3_endpoint_url="https://x"))

"""``qilian sign-confirmation``: a core firm signs the EIP-712 confirmation (确权) of a receivable
with its key file, and optionally sends the signed confirmation.

The typed data comes from ``GET /v1/receivables/{id}/confirmation-message`` (fetched with the core
firm's client credentials, or read from a file saved earlier). The signature printed is what
``POST /v1/receivables/{id}/confirm`` takes and what ``cast wallet verify --data`` checks.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from services.api.receivables import signatures


def read_key(path: Path) -> str:
    """A private key from a file: hex (``0x…`` or bare), or JSON with ``signing_key``."""
    text = path.read_text().strip()
    if text.startswith("{"):
        document = json.loads(text)
        text = str(document.get("signing_key") or document.get("private_key") or "")
    key = text if text.startswith("0x") else "0x" + text
    if len(key) != 66:
        raise typer.BadParameter("the key file holds no 32-byte hex private key")
    return key


def _typed(document: dict[str, Any]) -> dict[str, Any]:
    typed = document.get("typed_data", document)
    if not isinstance(typed, dict) or "domain" not in typed or "message" not in typed:
        raise typer.BadParameter("not EIP-712 typed data (nor a confirmation-message answer)")
    return typed


async def fetch_and_confirm(
    api: str,
    receivable_id: str,
    client_id: str,
    client_secret: str,
    key: str,
    send: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    async with httpx.AsyncClient(base_url=api, timeout=30, transport=transport) as client:
        token = await client.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        message = await client.get(
            f"/v1/receivables/{receivable_id}/confirmation-message", headers=headers
        )
        if message.status_code != 200:
            raise typer.BadParameter(f"the API answered {message.status_code}: {message.text}")
        typed = _typed(message.json())
        signature = signatures.sign(typed, key)
        answer = None
        if send:
            confirmed = await client.post(
                f"/v1/receivables/{receivable_id}/confirm",
                json={"signature": signature},
                headers=headers,
            )
            answer = {"status": confirmed.status_code, "body": confirmed.json()}
    return typed, signature, answer


def sign_confirmation(
    key_file: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="the core firm's private key file")
    ],
    receivable_id: Annotated[
        str | None, typer.Argument(help="fetch the message of this receivable from --api")
    ] = None,
    typed_data: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="sign typed data saved in this file"),
    ] = None,
    api: Annotated[str, typer.Option(envvar="QILIAN_API_URL")] = "http://127.0.0.1:8000",
    client_id: Annotated[str | None, typer.Option(envvar="QILIAN_CLIENT_ID")] = None,
    client_secret: Annotated[
        str | None, typer.Option(envvar="QILIAN_CLIENT_SECRET", help="prefer the env variable")
    ] = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="also send the confirmation")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Sign a receivable's EIP-712 confirmation with the key file; print the signature."""
    key = read_key(key_file)
    answer = None
    if typed_data is not None:
        typed = _typed(json.loads(typed_data.read_text()))
        signature = signatures.sign(typed, key)
    elif receivable_id is not None:
        if not client_id or not client_secret:
            raise typer.BadParameter("--client-id and --client-secret (or env) are required")
        typed, signature, answer = asyncio.run(
            fetch_and_confirm(api, receivable_id, client_id, client_secret, key, confirm)
        )
    else:
        raise typer.BadParameter("give a RECEIVABLE_ID (with --api) or --typed-data FILE")
    if as_json:
        document = {
            "signature": signature,
            "signer": signatures.address_of(key),
            "typed_data": typed,
            "confirmation": answer,
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(signature)
    if answer is not None and answer["status"] != 200:
        typer.echo(json.dumps(answer["body"]), err=True)
        raise typer.Exit(1)

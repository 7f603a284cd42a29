"""``qilian upload PATH… --api URL``: upload invoice files (and every file under folders) to the
platform's ``POST /v1/invoices`` with the supplier's client credentials.

Only HTTP: the command needs the API's address and a client id and secret (options, or
``QILIAN_CLIENT_ID`` / ``QILIAN_CLIENT_SECRET``), nothing else of the platform. Each upload sends
the file's bytes as the request body with an ``Idempotency-Key`` derived from its sha256, so
re-running the command after an interruption never creates anything twice. A progress bar follows
the uploads; the summary table counts created, diluted (credit notes), duplicate and refused files
and lists each refusal with its reason. Exit status 0 when nothing was refused, 1 when anything
was (2 for a usage error or no credentials).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SKIPPED_NAMES = frozenset({".DS_Store", "Thumbs.db"})


@dataclass(frozen=True)
class Outcome:
    path: Path
    outcome: str  # created | diluted | duplicate | refused
    status: int
    receivable_id: str | None = None
    reason: str | None = None
    detail: str | None = None


def collect(paths: list[Path]) -> list[Path]:
    """The files named, and every file under the folders named (sorted, hidden files skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.name not in SKIPPED_NAMES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise typer.BadParameter(f"{path} is neither a file nor a folder")
    return list(dict.fromkeys(files))


CONTENT_TYPES = {
    ".xml": "application/xml",
    ".pdf": "application/pdf",
    ".json": "application/json",
    ".csv": "text/csv",
    ".ofd": "application/zip",
    ".zip": "application/zip",
}


def content_type_of(path: Path) -> str:
    """A hint only: the API decides the format from the content."""
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def classify(path: Path, response: httpx.Response) -> Outcome:
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 201:
        receivable = body.get("receivable") or {}
        return Outcome(path, str(body.get("outcome", "created")), 201, receivable.get("id"))
    if response.status_code == 409 and body.get("reason") == "duplicate":
        return Outcome(path, "duplicate", 409, body.get("receivable_id"), "duplicate")
    return Outcome(
        path,
        "refused",
        response.status_code,
        reason=str(body.get("reason") or body.get("title") or response.reason_phrase),
        detail=str(body.get("detail") or "")[:300],
    )


async def get_token(client: httpx.AsyncClient, client_id: str, client_secret: str) -> str:
    response = await client.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    if response.status_code != 200:
        raise PermissionError(f"the API refused the client credentials ({response.status_code})")
    return str(response.json()["access_token"])


async def upload_all(
    api: str,
    files: list[Path],
    client_id: str,
    client_secret: str,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    request_timeout: float = 60.0,
) -> list[Outcome]:
    """Upload every file; an outcome per file in the order given."""
    async with httpx.AsyncClient(
        base_url=api, transport=transport, timeout=request_timeout
    ) as client:
        token = await get_token(client, client_id, client_secret)
        headers = {"Authorization": f"Bearer {token}"}
        gate = asyncio.Semaphore(max(1, concurrency))
        task = progress.add_task("uploading", total=len(files)) if progress else None

        async def one(path: Path) -> Outcome:
            async with gate:
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except OSError as exc:
                    return Outcome(path, "refused", 0, reason="unreadable", detail=str(exc))
                key = "qilian-upload-" + hashlib.sha256(data).hexdigest()
                try:
                    # the raw bytes as the body (not multipart, whose random boundary would make
                    # a retry a different request for the Idempotency-Key)
                    response = await client.post(
                        "/v1/invoices",
                        content=data,
                        headers={
                            **headers,
                            "Idempotency-Key": key,
                            "Content-Type": content_type_of(path),
                        },
                    )
                    outcome = classify(path, response)
                except httpx.HTTPError as exc:
                    outcome = Outcome(path, "refused", 0, reason="unreachable", detail=str(exc))
                if progress is not None and task is not None:
                    progress.advance(task)
                return outcome

        return list(await asyncio.gather(*(one(path) for path in files)))


def summary(outcomes: list[Outcome]) -> tuple[Table, Table | None]:
    counts = Counter(o.outcome for o in outcomes)
    totals = Table(title="Invoices uploaded")
    for name in ("created", "diluted", "duplicate", "refused"):
        totals.add_column(name, justify="right")
    totals.add_row(*(str(counts.get(n, 0)) for n in ("created", "diluted", "duplicate", "refused")))
    refused = [o for o in outcomes if o.outcome == "refused"]
    if not refused:
        return totals, None
    details = Table(title="Refused")
    details.add_column("file")
    details.add_column("status", justify="right")
    details.add_column("reason")
    details.add_column("detail")
    for o in refused:
        details.add_row(
            escape(str(o.path)),
            str(o.status or "-"),
            escape(o.reason or ""),
            escape(o.detail or ""),
        )
    return totals, details


def upload(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="invoice files, or folders of them")
    ],
    api: Annotated[str, typer.Option("--api", envvar="QILIAN_API_URL", help="the API's base URL")],
    client_id: Annotated[
        str | None, typer.Option(envvar="QILIAN_CLIENT_ID", help="the supplier's API client id")
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(envvar="QILIAN_CLIENT_SECRET", help="its secret (prefer the env variable)"),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="uploads in flight")] = 8,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 60.0,
) -> None:
    """Upload invoices; print created / diluted / duplicate / refused.

    Exit status 1 when any file was refused.
    """
    console = Console()
    if not client_id or not client_secret:
        console.print(
            "[red]client credentials needed: --client-id/--client-secret or "
            "QILIAN_CLIENT_ID/QILIAN_CLIENT_SECRET[/]"
        )
        raise typer.Exit(2)
    files = collect(paths)
    if not files:
        console.print("no files to upload")
        raise typer.Exit(0)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        try:
            outcomes = asyncio.run(
                upload_all(
                    api,
                    files,
                    client_id,
                    client_secret,
                    concurrency=concurrency,
                    progress=progress,
                    request_timeout=timeout,
                )
            )
        except (PermissionError, httpx.HTTPError) as exc:
            console.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(2) from None
    totals, details = summary(outcomes)
    console.print(totals)
    if details is not None:
        console.print(details)
        raise typer.Exit(1)

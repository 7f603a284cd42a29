"""``qilian verify BUNDLE… --rpc-url URL``: check proof bundles with nothing but the files and a
chain.

No database, no platform API, no configuration: the command reads the bundle files, recomputes
every hash from the records (``services.ledger.records``, the reference implementation of
docs/anchoring.md) and asks the RPC endpoint for the anchored root (``batches(uint64)``), the
contract's own proof check (``verifyEntry``), the anchoring transaction and its block. Each step is
printed with the values compared; with several bundles of one receivable the ``prev`` chain between
them is followed too. Exit status 0 only if every step of every bundle and every history holds,
1 otherwise (2 for a usage error).

A file may hold one bundle, a JSON array of bundles, or the body of the ledger's
``GET /v1/proofs/receivables/{id}`` (its anchored events' bundles); ``-`` reads standard input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from services.ledger.records.keccak import ensure_keccak_backend
from services.ledger.records.verification import (
    RpcChainReader,
    Step,
    Unreadable,
    VerificationReport,
    bundles_in,
    load_json,
    verify_bundles,
)

_MARKS = {"ok": "[green]✓[/]", "failed": "[bold red]✗[/]", "skipped": "[yellow]–[/]"}


def read_bundles(paths: list[str]) -> list[tuple[str, object]]:
    """``(source, bundle JSON)`` for every bundle in the files; unreadable files stay in the list
    as :class:`Unreadable`, so they are reported (and fail) like any broken bundle."""
    items: list[tuple[str, object]] = []
    for name in paths:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            items.append((name, Unreadable(f"cannot read {name}: {exc}")))
            continue
        try:
            document = load_json(text)
        except ValueError as exc:
            items.append((name, Unreadable(f"{name} is not JSON: {exc}")))
            continue
        found = bundles_in(document, "stdin" if name == "-" else name)
        if not found:
            items.append((name, Unreadable(f"{name} holds no bundle")))
        items.extend(found)
    return items


def _steps_table(steps: list[Step]) -> Padding:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")
    for step in steps:
        table.add_row(_MARKS[step.status], step.name, escape(step.detail))
    return Padding(table, (0, 0, 0, 2))


def render(report: VerificationReport, console: Console) -> None:
    """The report for people: one block per bundle and per history, then the verdict."""
    for bundle in report.bundles:
        title = f"[bold]{escape(bundle.source)}[/]"
        if bundle.event_id is not None:
            title += (
                f" — event {escape(bundle.event_id)}, receivable "
                f"{escape(bundle.receivable_id or '')} seq {bundle.seq}, batch {bundle.batch_id}"
            )
        console.print(title)
        console.print(_steps_table(bundle.steps))
        if bundle.ok and bundle.anchored_at:
            console.print(f"  [green]anchored at {bundle.anchored_at}[/]")
        console.print()
    for history in report.histories:
        span = f"seq {history.seqs[0]}–{history.seqs[-1]}" if history.seqs else "no events"
        console.print(f"[bold]history of {escape(history.receivable_id)}[/] ({span})")
        console.print(_steps_table(history.steps))
        console.print()
    verdict = "[bold green]VERIFIED[/]" if report.ok else "[bold red]NOT VERIFIED[/]"
    console.print(f"{verdict}  {escape(report.summary)}")


def verify(
    bundles: Annotated[
        list[str],
        typer.Argument(
            metavar="BUNDLE", help="bundle files (a bundle, a list, or a receivable's proofs)"
        ),
    ],
    rpc_url: Annotated[
        str, typer.Option("--rpc-url", help="any JSON-RPC endpoint of the bundles' chain")
    ],
    contract: Annotated[
        str | None,
        typer.Option(help="the ReceivableAnchor address you expect (else the bundle's is used)"),
    ] = None,
    chain_id: Annotated[
        int | None, typer.Option(help="the chain id you expect (else the bundle's is used)")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the report as JSON instead")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds per RPC request")] = 30.0,
) -> None:
    """Verify proof bundles using only the files and the chain; explain every step.

    Exit status 0 only if every bundle and every history holds.
    """
    ensure_keccak_backend()
    items = read_bundles(bundles)
    report = verify_bundles(
        items,
        RpcChainReader(rpc_url, timeout=timeout),
        expected_chain_id=chain_id,
        expected_contract=contract,
    )
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        render(report, Console(highlight=False, soft_wrap=False))
    raise typer.Exit(0 if report.ok else 1)

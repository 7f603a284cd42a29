"""``qilian risk``: the risk compensation pool's ledger, for the operator and the regulator's
auditors (docs/risk.md, "The ledger")."""

from __future__ import annotations

import asyncio

import typer

from qilian.kit import db

app = typer.Typer(help="Risk sharing: the risk compensation pool's ledger.", no_args_is_help=True)


@app.command("verify-ledger")
def verify_ledger() -> None:
    """Recompute the ledger's hash chain, each entry's balance and every account's balance from
    its lines; exit 1 listing every problem found."""
    from services.api.risk import ledger

    async def main() -> ledger.Verification:
        try:
            async with db.transaction() as session:
                return await ledger.verify(session)
        finally:
            await db.dispose_engine()

    result = asyncio.run(main())
    if result.ok:
        typer.echo(
            f"risk ledger intact: {result.entries} entries, {result.accounts} accounts, "
            f"head {result.head_hash}"
        )
        return
    for problem in result.problems:
        facts = ", ".join(f"{k}={v}" for k, v in problem.items() if k != "reason")
        typer.echo(f"{problem['reason']}: {facts}", err=True)
    typer.echo(f"risk ledger BROKEN: {len(result.problems)} problem(s)", err=True)
    raise typer.Exit(1)
